"""RSIT / IntelMQ classification: ``classification.type`` -> ``classification.taxonomy``.

One place for the table, the aliases other formats use, and the keyword rules of
the free-text ``log`` parser, so every parser names incidents the same way.
"""

from __future__ import annotations

import re
from functools import partial

from .digitblind import digit_blind, key_for
from .lazy import lazy_compile, regex_tree
from .startcache import remembered

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any

    from .digitblind import Keyed

#: classification.type -> classification.taxonomy (IntelMQ harmonization, RSIT).
TAXONOMY: dict[str, str] = {
    # abusive-content
    "spam": "abusive-content",
    "harmful-speech": "abusive-content",
    "violence": "abusive-content",
    # malicious-code
    "infected-system": "malicious-code",
    "c2-server": "malicious-code",
    "malware-distribution": "malicious-code",
    "malware-configuration": "malicious-code",
    # information-gathering
    "scanner": "information-gathering",
    "sniffing": "information-gathering",
    "social-engineering": "information-gathering",
    # intrusion-attempts
    "ids-alert": "intrusion-attempts",
    "brute-force": "intrusion-attempts",
    "exploit": "intrusion-attempts",
    # intrusions
    "privileged-account-compromise": "intrusions",
    "unprivileged-account-compromise": "intrusions",
    "application-compromise": "intrusions",
    "system-compromise": "intrusions",
    "burglary": "intrusions",
    # availability
    "ddos": "availability",
    "dos": "availability",
    "outage": "availability",
    "sabotage": "availability",
    # information-content-security
    "unauthorised-information-access": "information-content-security",
    "unauthorised-information-modification": "information-content-security",
    "data-loss": "information-content-security",
    "data-leak": "information-content-security",
    # fraud
    "unauthorized-use-of-resources": "fraud",
    "copyright": "fraud",
    "masquerade": "fraud",
    "phishing": "fraud",
    # vulnerable
    "weak-crypto": "vulnerable",
    "ddos-amplifier": "vulnerable",
    "potentially-unwanted-accessible": "vulnerable",
    "information-disclosure": "vulnerable",
    "vulnerable-system": "vulnerable",
    # other
    "blacklist": "other",
    "dga-domain": "other",
    "other": "other",
    "malware": "other",
    "tor": "other",
    "proxy": "other",
    "undetermined": "other",
    # test
    "test": "test",
}


def taxonomy_of(type_: str) -> str:
    return TAXONOMY.get(type_, "other")


#: Names other formats and people use -> classification.type.
ALIASES: dict[str, str] = {
    "abuse": "spam",
    "spam": "spam",
    "uce": "spam",
    "fraud": "phishing",
    "phish": "phishing",
    "virus": "malware-distribution",
    "malware": "malware-distribution",
    "botnet": "infected-system",
    "bot": "infected-system",
    "infected": "infected-system",
    "drone": "infected-system",
    "sinkhole": "infected-system",
    "scan": "scanner",
    "portscan": "scanner",
    "login-attack": "brute-force",
    "bruteforce": "brute-force",
    "brute force": "brute-force",
    "ssh": "brute-force",
    "copyright": "copyright",
    "dmca": "copyright",
    "ddos": "ddos",
    "dos": "dos",
    # Amplifiers (open DNS resolvers, NTP monlist, SSDP, memcached, chargen, QOTD): IntelMQ files
    # them as ddos-amplifier (taxonomy vulnerable), whatever word the sender used.
    "open-resolver": "ddos-amplifier",
    "openresolver": "ddos-amplifier",
    "open-dns": "ddos-amplifier",
    "open-dns-resolver": "ddos-amplifier",
    "dns-open-resolver": "ddos-amplifier",
    "open-recursive-resolver": "ddos-amplifier",
    "ntp-monitor": "ddos-amplifier",
    "ntp-monlist": "ddos-amplifier",
    "monlist": "ddos-amplifier",
    "open-ntp-monitor": "ddos-amplifier",
    "ssdp": "ddos-amplifier",
    "open-ssdp": "ddos-amplifier",
    "memcached": "ddos-amplifier",
    "open-memcached": "ddos-amplifier",
    "chargen": "ddos-amplifier",
    "open-chargen": "ddos-amplifier",
    "qotd": "ddos-amplifier",
    "open-qotd": "ddos-amplifier",
    "reflector": "ddos-amplifier",
    "amplification": "ddos-amplifier",
    "netscan": "scanner",
    "net-scan": "scanner",
    "malware-url": "malware-distribution",
    "malicious-url": "malware-distribution",
    "malware-link": "malware-distribution",
    "ssh-brute-force": "brute-force",
    "rdp-brute-force": "brute-force",
    "login-brute-force": "brute-force",
    "password-guessing": "brute-force",
    "exploit": "exploit",
    "attack": "exploit",
    "auth-failure": "other",
    "other": "undetermined",
    # X-ARF 0.2 report types (blocklist.de, clean-mx, Netcraft) and X-ARF 4 types.
    "malware-attack": "malware-distribution",
    "regbot": "spam",
    "comment-spam": "spam",
    "spamvertised": "spam",
    "harvesting": "scanner",
    "port-scan": "scanner",
    "vuln-scanning": "scanner",
    "vulnerability-scan": "scanner",
    "reconnaissance": "scanner",
    "hack-attack": "exploit",
    "sql-injection": "exploit",
    "denial-of-service": "ddos",
    "ddos-amplification": "ddos-amplifier",
    "infected-host": "infected-system",
    "compromised-server": "system-compromise",
    "remote-compromise": "system-compromise",
    "web-hack": "application-compromise",
    "defacement": "application-compromise",
    "csam": "violence",
    "csem": "violence",
    "childabuse": "violence",
    "exposed-data": "data-leak",
    # Feed vocabulary (Shadowserver, AbuseHub, CSV category columns).
    "compromised": "system-compromise",
    "compromised-website": "system-compromise",
    "c2": "c2-server",
    "c&c": "c2-server",
    "botnet-cc": "c2-server",
    "vulnerable": "vulnerable-system",
    "vulnerable-service": "vulnerable-system",
    "amplifier": "ddos-amplifier",
    "blocklist": "blacklist",
    "scanning": "scanner",
    "darknet": "scanner",
}


