"""The free-text log parser: pairing, roles, tables, zones, duplicates, verdicts and work caps."""

from __future__ import annotations

from datetime import datetime, timezone
from ipaddress import ip_address
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from abuso import taxonomy
from abuso.model import Incident, merge_duplicates
from abuso.normalize import normalize
from abuso.parsers import log as logmod
from abuso.parsers.log import LogParser
from abuso.pipeline import Pipeline

from .conftest import CORPUS, NO_CORPUS, ROOT, sample_path

UTC = timezone.utc
EXPECTED = yaml.safe_load((ROOT / "tests" / "data" / "expected" / "log.yaml").read_text())
#: Incidents in log.yaml that another parser supplies (the log parser must not invent them).
FROM_OTHER_PARSERS = {"mail-abuse/normal-08.eml": "received"}


def message(body: str, *, date: str | None = "Wed, 25 Nov 2026 12:00:00 +0100", subject: str = "report",
            extra: str = "") -> bytes:
    head = "From: reporter@example.org\nTo: abuse@example.net\n" + f"Subject: {subject}\n"
    if date:
        head += f"Date: {date}\n"
    head += "Message-ID: <t@example.org>\nContent-Type: text/plain; charset=utf-8\n" + extra
    return (head + "\n" + body).encode()


def parse(body: str, options: dict | None = None, **kw: str):  # type: ignore[no-untyped-def]
    return LogParser(options or {}).parse(normalize(message(body, **kw)))


def keys(verdict) -> set[tuple]:  # type: ignore[no-untyped-def]
    return {(str(i.ip), i.type, i.time.isoformat() if i.time else None) for i in verdict.incidents}


# --- the written expectations, with the log parser alone ------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_log_parser_alone_gives_the_expected_incidents(name: str) -> None:
    if not name.startswith("samples/") and not CORPUS.is_dir():
        pytest.skip(NO_CORPUS)
    report = Pipeline.from_config({"parsers": ["log"]}).analyse(Path(sample_path(name)).read_bytes(), name)
    got = {(i.ip, i.type, i.time) for i in report.incidents}
    want = set()
    if name not in FROM_OTHER_PARSERS:
        for e in EXPECTED[name] or []:
            t = datetime.fromisoformat(e["time"]) if e.get("time") else None
            want.add((ip_address(str(e["ip"])), e["type"], t))
    assert got == want, report.verdicts["log"]


def test_corpus_zones_and_ports() -> None:
    if not CORPUS.is_dir():
        pytest.skip(NO_CORPUS)
    v = LogParser({}).parse(normalize((CORPUS / "mail-abuse/log-10.eml").read_bytes()))
    (inc,) = v.incidents
    assert (inc.zone, inc.port) == ("date-header", 3863)  # yearless syslog, SRC= ... SPT=3863
    v = LogParser({}).parse(normalize((CORPUS / "mail-abuse/mynet-01.eml").read_bytes()))
    assert {i.zone for i in v.incidents} == {"stated"}      # "Time Zone: UTC"
    assert v.incidents[0].port == 1038                       # the Source Port column


# --- pairing ---------------------------------------------------------------------------


def test_first_body_line_and_the_line_after() -> None:
    v = parse("203.0.113.7 tried to relay spam\nat 2026-11-20 10:00:00 +0000\n")
    assert keys(v) == {("203.0.113.7", "spam", "2026-11-20T10:00:00+00:00")}


def test_every_adjacent_pair_is_paired() -> None:
    """Mail::Abuse skipped some line pairs; here each address finds the stamp next to it."""
    lines = []
    for k in range(6):
        lines += [f"2026-11-20 10:0{k}:00 +0000", f"ipfw DENY from 192.0.2.{k + 1}"]
    v = parse("\n".join(lines))
    assert keys(v) == {(f"192.0.2.{k + 1}", "scanner", f"2026-11-20T10:0{k}:00+00:00") for k in range(6)}


def test_the_stamp_before_the_address_on_a_line_wins() -> None:
    v = parse("2026-11-20 10:00:00 +0000 ban 192.0.2.9 (first seen 2026-11-19 09:00:00 +0000) brute force")
    assert keys(v) == {("192.0.2.9", "brute-force", "2026-11-20T10:00:00+00:00")}


