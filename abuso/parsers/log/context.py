"""One message's parse for the log parser: read blocks line by line, pair addresses with stamps."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from functools import partial

from ...addresses import find_addresses, source_address
from ...digitblind import Keyed, keyed
from ...errors import INPUT_ERRORS
from ...lazy import lazy_compile
from ...model import Incident, IPAddress, address_key
from ...taxonomy import type_from_text
from ...timestamps import Stamp, find_timestamps, parse_timestamp, stated_zone
from . import group as grouping
from .group import Occurrence
from .lines import (
    MAX_ADDRESSES,
    MAX_CHARS,
    MAX_FALLBACK,
    MAX_LINE,
    MAX_LINES,
    MAX_PER_LINE,
    RECORD_BACK,
    WINDOW,
    Lazy,
    LineTypes,
    Stamps,
    best,
    has_word,
    mask,
    pasted_headers,
    trim,
)
from .roles import _HOP, _RECEIVED, line_roles, strong_sources
from .table import Row, Table, header, read_row, read_spaced_row, spaced_header
from .whois import REPORT_KEYS, key_of, whois_lines

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any

    from ...normalize import Message
    from . import LogParser

#: A record's heading field ("Date: ...", "TimeCreated: ...", "Event time = ..."): its stamp dates the record.
_HEADING = lazy_compile(r"^\s*(?:[-*]\s*)?[\w ]{0,24}\b(?:date|time|timestamp|logged|created|when|datum|zeit|heure"
                        r"|fecha|hora)\w*\s*[:=]", re.I)
#: "22/11/2026": a slash date whose first number cannot be a month, so the block writes day first.
#: The look-behind comes after the day's two digits, which it skips (``..``): then the pattern starts with a
#: character set and re skips ahead to a 1, 2 or 3 (3x faster over a 64 KB log; the same matches).
_DAY_FIRST = lazy_compile(r"(?:1[3-9]|2\d|3[01])(?<![\d/]..)/(?:0?[1-9]|1[0-2])/(?:\d{4}|\d{2})(?![\d/])")
_CLOCK = lazy_compile(r"(?<![\d:])\d{1,2}:\d{2}(?::\d{2})?(?![\d:])")

#: Section headings whose words mean something else than the keyword rules say (Project Honey
#: Pot: "dictionary attacks" are spam to guessed mailboxes; harvesters crawl for addresses).
_SECTIONS = [
    (lazy_compile(r"\bharvest", re.I), "scanner"),
    (lazy_compile(r"\bdictionary attack|\bcomment spam|\bemail spam", re.I), "spam"),
    (lazy_compile(r"\bpotentially suspicious|\bother suspicious", re.I), "undetermined"),
]
_RULE = lazy_compile(r"^\s*[-=_*+]{5,}\s*$")
_COLUMN_RULE = lazy_compile(r"^[\s|+]*[-=_]{3,}[-=_\s|+]*$")
#: Google Safe Browsing notifications: <list type="0"> compromised sites, type 1 phishing (AbuseIO's reading).
_SB_LIST = lazy_compile(r'^\s*<list type="(\d)">')
_SB_TYPES = {"0": "system-compromise", "1": "phishing"}
_QUOTED_SUBJECT = lazy_compile(r"\bsubject:", re.I)
#: What a line that _QUOTED_SUBJECT matches holds once lowered: under re.I every character it matches for
#: "ubject:" lowers to that letter (for the "s", U+017F "ſ" lowers to itself: left out).
_QUOTED_HINT = "ubject:"


#: "<address> at <time>": the word that makes a subject's stamp the event's, not the report's.
_SUBJECT_AT = lazy_compile(r"[\s,:;(\[]*(?:at|on|@|um|am|à|le|el|il|op|em|a\s+las|alle(?:\s+ore)?|om|às)[\s,:]+$",
                           re.I)


def _dated_in_subject(subject: str, o: Occurrence) -> bool:
    """True when the subject says when the address did it ("Abuse from 192.0.2.1 at 2026-11-12 03:14 UTC");
    a stamp merely appended to a subject ("Spam from 192.0.2.1 - Tue, 24 Nov 2026") dates the report."""
    if o.stamp is None:
        return False
    at = subject.find(str(o.ip))
    return at >= 0 and bool(_SUBJECT_AT.match(subject, at + len(str(o.ip)), o.stamp.start))


def _relays(message: Message) -> set[IPAddress]:
    """Addresses in the report's own Received headers: the reporter's relays (and ours)."""
    try:
        received = message.email.get_all("Received") or [] if message.email is not None else []
    except INPUT_ERRORS:
        return set()
    out: set[IPAddress] = set()
    for value in received[:30]:
        out.update(source_address(f.ip) for f in find_addresses(str(value)[:2000], MAX_PER_LINE))
    return out


def _section_type(heading: str) -> str | None:
    for rx, type_ in _SECTIONS:
        if rx.search(heading):
            return type_
    return type_from_text(heading)


class Context:
    """The state of one message's parse: occurrences, roles and the zone sources."""

    def __init__(self, parser: LogParser, message: Message) -> None:
        self.parser = parser
        self.message = message
        self.reference = message.date
        self.header_offset: timedelta | None = message.date_offset if message.date is not None else None
        self.default = parser.default_zone
        self.occurrences: list[Occurrence] = []
        self.victims: set[IPAddress] = set()
        self.strong_victims: set[IPAddress] = set()  # by a field, a column or a transport header
        self.excluded: set[IPAddress] = set()
        self.excluded_labels: set[str] = set()
        self.last_excluded: tuple[IPAddress | None, str, bool] = (None, "", False)
        self.useless: set[str] = set()
        self.sources: set[IPAddress] = set()
        self.lines_read = 0
        self.chars_read = 0
        self.cap = ""
        # What each block states about its zone; a block that states nothing takes the
        # first statement of the message (a forwarder's remark covers the forwarded log).
        self.stated_by_block = {id(b): stated_zone(b.text) for b in message.blocks if b.kind != "headers"}
        self.message_stated = next((z for z in self.stated_by_block.values() if z), None)
        self.pasted = 0
        self.ranges = 0
        self.hops = 0
        self.fallbacks = 0
        self.addresses = 0
        self.dayfirst = False
        self.whois: set[int] = set()  # the current block's whois lines
        self.relays = _relays(message)

    @property
    def exhausted(self) -> bool:
        return bool(self.cap)

    def read_block(self, text: str, subject_hint: str | None, stated: Any = None) -> None:
        lines = text[:MAX_CHARS - self.chars_read + 1].split("\n")  # never split megabytes we will not read
        if len(text) > MAX_LINE:  # cut long lines first, so one huge line is read in part, not skipped
            lines = [ln[:MAX_LINE] for ln in lines]
        room = MAX_LINES - self.lines_read
        if len(lines) > room:
            lines = lines[:room]
            self.cap = self.cap or f"more than {MAX_LINES} lines"
        if self.chars_read + len(text) + 1 <= MAX_CHARS:
            self.chars_read += len(text) + 1
        else:
            out: list[str] = []
            for ln in lines:
                self.chars_read += len(ln) + 1
                if self.chars_read > MAX_CHARS:
                    self.cap = self.cap or f"more than {MAX_CHARS:,} characters of text"
                    break
                out.append(ln)
            lines = out
        self.lines_read += len(lines)
        cut = pasted_headers(lines)
        if cut is not None:
            # A pasted message (SpamCop's "[ Offending message ]"): its Received chain is the
            # received parser's, and its body is the spam, not a log.
            self.pasted += 1
            lines = lines[:cut]
        stated = stated or self.message_stated
        dayfirst = self.parser.dayfirst
        self.dayfirst = bool(_DAY_FIRST.search(text, 0, 65536)) if dayfirst is None else bool(dayfirst)
        stated_tz = stated[0] if stated else None
        # The subject, else the whole block, names the type when no line near an address does;
        # computed only when some address needs it (keyword rules over 64 KB are not free).
        fallback_hint = Lazy(lambda: subject_hint or type_from_text(text[:65536]))

        # Pass 1: addresses, stamps and line types. Each line that may hold an address is zeroed once
        # (digitblind.keyed), for the memos of its addresses, stamps, type and roles; other lines are zeroed by
        # the memo that needs them, if one does.
        addrs: list[list[Any]] = []
        keys: list[Keyed | None] = []
        count = 0
        for ln in lines:
            if "." in ln or ":" in ln:
                sh = keyed(ln)
                fs = find_addresses(ln, MAX_PER_LINE, sh)
            else:
                sh, fs = None, []
            if self.addresses + count + len(fs) > MAX_ADDRESSES:
                # Stop reading at the line where the cap is reached, and say so.
                self.lines_read -= len(lines) - len(addrs)
                lines = lines[:len(addrs)]
                self.cap = f"more than {MAX_ADDRESSES} addresses"  # it cut this block shorter still
                break
            count += len(fs)
            addrs.append(fs)
            keys.append(sh)
        self.addresses += count
        # (find_timestamps bound to this block's zone sources: Context.stamps, without two calls per line)
        stamps = Stamps(lines, partial(find_timestamps, reference=self.reference, stated=stated_tz,
                                       header_offset=self.header_offset, default=self.default,
                                       dayfirst=self.dayfirst), keys)
        types = LineTypes(lines, keys)
        # Pasted whois: its addresses accuse nobody, its created:/last-modified: date nothing, and
        # no stamp is looked for across it.
        self.whois = whois_lines(lines)
        for i in self.whois:
            stamps[i] = []
        for i, fs in enumerate(addrs):
            # An address beside a clock time no fast shape read ("3 mars 2026 13:05"): ask
            # dateparser, a few times per message at most (1-2 ms a call).
            if not fs or stamps[i] or self.fallbacks >= MAX_FALLBACK or i in self.whois:
                continue
            masked = mask(lines[i], fs)  # "fdf1::0:22" holds no clock
            clock = _CLOCK.search(masked)
            if clock and has_word(masked):
                self.fallbacks += 1
                lo = max(0, clock.start() - 40)
                part = masked[lo:clock.end() + 24]
                stamps[i] = [replace(st, start=st.start + lo, end=st.end + lo) for st in find_timestamps(
                    part, reference=self.reference, stated=stated_tz, header_offset=self.header_offset,
                    default=self.default, dayfirst=self.dayfirst, fallback=True)]

        strong = strong_sources(lines, addrs)
        table: Table | None = None
        section: str | None = None  # the type a list's heading names ("IPs Engaged In Harvesting ...:")
        for i, ln in enumerate(lines):
            if not ln.strip():
                table = None
                continue
            if table is not None and table.spaced is not None:
                if _COLUMN_RULE.match(ln):
                    continue  # the rule under a header ("-----  -----  ---")
                if addrs[i]:
                    self._use_row(table, read_spaced_row(table, ln, stamps[i]), ln, strong, fallback_hint)
                    continue
                table = None
            if table is not None:
                cells = table.cells_of(ln)
                if cells is not None:
                    self._row(table, cells, ln, stamps[i], stated_tz, strong, fallback_hint)
                    continue
                table = None
            if i in self.whois and (not addrs[i] or key_of(ln) not in REPORT_KEYS):
                self.ranges += len(addrs[i])
                section = None
                continue
            if not addrs[i]:
                table = (header(ln) if "," in ln or "\t" in ln or ";" in ln or "|" in ln or ln[:1] == "#"
                         else spaced_header(ln))
                xml = _SB_LIST.match(ln) if "<list" in ln else None
                if ln.lstrip()[:1] in "-=_*+" and _RULE.match(ln) or ln.strip() == "</list>":
                    section = None
                elif xml:
                    section = _SB_TYPES.get(xml.group(1))
                elif ln.rstrip().endswith(":") and len(ln) <= 100 and (i == 0 or not lines[i - 1].strip()):
                    section = _section_type(ln)
                continue
            self._line(i, lines, addrs, keys[i], stamps, types, fallback_hint, section)

    def read_subject(self, subject: str, hint: str | None) -> None:
        """Addresses in the Subject, as mentions; timed only when the body dates nothing for them.

        A subject-only complaint ("Spam from 192.0.2.1") still names its source, and a
        terse one ("Abuse from 192.0.2.1 at 2026-11-12T03:14:07 UTC", body "Thanks.")
        its time too. Where the body has timed lines for the address, the subject's
        stamp is dropped and the mention folds into them.
        """
        before, lines_read = len(self.occurrences), self.lines_read
        subject = subject[:MAX_LINE]
        self.read_block(subject, hint, None)
        self.lines_read = lines_read
        if len(self.occurrences) == before:
            return  # the subject names no address (the body's occurrences are read only when it does)
        timed = {o.ip for o in self.occurrences[:before] if o.stamp is not None}  # read_block only appends
        self.occurrences[before:] = [replace(o, stamp=o.stamp if o.ip not in timed and _dated_in_subject(subject, o)
                                             else None, evidence="Subject: " + trim(subject))
                                     for o in self.occurrences[before:]]

    def _row(self, table: Table, cells: list[str], line: str, line_stamps: list[Stamp], stated: Any,
             strong: list[tuple[IPAddress, int | None]], fallback_hint: Lazy) -> None:
        def parse_cell(cell: str) -> Stamp | None:
            return parse_timestamp(cell, reference=self.reference, stated=stated, header_offset=self.header_offset,
                                   default=self.default, dayfirst=self.dayfirst, fallback=False)

        def utc_stamps(text: str) -> list[Stamp]:
            return find_timestamps(text, reference=self.reference, dayfirst=self.dayfirst, format_utc=True)

        self._use_row(table, read_row(table, cells, line, line_stamps, parse_cell, utc_stamps), line, strong,
                      fallback_hint)

    def _use_row(self, table: Table, row: Row, line: str, strong: list[tuple[IPAddress, int | None]],
                 fallback_hint: Lazy) -> None:
        for ip in row.victims:
            self._exclude(ip, "victim column")
        sources = row.sources
        if not sources and not table.source and len(strong) == 1:
            sources = [strong[0]]
        for ip, p in sources:
            self._add(ip, row.stamp, line, row.hint, row.port or p, trim(line), fallback=fallback_hint)

    def _line(self, i: int, lines: list[str], addrs: list[list[Any]], sh: Keyed | None, stamps: Stamps,
              types: LineTypes, fallback_hint: Lazy, section: str | None = None) -> None:
        line = lines[i]
        if _HOP.match(line):  # a traceroute hop
            self.hops += 1
            return
        hint: str | None = None
        roles = line_roles(line, addrs[i], sh)
        # A host that relayed this very report to us, beside another candidate on a log line, is
        # the reporter's host field ("Nov 28 06:10:02 192.0.2.25 postfix/smtpd: ... from unknown[X]").
        if self.relays and len(roles) > 1:
            others = {r.ip for r in roles if r.kind in ("unclear", "source")} - self.relays
            for k, r in enumerate(roles):
                if r.kind == "unclear" and r.ip in self.relays and others:
                    roles[k] = r._replace(kind="victim", label="the report's own relay")
        # The address a log line accuses: the only candidate on a stamped line (an access log's
        # client). Beside another one it may be a syslog host field ("192.0.2.1 sshd: ... by X").
        if len(roles) == 1:  # most lines: what the general case gives for one role
            accused = roles[0] if roles[0].kind == "unclear" and stamps[i] else None
        else:
            candidates = [r for r in roles if r.kind == "unclear" or r.kind == "source"]
            accused = (candidates[0] if len(candidates) == 1 and candidates[0].kind == "unclear" and stamps[i]
                       else None)
        quoted: bool | None = None  # may the line quote a subject? (worked out for the first address it concerns)
        evidence: str | None = None  # the line trimmed, once
        occurrences = self.occurrences
        for role in roles:
            f, ip, kind, label, port, weak = role
            if kind == "useless":
                self.useless.add(str(ip))
                continue
            if kind == "range":
                self.ranges += 1
                continue
            if kind == "skip":
                continue
            if kind == "victim":
                self._exclude(ip, label, weak=weak)
                continue
            if hint is None:  # a Received: line is spam's
                hint = "spam" if _RECEIVED.match(line) else (types[i] or section or types.window(i))
            if quoted is None:
                quoted = _QUOTED_HINT in line.lower()  # (the regex scanning each line cost ~3 µs)
            if quoted and _QUOTED_SUBJECT.search(line, 0, f.start):
                # "Please preserve our Subject: [...](192.0.2.1) ... As of <date>": a reference to
                # the report, dated when it was sent; the address is mentioned, not dated.
                pairs: list[tuple[Stamp | None, str]] = [(None, trim(line))]
            elif own := stamps[i]:
                # The stamp nearest before the address, else the line's first (_pair dates the others).
                near = own[0]
                for st in own:
                    if st.end <= f.start:
                        near = st
                if evidence is None:
                    evidence = trim(line)
                occurrences.append(Occurrence(ip, near, line, hint, port, evidence, kind == "source", fallback_hint,
                                              role is accused))
                continue
            else:
                pairs = self._pair(i, lines, addrs, stamps)
            for stamp, ev in pairs:  # (self._add, inline)
                occurrences.append(Occurrence(ip, stamp, line, hint, port, ev, kind == "source", fallback_hint,
                                              role is accused))

    def _pair(self, i: int, lines: list[str], addrs: list[list[Any]], stamps: Stamps) -> list[tuple[Stamp | None, str]]:
        """The stamps that date the address at line i, a line without a stamp of its own (_line dates one
        with: the stamp nearest before the address, else the line's first), with evidence; [(None, line)]
        if none."""
        n = len(lines)
        listed = self._listed(i, lines, addrs, stamps)
        if listed:
            return listed
        up = down = True  # a horizontal rule ("-----") ends a record: no stamp across it
        for d in range(1, WINDOW + 1):
            for j, ok in ((i - d, up), (i + d, down)):
                if not ok or not 0 <= j < n:
                    continue
                if j in self.whois or _RULE.match(lines[j]):
                    up, down = (False, down) if j < i else (up, False)
                elif stamps[j] and not (addrs[j] and j > i):
                    return [(stamps[j][0], trim(lines[j] + " | " + lines[i]))]
        # A record's fields below its address ("Offending IP: ..." then "  - Time: ...").
        for j in range(i + WINDOW + 1, min(n, i + RECORD_BACK + 1)):
            ln = lines[j]
            if j in self.whois:
                break
            if not ln.strip():
                continue  # fields may be spaced out with blank lines
            if ln[:1] not in " \t-*" or addrs[j] and not _HEADING.match(ln):
                break
            if stamps[j] and _HEADING.match(ln):
                return [(stamps[j][0], trim(lines[i] + " | " + ln))]
        # A record's heading stamp ("Date: 11/22/2026 5:07:44 PM" above "Source Network Address: ...").
        for j in range(i - WINDOW - 1, max(-1, i - RECORD_BACK - 1), -1):
            if j in self.whois:
                break
            if stamps[j]:
                if not addrs[j] and _HEADING.match(lines[j]):
                    return [(stamps[j][0], trim(lines[j] + " | " + lines[i]))]
                break
        return [(None, trim(lines[i]))]

    @staticmethod
    def _listed(i: int, lines: list[str], addrs: list[list[Any]], stamps: Stamps
                ) -> list[tuple[Stamp | None, str]]:
        """Stamps listed under an address, one per indented item (Project Honey Pot):

            192.168.1.21 (S)
              - Mon, 21 Sep 2015 10:00AM PDT
                - Subject: ...
              - Mon, 21 Sep 2015 06:12AM PDT
        """
        out: list[tuple[Stamp | None, str]] = []
        for j in range(i + 1, min(len(lines), i + RECORD_BACK + 1)):
            ln = lines[j]
            if not ln[:1].isspace() or not ln.strip() or addrs[j]:
                break
            item = ln.lstrip()
            if stamps[j] and item[:1] in "-*" and stamps[j][0].start <= len(ln) - len(item) + 2:
                out.append((stamps[j][0], trim(lines[i] + " | " + ln)))
        return out

    def _exclude(self, ip: IPAddress, label: str, weak: bool = False) -> None:
        if ip is self.last_excluded[0] and label == self.last_excluded[1] and weak == self.last_excluded[2]:
            return  # the same address object (a log's DST= on every line), the same label: nothing new to add
        self.last_excluded = (ip, label, weak)
        self.victims.add(ip)
        if not weak:
            self.strong_victims.add(ip)
        self.excluded.add(ip)
        if label:
            self.excluded_labels.add(" ".join(label.split())[:30])

    def _add(self, ip: IPAddress, stamp: Stamp | None, line: str, hint: str | None, port: int | None,
             evidence: str, explicit: bool = True, fallback: Lazy | None = None, accused: bool = False) -> None:
        self.occurrences.append(Occurrence(ip, stamp, line, hint, port, evidence, explicit, fallback, accused))

    def incidents(self) -> list[Incident]:
        """Group occurrences into one incident per (ip, time); see the module doc.

        Addresses are compared by :func:`~abuso.model.address_key` (an ``ipaddress`` object hashes in
        Python); the incidents of one address share its first occurrence's address object.
        """
        parser = self.parser.name
        occs = self.occurrences
        if self.victims:
            # An address labelled victim anywhere is not accused where its role was unclear, unless
            # only the reporter's wording made it one ("our server", "against") and a log line accuses it.
            victims = {address_key(ip) for ip in self.victims}
            strong = {address_key(ip) for ip in self.strong_victims}
            occs = [o for o in occs if o.explicit or (k := address_key(o.ip)) not in victims
                    or o.accused and k not in strong]
        groups = grouping.groups(occs)
        shared: dict[object, IPAddress] = {}   # address key -> the address object its incidents hold
        for g in groups:
            ip = g[0].ip
            shared.setdefault(ip._ip if ip._version == 4 else (ip._ip, ip._scope_id), ip)  # type: ignore[union-attr]
        if self.excluded:
            self.excluded -= {ip for ip in self.excluded if address_key(ip) in shared}
        dated = self.message.date if self.parser.date_fallback else None
        out = []
        for g in groups:
            o = g[0]
            ip = o.ip
            ip = shared[ip._ip if ip._version == 4 else (ip._ip, ip._scope_id)]  # type: ignore[union-attr]
            if len(g) == 1:  # most groups: what the general case below gives for one occurrence
                stamp, first, port = o.stamp, o, o.port
                type_ = o.hint or (o.fallback and o.fallback()) or "undetermined"
            else:
                timed = [(o.stamp, o) for o in g if o.stamp is not None]
                # The finest stamp of the group; None only for the group of an address without a time.
                stamp, first = min(timed, key=lambda so: so[0].precision) if timed else (None, g[0])
                type_ = (best([o.hint for o in g]) or best([o.fallback() for o in g if o.fallback])
                         or "undetermined")
                port = next((o.port for o in g if o.port is not None), None)
            if stamp is None:
                if dated is not None:
                    out.append(Incident(ip, type_, dated, parser, "date-header", port, first.evidence,
                                        {"time_from": "report Date header"}))
                else:
                    out.append(Incident(ip, type_, None, parser, "none", port, first.evidence))
            else:
                out.append(Incident(ip, type_, stamp.time, parser, stamp.zone, port, first.evidence))
        self.sources.update(shared.values())
        return out