def normalize_type(name: str | None) -> str:
    """Map a free-form category name onto a classification.type ('undetermined' if unknown)."""
    if not name:
        return "undetermined"
    key = name.strip().lower()
    if key in TAXONOMY:
        return key
    found = ALIASES.get(key)
    if found is None:
        dashed = "-".join(key.replace("_", " ").replace("-", " ").split())  # "Open Resolver", "malware_url"
        found = TAXONOMY.get(dashed) and dashed or ALIASES.get(dashed, "undetermined")
    return found


#: Keyword rules for free text, in priority order: the first rule that matches
#: wins, so ties are never broken at random (Mail::Abuse did). A rule never
#: matches across a line break (type_from_text relies on it).
KEYWORD_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("phishing", lazy_compile(r"phish|credential harvest|fake login|spoofed (?:bank|site)", re.I)),
    ("copyright", lazy_compile(r"copyright|infring|\bDMCA\b|\bACNS\b|bittorrent|torrent|piracy", re.I)),
    ("malware-distribution", lazy_compile(r"malware (?:distribution|hosting|download)|serving malware|virus|trojan"
                                          r"|malware[ _-]?url|malicious url|malware[ _-]?link", re.I)),
    # A worm's probes come from the machine it infected (myNetWatchman's "W32.Opaserv Worm?").
    ("infected-system", lazy_compile(r"botnet|\bbot\b|infected|sinkhole|\bdrone\b|\bC&C\b|compromised host|worm\b|opaserv", re.I)),
    # An amplifier is a misconfigured service, not an attacker: before ddos ("open resolver used in a
    # DDoS") and scanner (the advice to filter it with iptables).
    ("ddos-amplifier", lazy_compile(r"open (?:recursive |dns )?(?:dns )?resolver|open recursive|recursive resolver"
                                    r"|dns resolver (?:is )?open|\bmonlist\b|ntp (?:monitor|amplifi)|\bssdp\b"
                                    r"|memcached|\bchargen\b|\bqotd\b|amplifier|amplification|reflector"
                                    r"|reflection attack", re.I)),
    ("ddos", lazy_compile(r"\bd?dos\b|flood|denial of service", re.I)),
    ("brute-force", lazy_compile(r"sshd|failed password|authentication failure|invalid user|brute[- ]?force|login attempt|failed login|dictionary attack|\bimap-login\b|pop3-login|sasl login|failed to log on|logon failure|\b(?:Event|Ereignis)[ -]?ID:?[ \t]*4625\b"
                                r"|POST /wp-login\.php|POST /xmlrpc\.php|wordpress login|wp-login attack"
                                r"|\bsmtp[ -]auth|\bauth(?:entication)? (?:attack|attempts)|login[ -]attack"
                                r"|password (?:guessing|spray)|credential stuffing|\brdp (?:login|logon|auth)"
                                r"|remote desktop (?:login|logon)|\bftp (?:login|auth)|FAIL LOGIN"
                                r"|530 login incorrect|authentication failed"
                                r"|fuerza bruta|force brute|forza bruta|for[çc]a bruta|brute-?force-angriff", re.I)),
    ("exploit", lazy_compile(r"exploit|sql injection|\bXSS\b|directory traversal|shellshock|/etc/passwd|\bRCE\b", re.I)),
    ("spam", lazy_compile(r"\bspam|unsolicited|\bUCE\b|\bUBE\b|junk mail|spamcop|e-?mail abuse report|relay(?:ing)? (?:not permitted|access denied|denied)", re.I)),
    # Scanners: the words, firewall drops, scanning tools' user agents (masscan, zgrab, zmap, nmap) and a
    # port-scan table's header ("time protocol src_ip src_port dest_ip dest_port"), banner or not.
    ("scanner", lazy_compile(r"\bscan|\bprobe|\bDROP\b|\bDENY\b|\bREJECT\b|\bBLOCK|SRC=.*DPT=|\bDPT=|firewall|\bipfw\b|\biptables\b|portsweep|\bsnort\b"
                             r"|netscan|portscan|poortscan|masscan|zgrab|\bzmap\b|\bnmap\b"
                             r"|\bsrc_?ip\b.*\bdest?_?(?:ip|port)\b", re.I)),
]