def test_stamp_of_another_address_line_below_is_not_borrowed() -> None:
    v = parse("spam from 192.0.2.1\n\n2026-11-20 10:00:00 +0000 spam from 192.0.2.2\n")
    assert keys(v) == {("192.0.2.1", "spam", None), ("192.0.2.2", "spam", "2026-11-20T10:00:00+00:00")}


def test_partial_stamps_do_not_make_duplicates() -> None:
    v = parse("Nov 22 03:14 sshd: Failed password from 192.0.2.5\n\n\n"
              "Nov 22 03:14:07 sshd: Failed password for root from 192.0.2.5 port 22 ssh2")
    assert keys(v) == {("192.0.2.5", "brute-force", "2026-11-22T02:14:07+00:00")}


def test_one_event_two_descriptions_gets_the_first_rule_type() -> None:
    """Same ip and time, a worm signature and a firewall deny: one incident, deterministic type."""
    body = ("23 Oct 2003 18:13:36 -0400, 10.10.10.10, W32.Opaserv Worm?\n"
            "23 Oct 2003 18:13:36 -0400 ipfw DENY from 10.10.10.10")
    for _ in range(3):
        v = parse(body)
        assert keys(v) == {("10.10.10.10", "infected-system", "2003-10-23T22:13:36+00:00")}


def test_mentions_without_time_fold_into_timed_incidents() -> None:
    v = parse("Source IP: 192.0.2.3\nAttack: brute force\n\n\n\nNov 24 10:00:00 sshd: "
              "Failed password for root from 192.0.2.3")
    assert keys(v) == {("192.0.2.3", "brute-force", "2026-11-24T09:00:00+00:00")}


# --- roles -----------------------------------------------------------------------------


@pytest.mark.parametrize("body, source", [
    ("2026-11-20 10:00:00 +0000 DROP SRC=192.0.2.1 DST=198.51.100.1 SPT=5 DPT=22", "192.0.2.1"),
    ("2026-11-20 10:00:00 +0000 {TCP} 192.0.2.1:51022 -> 198.51.100.1:22 SCAN", "192.0.2.1"),
    ("2026-11-20 10:00:00 +0000 scan to 198.51.100.1 from 192.0.2.1", "192.0.2.1"),
    ("2026-11-20 10:00:00 +0000 Destination IP: 198.51.100.1, Source IP: 192.0.2.1 scan", "192.0.2.1"),
    ("2026-11-20 10:00:00 +0000 our server 198.51.100.1 was scanned by 192.0.2.1", "192.0.2.1"),
    ("2026-11-20 10:00:00 +0000 imap-login: rip=192.0.2.1, lip=198.51.100.1", "192.0.2.1"),
])
def test_victims_are_not_accused(body: str, source: str) -> None:
    v = parse(body)
    assert {str(i.ip) for i in v.incidents} == {source}
    assert "victim" in v.reason


def test_a_victim_named_once_is_not_accused_where_its_role_is_unclear() -> None:
    v = parse("Target: 198.51.100.1\n\n2026-11-20 10:00:00 +0000 198.51.100.1 sshd: Failed password "
              "for root from 192.0.2.1")
    assert {str(i.ip) for i in v.incidents} == {"192.0.2.1"}


def test_only_victims_says_so() -> None:
    v = parse("Reporter: 198.51.100.1\nOur mail server 198.51.100.2 got spam.\n")
    assert v.incidents == [] and v.applied
    assert v.reason == ("no accused address in 3 lines; 2 victim/reporter addresses left out "
                        "(Our mail server, Reporter)")


def test_whois_ranges_and_traceroutes_are_not_incidents() -> None:
    body = ("Phishing site at 192.0.2.80\n"
            "inetnum:        192.0.2.0 - 192.0.2.255\n"
            "Targeted Range: 198.51.100.0/24\n"
            " 1  gw.example.net (198.51.100.1)  0.5 ms\n"
            " 2  core.example.net (203.0.113.1)  1.2 ms\n")
    v = parse(body)
    assert keys(v) == {("192.0.2.80", "phishing", None)}
    assert "3 whois or network-range addresses skipped" in v.reason and "2 traceroute hops skipped" in v.reason


