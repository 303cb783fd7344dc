"""Incident types (issue 11 class 8): amplifiers, scanners, brute force, malware URLs, and 'undetermined'."""

from __future__ import annotations

import pytest

from abuso.parsers.csv import shadowserver_type
from abuso.taxonomy import KEYWORD_RULES, _branches, _required_literals, normalize_type, taxonomy_of, type_from_text


@pytest.mark.parametrize("text, want", [
    # Amplifiers are misconfigured services: ddos-amplifier, never scanner (the iptables advice) nor ddos.
    ("You appear to be running an open recursive resolver at IP address 192.0.2.1", "ddos-amplifier"),
    ("Please filter it with iptables: your open DNS resolver 192.0.2.1", "ddos-amplifier"),
    ("Your NTP server 192.0.2.2 answers monlist queries", "ddos-amplifier"),
    ("SSDP service on 192.0.2.3 reachable from the internet", "ddos-amplifier"),
    ("memcached on 192.0.2.4:11211 was used in a DDoS", "ddos-amplifier"),
    ("chargen (19/udp) open on 192.0.2.5", "ddos-amplifier"),
    # Scanners: the words, tool user agents, a port-scan table header without its banner.
    ("Abuse Message: Netscan detected from 192.0.2.6", "scanner"),
    ('192.0.2.7 - - "GET / HTTP/1.1" 400 166 "-" "masscan/1.3 (https://github.com/robertdavidgraham/masscan)"',
     "scanner"),
    ('192.0.2.8 "GET / HTTP/1.1" 200 612 "-" "Mozilla/5.0 zgrab/0.x"', "scanner"),
    ("time                protocol src_ip src_port          dest_ip dest_port", "scanner"),
    # Brute force against SSH, FTP, SMTP AUTH, RDP, WordPress.
    ("sshd[1]: Failed password for root from 192.0.2.9 port 2222 ssh2", "brute-force"),
    ('vsftpd[912]: [admin] FAIL LOGIN: Client "192.0.2.10"', "brute-force"),
    ("postfix/smtpd[1]: warning: unknown[192.0.2.11]: SASL PLAIN authentication failed", "brute-force"),
    ("SMTP AUTH attempts from 192.0.2.12 against our mail server", "brute-force"),
    ("RDP login attempts from 192.0.2.13", "brute-force"),
    ('192.0.2.14 "POST /wp-login.php HTTP/1.1" 200', "brute-force"),
    ("WordPress login attack from 192.0.2.15", "brute-force"),
    # Malware URLs.
    ("malware url hxxp://192.0.2.16/x.exe", "malware-distribution"),
    # Nothing said: no type (the parsers fall back to 'undetermined').
    ("192.0.2.17 - - [12/Nov/2026:10:00:01 +0000] \"GET / HTTP/1.1\" 200 612", None),
    ("Please look into 192.0.2.18.", None),
])
def test_keyword_types(text: str, want: str | None) -> None:
    assert type_from_text(text) == want


@pytest.mark.parametrize("name, want", [
    ("open-resolver", "ddos-amplifier"), ("Open Resolver", "ddos-amplifier"), ("NTP-Monitor", "ddos-amplifier"),
    ("open_memcached", "ddos-amplifier"), ("ssdp", "ddos-amplifier"), ("netscan", "scanner"),
    ("malware url", "malware-distribution"), ("malware_url", "malware-distribution"),
    ("Brute Force", "brute-force"), ("botnet", "infected-system"), ("proxy", "proxy"),
    ("whatever", "undetermined"), ("", "undetermined"),
])
def test_category_names(name: str, want: str) -> None:
    assert normalize_type(name) == want


def test_amplifier_taxonomy_is_vulnerable() -> None:
    assert taxonomy_of("ddos-amplifier") == "vulnerable"


@pytest.mark.parametrize("report, want", [
    ("dns_openresolver", "ddos-amplifier"), ("scan_dns", "ddos-amplifier"), ("scan_ntpmonitor", "ddos-amplifier"),
    ("scan_ssdp", "ddos-amplifier"), ("scan_memcached", "ddos-amplifier"), ("scan_chargen", "ddos-amplifier"),
    ("scan_ipmi", "vulnerable-system"), ("scan_ntp", "vulnerable-system"), ("sinkhole_http_drone", "infected-system"),
])
def test_shadowserver_amplifier_reports(report: str, want: str) -> None:
    assert shadowserver_type(report) == want


def test_required_literals_are_found_on_this_python() -> None:
    """The shortcut reads patterns with re's private parser (``sre_parse`` on 3.10, ``re._parser`` later):
    on a Python where that fails it silently gives up, so check it works here."""
    import re

    def literals(rx: re.Pattern[str]) -> tuple[str, ...] | None:
        found = _required_literals(rx)
        return None if found is None else tuple(t for t, _ in found)

    assert literals(re.compile(r"\bphish|credential harvest|fake login", re.I)) == (
        "phish", "credential harvest", "fake login")
    assert literals(re.compile(r"open (?:dns )?resolver")) == ("resolver",)  # the longest run
    assert literals(re.compile(r"[a-z]+ bot")) == (" bot",)
    assert _required_literals(re.compile(r"x|[0-9]+")) is None


def _first_rule(text: str) -> str | None:
    """The plain reading of the keyword rules: the first whose pattern matches anywhere."""
    return next((name for name, rx in KEYWORD_RULES if rx.search(text)), None)


def test_branches_split_at_top_level_only() -> None:
    assert _branches(r"a|(?:b|c)|[|x]|\||d") == ["a", "(?:b|c)", "[|x]", r"\|", "d"]
    assert _branches(r"[]|]|e") == ["[]|]", "e"]


def test_keyword_shortcuts_give_the_rules_answers() -> None:
    """type_from_text searches only the alternatives whose literal a line holds; the answer is
    the rules' own, line by line, on every sample message and on lines built to be awkward."""
    from pathlib import Path

    lines = ["DROPPED packet", "xdrop IN=eth0", "SRC=1.2.3.4 LEN=60 DPT=22", "the bot's log", "robots.txt",
             "Event ID: 4625", "EventID 46250", "POST /WP-LOGIN.PHP", "failed  password", "DoS attack", "ddos",
             "démarrage sshd", "Ereignis-ID 4625", "force brute sur", "spam's", "antispam", "e-mail abuse report"]
    for path in sorted((Path(__file__).resolve().parent.parent / "samples").rglob("*.eml")):
        lines += path.read_bytes().decode("utf-8", "replace").split("\n")
    assert len(lines) > 1000
    for line in lines:
        assert type_from_text(line) == _first_rule(line), line