def _branches(pattern: str) -> list[str]:
    """The top-level alternatives of a pattern's source ("a|(?:b|c)|d" -> ["a", "(?:b|c)", "d"])."""
    out, depth, klass, i, start = [], 0, False, 0, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if klass:
            if ch == "]":
                klass = False
        elif ch == "[":
            klass = True
            if pattern[i + 1:i + 2] == "^":
                i += 1
            if pattern[i + 1:i + 2] == "]":  # "[]...]": a literal "]" first
                i += 1
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            out.append(pattern[start:i])
            start = i + 1
        i += 1
    out.append(pattern[start:])
    return out


def _required_literals(rx: re.Pattern[str]) -> tuple[tuple[str, Any], ...] | None:
    """For each alternative of ``rx``: one literal (lower case) it must contain, and the alternative
    itself as a lazily compiled pattern, or None when the alternative is that literal alone (then
    the substring test is the match, for ASCII text). None for the whole rule if unsure.

    Lets type_from_text skip a rule with a substring test, and search only the alternatives whose
    literal is there: Python's re cannot skip ahead in case-insensitive alternations, and running
    every rule over every line of a report cost ~100 µs a line (~50 µs for one rule).
    """
    # Parsing the rules costs ~10 ms: a piped message finds the answer kept by abuso.startcache.
    found = remembered((rx.pattern, rx.flags), lambda: _literal_sources(rx.pattern, rx.flags), _literal_sources)
    if found is None:
        return None
    return tuple((literal, None if source is None else lazy_compile(source, rx.flags)) for literal, source in found)


def _literal_sources(pattern: str, flags: int) -> tuple[tuple[str, str | None], ...] | None:
    """_required_literals with each alternative as its source text (None: the literal alone)."""
    parsed = regex_tree(pattern, flags)
    if parsed is None:
        return None
    c, tree = parsed
    items = tree.data
    branches = [items]
    if len(items) == 1 and items[0][0] is c.BRANCH:  # (BRANCH, (None, [alternative, ...]))
        av = items[0][1]
        alternatives = av[1] if isinstance(av, tuple) else None
        if not isinstance(alternatives, list):
            return None
        branches = [alt.data for alt in alternatives]
    sources = _branches(pattern) if len(branches) > 1 else [pattern]
    if len(sources) != len(branches):
        return None
    found = []
    for branch, source in zip(branches, sources, strict=True):
        best, run, pure = "", "", True
        for op, av in branch:
            if op is c.LITERAL:
                if not isinstance(av, int):
                    return None
                run += chr(av)
                best = max(best, run, key=len)
            else:
                pure = False
                if op is not c.AT:  # \b between literals keeps the run going
                    run = ""
        if len(best) < 2:
            return None
        found.append((best.lower(), None if pure else source))
    return tuple(found)


_TRIGGERS: list[tuple[tuple[str, Any], ...] | None] = []  # filled on first use: parsing the rules costs ~3 ms