def test_a_url_host_in_a_logged_request_is_content() -> None:
    v = parse('192.0.2.23 - - [24/Nov/2026:13:05:02 +0100] "GET /x?u=http://203.0.113.66/x.sh HTTP/1.1" 404 1')
    assert {str(i.ip) for i in v.incidents} == {"192.0.2.23"}


def test_received_lines_accuse_the_sender_not_the_receiver() -> None:
    v = parse("Received: from mail.example.com (HELO 198.51.100.9) ([192.0.2.44]) by mx.victim.example "
              "([203.0.113.25]); Tue, 24 Nov 2026 10:00:00 +0000")
    assert keys(v) == {("192.0.2.44", "spam", "2026-11-24T10:00:00+00:00")}


def test_the_reports_own_relay_beside_another_address_is_not_accused() -> None:
    """A host that relayed the report to us, on a log line beside another candidate, is the reporter's host
    field: a victim ("the report's own relay"), not accused; alone on a line it stays accused."""
    relay = "Received: from relay.example.org ([192.0.2.25]) by mx.example.net; Wed, 25 Nov 2026 11:00:00 +0000\n"
    v = parse("Nov 24 06:10:02 192.0.2.25 postfix/smtpd[7]: connect from unknown[198.51.100.7]\n"
              "Nov 24 06:10:05 192.0.2.25 postfix/smtpd[7]: lost connection after AUTH from unknown[198.51.100.8]\n",
              extra=relay)
    assert {str(i.ip) for i in v.incidents} == {"198.51.100.7", "198.51.100.8"}
    alone = parse("Nov 24 06:10:02 spam from 192.0.2.25\n", extra=relay)
    assert {str(i.ip) for i in alone.incidents} == {"192.0.2.25"}


def test_each_victim_label_is_said_however_often_an_address_repeats() -> None:
    """A victim named on every line by the same label is excluded once; other labels of it are kept too."""
    body = "".join(f"2026-11-20 10:00:{s:02d} DROP SRC=198.51.100.{s} DST=192.0.2.9 SPT=5{s:04d}\n" for s in range(20))
    body += "Destination: 192.0.2.9\nour server 192.0.2.9 was scanned\n"
    v = parse(body)
    assert {str(i.ip) for i in v.incidents} == {f"198.51.100.{s}" for s in range(20)}
    assert "1 victim/reporter address left out (DST, Destination, our server)" in v.reason


def test_pasted_message_headers_and_body_are_left_to_other_parsers() -> None:
    body = ("Email from 192.0.2.1 / Tue, 24 Nov 2026 10:00:00 +0000\n\n[ Offending message ]\n"
            "Received: from a ([198.51.100.1]) by b; Tue, 24 Nov 2026 09:59:00 +0000\n"
            "Received: from c ([198.51.100.2]) by d; Tue, 24 Nov 2026 09:58:00 +0000\n"
            "Subject: buy\n\nvisit http://203.0.113.5/ now, sent 24 Nov 2026 09:00:00\n")
    assert keys(parse(body, subject="[SpamCop id:1] spam")) == {("192.0.2.1", "spam", "2026-11-24T10:00:00+00:00")}


def test_attached_message_headers_are_not_read() -> None:
    raw = (b"From: r@example.org\nTo: abuse@example.net\nSubject: spam\nDate: Wed, 25 Nov 2026 12:00:00 +0000\n"
           b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain\n\n"
           b"Spam attached.\n--B\nContent-Type: message/rfc822\n\n"
           b"Received: from x ([192.0.2.7]) by mx; Tue, 24 Nov 2026 10:00:00 +0000\nSubject: hi\n\nhello\n--B--\n")
    v = LogParser({}).parse(normalize(raw))
    assert v.incidents == [] and "no IP address" in v.reason


def test_private_addresses_are_kept_and_mapped_ipv6_is_ipv4() -> None:
    v = parse("2026-11-20 10:00:00 +0000 spam from 10.1.2.3 and ::ffff:192.0.2.9")
    assert {str(i.ip) for i in v.incidents} == {"10.1.2.3", "192.0.2.9"}