def type_from_text(text: str, keyed: Keyed | None = None) -> str | None:
    """The classification.type free text points at, or None.

    ``keyed``: the line with its key, made once for all its memos (abuso.digitblind.keyed), used only when made
    for this very text."""
    if keyed is not None and keyed[0] is text:
        # A line whose shape has a plan: the plan's answer, as _line_type gives it (without its checks). A plan
        # is kept only for a single ASCII line up to _LINE_MAX; the key is bytes for ASCII only and keeps
        # every newline and the length, so a line with that key is such a line too.
        plan = _LINE_TYPES.get(keyed[1])
        if plan is not None:
            return _answer(plan, text)
    if not _TRIGGERS:
        _TRIGGERS.extend(_required_literals(rx) for _, rx in KEYWORD_RULES)
    ascii_ = text.isascii()
    multiline = "\n" in text
    if ascii_ and not multiline and len(text) <= _LINE_MAX and _split_rules():
        return _line_type(text, keyed)
    low = text.lower() if ascii_ else None  # non-ASCII: re.I folds more than str.lower
    for (name, rx), triggers in zip(KEYWORD_RULES, _TRIGGERS, strict=True):
        if low is None or triggers is None:
            if rx.search(text):
                return name
            continue
        if not multiline:
            # One line: the rule matches where one of its alternatives does, and only an alternative
            # whose literal is in the line can.
            for t, alt in triggers:
                if t in low and (alt is None or alt.search(text)):
                    return name
            continue
        present = [t for t, _ in triggers if t in low]
        if not present:
            continue
        # Long text: only the lines holding a required literal can match.
        seen: set[int] = set()
        for t in present:
            pos = low.find(t)
            while pos >= 0:
                start = low.rfind("\n", 0, pos) + 1
                if start not in seen:
                    seen.add(start)
                    end = low.find("\n", pos)
                    if rx.search(text, start, len(text) if end < 0 else end):
                        return name
                pos = low.find(t, pos + 1)
    return None


#: Single ASCII lines up to this length are answered by _line_type.
_LINE_MAX = 2_000
#: For each rule: its alternatives (literal, pattern or None) that treat every digit alike, and those
#: that do not ("4625", "pop3-login", "530 login incorrect"). Empty until worked out; [None] when
#: some rule has no alternatives to split (then no line is memoised).
_SPLIT: list[Any] = []
#: By a line with its digits made 0: the first rule whose digit-blind alternatives match it (its name,
#: or None), and the alternatives with digits of the rules before it, checked on every line.
_LINE_TYPES: dict[str | bytes, tuple[str | None, tuple[tuple[str, str, Any], ...]]] = {}
_LINE_TYPES_KEPT = 8_192


def _split_rules() -> bool:
    if not _SPLIT:
        for (_, rx), triggers in zip(KEYWORD_RULES, _TRIGGERS, strict=True):
            # Parsing the alternatives costs ~15 ms: a piped message finds the answer kept by abuso.startcache.
            flags = remembered((rx.pattern, rx.flags), partial(_blind_alternatives, rx.pattern, rx.flags),
                               _blind_alternatives)
            if triggers is None or flags is None or len(flags) != len(triggers):
                _SPLIT[:] = [None]
                break
            _SPLIT.append((tuple(tr for tr, b in zip(triggers, flags, strict=True) if b),
                           tuple(tr for tr, b in zip(triggers, flags, strict=True) if not b)))
    return _SPLIT[0] is not None


def _blind_alternatives(pattern: str, flags: int) -> tuple[bool, ...] | None:
    """For each alternative of _literal_sources: does it match a line exactly when it matches the
    line with its digits made 0? (A literal without digits; a pattern that treats every digit alike.)"""
    found = _literal_sources(pattern, flags)
    if found is None:
        return None
    return tuple(not any(ch.isdigit() for ch in literal) and (source is None or digit_blind(source, flags))
                 for literal, source in found)


def _line_type(text: str, keyed: Keyed | None = None) -> str | None:
    """type_from_text of one ASCII line, the digit-blind part of the rules kept by the line's shape.

    A rule matches where one of its alternatives does. Whether a digit-blind alternative (a literal
    without digits, a pattern that treats every digit alike) matches a line is the same for every
    line with other digits in the same places; the others are checked on each line, for the rules
    before the first that matches by its digit-blind alternatives alone.
    """
    key = key_for(text, keyed)
    plan = _LINE_TYPES.get(key)
    if plan is None:
        low = text.lower()
        first: str | None = None
        checks: list[tuple[str, str, Any]] = []
        for (name, _), (plain, digits) in zip(KEYWORD_RULES, _SPLIT, strict=True):
            if any(t in low and (alt is None or alt.search(text)) for t, alt in plain):
                first = name
                break
            checks += [(name, t, alt) for t, alt in digits]
        plan = first, tuple(checks)
        if len(_LINE_TYPES) >= _LINE_TYPES_KEPT:
            _LINE_TYPES.clear()
        _LINE_TYPES[key] = plan
    return _answer(plan, text)


def _answer(plan: tuple[str | None, tuple[tuple[str, str, Any], ...]], text: str) -> str | None:
    """A line's type from its shape's plan: the first rule whose alternative with digits matches this very
    line, before the one its digit-blind alternatives gave."""
    first, digit_checks = plan
    if digit_checks:
        low = text.lower()
        for name, t, alt in digit_checks:
            if t in low and (alt is None or alt.search(text)):
                return name
    return first