# --- tables ----------------------------------------------------------------------------


def test_table_columns_decide_roles() -> None:
    body = ("Date;Destination IP;Source IP;Issue\n"
            "2026-11-20 10:00:00;198.51.100.1;192.0.2.1;port scan\n"
            "2026-11-20 10:05:00;198.51.100.2;192.0.2.2;port scan\n")
    assert keys(parse(body, date="Fri, 20 Nov 2026 12:00:00 +0000")) == {
        ("192.0.2.1", "scanner", "2026-11-20T10:00:00+00:00"),
        ("192.0.2.2", "scanner", "2026-11-20T10:05:00+00:00")}


def test_table_without_source_column_takes_the_labelled_source() -> None:
    body = ("Source IP: 192.0.2.50\nTime Zone: UTC\n\n"
            "Event Date Time, Destination IP, Issue Description\n"
            "20 Nov 2026 10:00:00, 68.19.x.x, W32.Opaserv Worm?\n"
            "20 Nov 2026 10:00:00, 68.19.x.x, W32.Opaserv Worm?\n"
            "20 Nov 2026 11:00:00, 68.19.x.x, W32.Opaserv Worm?\n")
    assert keys(parse(body)) == {("192.0.2.50", "infected-system", "2026-11-20T10:00:00+00:00"),
                                 ("192.0.2.50", "infected-system", "2026-11-20T11:00:00+00:00")}


# --- zones and time fallbacks ------------------------------------------------------------


def test_no_timestamp_gives_no_time_unless_date_fallback() -> None:
    body = "Please stop the spam from 192.0.2.1."
    (inc,) = parse(body).incidents
    assert (inc.time, inc.zone) == (None, "none")
    (inc,) = parse(body, {"date_fallback": True}).incidents
    assert (inc.time, inc.zone) == (datetime(2026, 11, 25, 11, 0, tzinfo=UTC), "date-header")


def test_config_default_zone_when_the_report_has_no_date() -> None:
    (inc,) = parse("2026-07-01 12:00:00 brute force from 192.0.2.1", {"zone": "Europe/Berlin"}, date=None).incidents
    assert (inc.time.hour, inc.zone) == (10, "default")
    (inc,) = parse("2026-07-01 12:00:00 brute force from 192.0.2.1", date=None).incidents
    assert (inc.time.hour, inc.zone) == (12, "assumed-utc")


def test_a_block_statement_wins_over_the_message_statement() -> None:
    raw = (b"From: r@example.org\nTo: abuse@example.net\nSubject: scans\nDate: Wed, 25 Nov 2026 12:00:00 +0000\n"
           b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain\n\n"
           b"All times are UTC.\n2026-11-20 10:00:00 scan from 192.0.2.1\n--B\nContent-Type: text/plain\n\n"
           b"Times are CET.\n2026-11-20 10:00:00 scan from 192.0.2.2\n--B--\n")
    v = LogParser({}).parse(normalize(raw))
    assert {(str(i.ip), i.time.hour) for i in v.incidents} == {("192.0.2.1", 10), ("192.0.2.2", 9)}


# --- verdicts, evidence, caps -------------------------------------------------------------


def test_no_address_verdict_counts_lines() -> None:
    v = parse("hello\nno addresses here\nversion 4.04.00.00\n")
    assert not v.applied and v.reason.startswith("no IP address in ")


def test_evidence_is_the_trimmed_line() -> None:
    line = "2026-11-20 10:00:00 +0000 scan from 192.0.2.1 " + "x" * 1000
    (inc,) = parse(line).incidents
    assert inc.evidence.startswith("2026-11-20 10:00:00 +0000 scan from 192.0.2.1") and len(inc.evidence) <= 300


def test_huge_input_is_capped_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logmod.context, "MAX_LINES", 2000)
    monkeypatch.setattr(logmod.context, "MAX_ADDRESSES", 10_000)  # 2 a line: the line cap is the one under test
    body = "Nov 22 03:14:07 fw DROP SRC=192.0.2.1 DST=198.51.100.1\n" * 5000
    v = parse(body)
    assert "read only the first 2000 lines" in v.reason
    assert keys(v) == {("192.0.2.1", "scanner", "2026-11-22T02:14:07+00:00")}


def test_long_lines_are_cut_for_scanning() -> None:
    v = parse("spam from 192.0.2.1 " + "a" * (logmod.MAX_LINE + 10) + " 192.0.2.99")
    assert {str(i.ip) for i in v.incidents} == {"192.0.2.1"}


# --- shared pieces the parser relies on -----------------------------------------------------


def test_undetermined_merges_into_a_typed_incident_of_the_same_ip_and_time() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    arf = Incident(ip_address("192.0.2.1"), "spam", t, "arf")
    vague = Incident(ip_address("192.0.2.1"), "undetermined", t, "log")
    other = Incident(ip_address("192.0.2.1"), "undetermined", None, "log")
    merged = merge_duplicates([vague, arf, other])
    assert [(i.type, i.time, i.parser) for i in merged] == [("spam", t, "arf+log"), ("undetermined", None, "log")]


def test_keyword_shortcut_gives_the_same_answers() -> None:
    def naive(text: str) -> str | None:
        return next((name for name, rx in taxonomy.KEYWORD_RULES if rx.search(text)), None)

    texts = ["Failed password for root", "ipfw DENY", "W32.Opaserv Worm?", "SRC=1.2.3.4 LEN=1 DPT=22",
             "Event ID: 4625", "e-mail abuse report", "nothing here", "ДОС атака", "Ph1sh", "DDoS"]
    for p in sorted((ROOT / "samples").rglob("*.eml")):
        text = normalize(p.read_bytes()).text
        texts += [text, *text.split("\n")]
    for text in texts:
        assert taxonomy.type_from_text(text) == naive(text), text[:80]


def test_free_text_yields_to_a_structured_parser_on_the_same_address() -> None:
    t1, t2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    ip, other = ip_address("192.0.2.1"), ip_address("192.0.2.2")
    xarf = Incident(ip, "spam", t1, "xarf")
    found = [xarf,
             Incident(ip, "scanner", t1, "log"),        # same event, the keyword guess differs
             Incident(ip, "spam", t2, "log"),           # a mail date the log parser took for a time
             Incident(ip, "spam", None, "log"),         # a mention without time
             Incident(other, "scanner", t1, "log")]     # an address only the free text names
    merged = merge_duplicates(found, fallback=["log"])
    assert [(str(i.ip), i.type, i.time, i.parser) for i in merged] == [
        ("192.0.2.1", "spam", t1, "xarf+log"), ("192.0.2.2", "scanner", t1, "log")]
    assert len(merge_duplicates(found)) == 5            # without fallback parsers nothing yields
    assert LogParser.fallback is True


def test_slash_dates_are_day_first_when_the_block_shows_it() -> None:
    body = ("22/11/2026 10:00:00 brute force from 192.0.2.1\n"
            "03/11/2026 10:00:00 brute force from 192.0.2.2\n")   # 3 November, like the line above
    assert keys(parse(body)) == {("192.0.2.1", "brute-force", "2026-11-22T09:00:00+00:00"),
                                 ("192.0.2.2", "brute-force", "2026-11-03T09:00:00+00:00")}
    us = "03/11/2026 10:00:00 brute force from 192.0.2.2\n"
    assert keys(parse(us)) == {("192.0.2.2", "brute-force", "2026-03-11T09:00:00+00:00")}
    assert keys(parse(us, {"dayfirst": True})) == {("192.0.2.2", "brute-force", "2026-11-03T09:00:00+00:00")}


def test_record_fields_below_the_address_date_it() -> None:
    body = ("Offending IP:  192.0.2.20\n\n"
            "       - Issue: Client software detected as known botware (IE: botnets).\n\n"
            "       - Block Type: New Ban\n\n"
            "       - Time: 2015-05-15 17:03:11-07:00\n\n"
            "       - Targeted Range: 198.51.100.0/24\n\n"
            "Thank you.\n2026-11-25 10:00:00 +0000 is when we sent this.\n")
    v = parse(body)
    assert keys(v) == {("192.0.2.20", "infected-system", "2015-05-16T00:03:11+00:00")}
    assert v.incidents[0].evidence == "Offending IP: 192.0.2.20 | - Time: 2015-05-15 17:03:11-07:00"


def test_your_server_and_open_resolvers_are_accused() -> None:
    v = parse("Your server 192.0.2.7 is an open DNS resolver 192.0.2.8 used in amplification attacks.")
    assert {str(i.ip) for i in v.incidents} == {"192.0.2.7", "192.0.2.8"}


def test_list_headings_name_the_type_and_listed_stamps_each_count() -> None:
    body = ("IPs Engaged In Harvesting On Your Network:\n\n192.0.2.19 (H)\n  - Mon, 21 Sep 2015 11:00AM PDT\n\n\n"
            "IPs Engaged In Dictionary Attacks On Your Network:\n\n192.0.2.21 (D)\n"
            "  - Mon, 21 Sep 2015 10:00AM PDT\n    - Subject: hello\n  - Mon, 21 Sep 2015 06:12AM PDT\n\n\n"
            "Other Potentially Suspicious IPs On Your Network:\n\n192.0.2.23 (R)\n  - Mon, 21 Sep 2015 12:00AM PDT\n"
            "---------------------------------------\n"
            "192.0.2.99 is our monitoring host, dictionary attacks are reported daily\n")
    assert keys(parse(body, subject="Monitor Report")) == {
        ("192.0.2.19", "scanner", "2015-09-21T18:00:00+00:00"),
        ("192.0.2.21", "spam", "2015-09-21T17:00:00+00:00"),
        ("192.0.2.21", "spam", "2015-09-21T13:12:00+00:00"),
        ("192.0.2.23", "undetermined", "2015-09-21T07:00:00+00:00"),
        ("192.0.2.99", "brute-force", None)}   # after the rule the heading no longer applies


def test_an_address_in_a_quoted_subject_is_not_dated_by_the_reports_status_time() -> None:
    body = ("Please preserve on any reply our Subject: [cx-81328588](192.0.2.13) status: As of "
            "2015-09-15 02:16:17 CEST\n\n\n"
            "|2015-09-14 07:49:54 CEST |81328588 |JS/iFrame.cqq virus |192.0.2.13 |victim.tld |\n")
    assert keys(parse(body)) == {("192.0.2.13", "malware-distribution", "2015-09-14T05:49:54+00:00")}


def test_safe_browsing_lists_and_unbracketed_ipv6_with_port() -> None:
    body = ('<notification_message asn="64512" date="2015-01-01">\n <list type="0">\n'
            '  <url_info url="http://example.com/" ip="192.0.2.23" />\n </list>\n <list type="1">\n'
            '  <url_info url="http://2001:db8:0:0:f3:22:0:2:2222/phish/" />\n </list>\n</notification_message>\n')
    v = parse(body)
    assert keys(v) == {("192.0.2.23", "system-compromise", None), ("2001:db8::f3:22:0:2", "phishing", None)}
    assert {i.port for i in v.incidents} == {None, 2222}


_PIECES = ["192.0.2.1", "2001:db8::7", "Nov 22 03:14:07", "2026-11-22T03:14:07Z", "SRC=", "DST=", "from ",
           "to ", "Source IP:", "Destination IP:", "sshd", "DROP", "spam", "\n", "\n\n", ",", "\t", "|", " - ",
           "#Fields: date time c-ip", "<list type=\"1\">", "-----", "  - ", "Subject:", "Received: from ",
           "All times are CET", "1795588447", "4.04.00.00", "[", "]", "(", ")", ":", "x" * 50]


@settings(max_examples=150, deadline=None)
@given(pieces=st.lists(st.sampled_from(_PIECES), max_size=60), date=st.booleans())
def test_any_mix_of_log_pieces_parses_without_error(pieces: list[str], date: bool) -> None:
    v = parse(" ".join(pieces), date="Wed, 25 Nov 2026 12:00:00 +0100" if date else None)
    keys_seen = set()
    for inc in v.incidents:
        assert inc.time is None or inc.time.tzinfo is not None
        assert len(inc.evidence) <= 300
        assert inc.key not in keys_seen
        keys_seen.add(inc.key)
    assert v.reason


def test_subject_addresses_are_mentions_without_time() -> None:
    v = parse("Please stop it.", subject="Spam from 192.0.2.44 - Tue, 24 Nov 2026 10:00:00 +0000")
    assert keys(v) == {("192.0.2.44", "spam", None)}
    assert v.incidents[0].evidence.startswith("Subject: Spam from 192.0.2.44")
    v = parse("2026-11-24 09:00:00 +0000 DROP SRC=192.0.2.44 DST=198.51.100.1", subject="Scan from 192.0.2.44")
    assert keys(v) == {("192.0.2.44", "scanner", "2026-11-24T09:00:00+00:00")}


@pytest.mark.parametrize("body", [
    "2026-11-20 10:00:00 +0000 Angriff: Quell-IP 192.0.2.1, Ziel-IP 198.51.100.1 (Portscan)",
    "2026-11-20 10:00:00 +0000 scan de 192.0.2.1 vers notre serveur 198.51.100.1",
    "2026-11-20 10:00:00 +0000 scan from 192.0.2.1, seen by 198.51.100.1 (our honeypot)",
])
def test_roles_in_other_languages_and_after_the_address(body: str) -> None:
    assert {str(i.ip) for i in parse(body).incidents} == {"192.0.2.1"}


@pytest.mark.parametrize("options, key", [
    ({"date_fallbak": True}, "parsers.log.date_fallbak"),
    ({"dayfirst": "yes"}, "parsers.log.dayfirst"),
    ({"zone": "Mars/Olympus"}, "parsers.log.zone"),
])
def test_bad_options_are_config_errors_with_the_key(options: dict, key: str) -> None:
    from abuso.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        Pipeline.from_config({"parsers": [{"log": options}]})
    assert e.value.key == key


def test_good_options_load() -> None:
    options = {"zone": "Europe/Berlin", "date_fallback": True, "dayfirst": False}
    p = Pipeline.from_config({"parsers": [{"log": options}]})
    assert p.parsers[0].dayfirst is False and p.parsers[0].date_fallback


def test_german_windows_event_copy() -> None:
    body = ("Protokollname: Security\nQuelle:        Microsoft-Windows-Security-Auditing\n"
            "Datum:         22.11.2026 17:07:44\nEreignis-ID:   4625\nBeschreibung:\n"
            "Fehler beim Anmelden eines Kontos.\n\nNetzwerkinformationen:\n\tArbeitsstationsname:\t-\n"
            "\tQuellnetzwerkadresse:\t192.0.2.77\n\tQuellport:\t\t0\n")
    assert keys(parse(body)) == {("192.0.2.77", "brute-force", "2026-11-22T16:07:44+00:00")}


def test_the_first_cap_reached_is_the_one_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logmod.context, "MAX_ADDRESSES", 100)
    monkeypatch.setattr(logmod.context, "MAX_CHARS", 3000)
    body = ("Nov 22 03:14:07 fw DROP " + "SRC=192.0.2.1 " * 10 + "\n") * 50
    v = parse(body, subject="Scans from 192.0.2.1")
    assert "read only the first 10 lines (more than 100 addresses)" in v.reason
    assert keys(v) == {("192.0.2.1", "scanner", "2026-11-22T02:14:07+00:00")}


def test_a_second_stamp_folds_into_a_fraction_of_the_same_second() -> None:
    body = ("11/22-03:14:07.123456 [**] SCAN {TCP} 192.0.2.23:51022 -> 198.51.100.10:22\n\n\n"
            "Nov 22 03:14:07 fw kernel: DROP SRC=192.0.2.23 DST=198.51.100.10 DPT=22\n\n\n"
            "Nov 22 03:14 fw: another DROP SRC=192.0.2.23\n\n\n"
            "Nov 22 03:14:08 fw kernel: DROP SRC=192.0.2.23 DST=198.51.100.10 DPT=22\n")
    v = parse(body, date="Sun, 22 Nov 2026 12:00:00 +0000")
    assert keys(v) == {("192.0.2.23", "scanner", "2026-11-22T03:14:07.123456+00:00"),
                       ("192.0.2.23", "scanner", "2026-11-22T03:14:08+00:00")}
