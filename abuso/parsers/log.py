"""The free-text ``log`` parser: addresses and timestamps in pasted logs and prose.

What it does, in order, for every text block except header blocks (the
``received`` parser owns Received chains of attached messages; a pasted header
section, SpamCop's "[ Offending message ]", is left to it with the spam after it):

1. Read each line once: its addresses (abuso.addresses), its timestamps
   (abuso.timestamps) and the role of each address from the words before it
   ("SRC=", "from", "Source IP:" vs "DST=", "Destination", "our server",
   "->"), plus whole-line labels ("Reporter:", "inetnum:"). Whois ranges,
   CIDR networks, traceroute hops and URL hosts inside a logged request are
   not accused.
2. Tables with a header row (myNetWatchman's "AgentName, Event Date Time,
   Destination IP, ...", W3C "#Fields:") are read by column name, so a
   destination column is never taken for the source. A table whose rows name
   no source takes the one address the report labels as source ("Source IP:").
3. Pair each source address with a time: a stamp on its own line; else the
   stamps listed under it ("  - Mon, 21 Sep 2015 10:00AM PDT"); else the
   nearest stamp within two lines, not across a "-----" rule (every line
   counts, including the first body line and each adjacent pair, which
   Mail::Abuse skipped); else a record's "Time:" field below it or its
   "Date:" heading above it (Windows events).
4. Type: keywords of the line, else of the list heading it is under
   ("IPs Engaged In Harvesting:"), else of the lines around it, else of the
   subject, else of the whole block; "undetermined" when nothing says.
5. One incident per (ip, time): the same event logged by two lines (a firewall
   deny and the worm signature behind it) gets the highest-priority type of the
   taxonomy keyword rules, never a random one. Stamps without seconds merge
   into a precise stamp of the same minute. An address that never got a stamp
   gives one incident without time (or the report's Date with date_fallback).

Options: ``zone`` (config defaults.zone, for naive stamps when the report has
no Date offset), ``date_fallback``, ``dayfirst`` (slash dates; by default a
block is day-first when it shows a slash date starting with a day > 12).
Work is capped (lines, characters, addresses, dateparser calls) and the
verdict says when a cap cut the reading short.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable

from ..addresses import find_addresses, is_useful_source, source_address
from ..lazy import lazy_compile
from ..model import Incident, IPAddress, Verdict
from ..options import Option
from ..taxonomy import KEYWORD_RULES, type_from_text
from ..timestamps import Stamp, find_timestamps, parse_timestamp, stated_zone, zone_tzinfo
from .base import TIME_OPTIONS, Parser

if TYPE_CHECKING:
    from ..normalize import Message

#: Work caps for hostile input: lines and characters read per message, characters per line.
MAX_LINES = 20_000
MAX_CHARS = 2_000_000
MAX_LINE = 2_000
#: Address occurrences read per message (each costs ~150 µs: a hostile list is cut at 3,000), and per line
#: (a line with more is a list, not a log line).
MAX_ADDRESSES = 3_000
MAX_PER_LINE = 32
#: Lines around an address searched for its stamp; how far back a record's heading stamp may be.
WINDOW = 2
RECORD_BACK = 40
EVIDENCE = 300
#: dateparser calls per message, for stamps no fast shape reads.
MAX_FALLBACK = 3

_PRIORITY = {name: i for i, (name, _) in enumerate(KEYWORD_RULES)}

# The words right before an address that give its role. Checked victim first:
# "Destination IP:" ends in "IP:" too.
# Deliberately absent: "server", "resolver", "DNS" - in a report, "your server 1.2.3.4" and "open
# resolver 1.2.3.4" are the accused; the reporter's own say "our".
_VICTIM_BEFORE = lazy_compile(
    r"(?:\bdst|\bdest(?:ination)?|\btarget(?:ed)?|\bvictim|\bto|\bagainst|\bour\b[\w\s-]{0,20}|\bhoneypot"
    r"|\bziel(?:-?ip)?|\bcible|\bdestino|\b(?:unser\w*|notre|nos|nuestros?)\b[\w\s-]{0,20}"
    r"|\b(?:attacks?|attacked|scans?|scanned|probes?|probing|logins?|connections?|traffic|requests?|hits?)\s+on"
    r"|\bsensor|\bsinkhole|\breporter|\breported\s+by|\blip|\bgateway|\bnext\s?hop"
    r"|\blocal(?:\s+(?:ip|address|host))?|\bdaddr|\bdhost|->|=>|>)"
    r"(?:\s+(?:ip|ips|address|addr|host|port|range|network|net|subnet|netblock|block))?"
    r"\s*(?:[:=#(\[]|\bis\b|\bwas\b|\s)*$", re.I)
#: Labels that name the accused; they outweigh a victim label the same address got elsewhere.
_SOURCE_BEFORE = lazy_compile(
    r"(?:\bsrc|\bsource|\bfrom|\battack(?:er|ing)?|\boffend(?:er|ing)|\boriginat(?:ing|ed|or)|\borigin|\bclient"
    r"|\brhost|\brip|\bremote|\bban(?:ned)?|\bsaddr|\bshost|\bblocked|\bdenied"
    r"|\bquell(?:e|-?ip)?|\bangreifer|\battaquant|\borigen|\batacante)"
    r"(?:\s+(?:ip|ips|address|addr|host|dns|network address))?\s*(?:[:=#(\[]|\bis\b|\bwas\b|\s)*$", re.I)
#: "Source IP: 1.2.3.4", "Src:(1.2.3.4)", "Attacker: ..." - strong enough to name a whole table's source.
_STRONG_SOURCE = lazy_compile(r"(?:\bsrc|\bsource(?:\s+ip(?:\s+address)?|\s+address)?|\battacker(?:\s+ip)?"
                            r"|\boffending\s+ip|\boffender|\bquell-?ip|\bangreifer)\s*[:=(\[]\s*\(?$", re.I)
#: Whole lines whose addresses are never the accused: victims, reporters, whois ranges.
_LINE_NOT_SOURCE = lazy_compile(
    r"^\s*(?:destination|dest|dst|target|victim|reporter|reported\s+by|reporting|our\s|honeypot|sensor|whois"
    r"|contact|abuse\s+contact|name\s?servers?|n?server|ns\d?|inetnum|inet6num|netrange|cidr|route6?|network"
    r"|netblock|range|origin\s?as|by\b)[^:=]{0,30}[:=]", re.I)
_LINE_RANGE = lazy_compile(r"^(?:whois|inetnum|inet6num|netrange|cidr|route6?|network|netblock|range|origin)",
                         re.I)
#: Words right after an address that make it the reporter's: "192.0.2.9 (our honeypot)".
_VICTIM_AFTER = lazy_compile(r"\s*[(\[]\s*(?:our|my|unser\w*|notre|the victim|victim|target|honeypot|sensor"
                           r"|reporter)\b", re.I)
_RECEIVED = lazy_compile(r"^\s*(?:Return-Path:\s*)?Received:\s*from\b", re.I)
_BY = lazy_compile(r"\bby\b", re.I)
#: "3  ge-6-20.car1.Zurich1.Level3.net (213.242.67.105)  1.2 ms": a traceroute hop is a router on the way.
_HOP = lazy_compile(r"^\s*\d{1,2}\s+(?:\S+\s+)?\(?[0-9A-Fa-f.:]+\)?(?:\s+(?:[\d.]+\s*ms|\*|!\w))*\s*$")
_CIDR_AFTER = lazy_compile(r"/(\d{1,3})(?!\d)")
#: A record's heading field ("Date: ...", "TimeCreated: ...", "Event time = ..."): its stamp dates the record.
_HEADING = lazy_compile(r"^\s*(?:[-*]\s*)?[\w ]{0,24}\b(?:date|time|timestamp|logged|created|when|datum|zeit|heure"
                      r"|fecha|hora)\w*\s*[:=]", re.I)
_DIGIT = lazy_compile(r"\d")
#: "22/11/2026": a slash date whose first number cannot be a month, so the block writes day first.
_DAY_FIRST = lazy_compile(r"(?<![\d/])(?:1[3-9]|2\d|3[01])/(?:0?[1-9]|1[0-2])/(?:\d{4}|\d{2})(?![\d/])")
#: The source port written apart from the address: iptables SPT=, Check Point s_port:, sport=.
_SPT = lazy_compile(r"\b(?:SPT|s_port|sport|src_?port)\s*[=:]\s*(\d{1,5})\b", re.I)
_TIMEISH = lazy_compile(r"\d:\d\d")
_CLOCK = lazy_compile(r"(?<![\d:])\d{1,2}:\d{2}(?::\d{2})?(?![\d:])")

# Table header cells.
_COL_TIME = lazy_compile(r"time|date|\bseen\b|timestamp|\bwhen\b|epoch|\bts\b", re.I)
_COL_VICTIM = lazy_compile(r"dest|dst|target|victim|sensor|agent|reporter|honeypot|\bto\b|local|^s-ip$|^server", re.I)
_COL_SOURCE = lazy_compile(r"source|\bsrc|attacker|offend|origin|remote|client|^c-ip$|"
                           r"^(?:ip|ip[ _-]?addr(?:ess)?|address"
                         r"|host|from|ipv[46]|addr)$", re.I)
_COL_PORT = lazy_compile(r"port", re.I)
_SEPARATORS = ("\t", ";", "|", ",")


@dataclass
class _Occurrence:
    ip: IPAddress
    stamp: Stamp | None
    line: str
    hint: str | None  # type from the line or its record
    port: int | None = None
    evidence: str = ""
    #: Was the address labelled as the source ("SRC=", "from", "Source IP:")?
    explicit: bool = True
    #: The type the subject or the whole block names, for when no nearby line does.
    fallback: _Lazy | None = None


@dataclass
class _Table:
    sep: str
    cells: int
    time: list[int] = field(default_factory=list)
    source: list[int] = field(default_factory=list)
    victim: list[int] = field(default_factory=list)
    source_port: int | None = None
    epoch: bool = False
    hint: str | None = None
    #: The format defines its times as UTC (W3C extended logs).
    utc: bool = False


_HEADER_FIELD = lazy_compile(r"^(?:Return-Path: +)?[A-Za-z][\w-]{0,40}:[ \t]")
_TRANSPORT = lazy_compile(r"^(?:Return-Path: +)?(?:Received|Return-Path|Delivered-To|Message-ID|X-Received|"
                        r"ARC-[\w-]+|DKIM-Signature|Authentication-Results):", re.I)


def _pasted_headers(lines: list[str]) -> int | None:
    """Index of the first line of a pasted header section (2+ header lines, one a Received:), or None.

    A lone Received: line quoted as evidence is not a section: the log parser reads it.
    """
    run_start, run, has_received = 0, 0, False
    for i, ln in enumerate(lines):
        if _HEADER_FIELD.match(ln) or (run and ln[:1] in " \t" and ln.strip()):
            if run == 0:
                run_start, has_received = i, False
            run += 1
            has_received = has_received or bool(_TRANSPORT.match(ln)) and "received" in ln[:30].lower()
            if run >= 2 and has_received:
                return run_start
        else:
            run = 0
    return None


class _Lazy:
    """A value computed on first use, then kept."""

    __slots__ = ("fn", "done", "value")
    value: str | None

    def __init__(self, fn: Callable[[], str | None]) -> None:
        self.fn, self.done, self.value = fn, False, None

    def __call__(self) -> str | None:
        if not self.done:
            self.value, self.done = self.fn(), True
        return self.value


class _Stamps:
    """Timestamps of lines, read only for the lines something asks about (near an address, in a
    table): reading every line of 20,000 timestamped lines without an address took 1.5 s."""

    def __init__(self, lines: list[str], read: Callable[[str], list[Stamp]]) -> None:
        self.lines, self.read = lines, read
        self.cache: dict[int, list[Stamp]] = {}
        self.by_text: dict[str, list[Stamp]] = {}  # a repeated line is read once

    def __getitem__(self, i: int) -> list[Stamp]:
        found = self.cache.get(i)
        if found is None:
            ln = self.lines[i]
            found = self.by_text.get(ln)
            if found is None:
                found = self.by_text[ln] = self.read(ln) if _DIGIT.search(ln) else []
            self.cache[i] = found
        return found

    def __setitem__(self, i: int, value: list[Stamp]) -> None:
        self.cache[i] = value


class _LineTypes:
    """Keyword types of lines, computed only for lines near an address."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.cache: dict[int, str | None] = {}

    def __getitem__(self, i: int) -> str | None:
        if i not in self.cache:
            ln = self.lines[i]
            self.cache[i] = type_from_text(ln) if ln.strip() else None
        return self.cache[i]

    def window(self, i: int) -> str | None:
        return _best([self[j] for j in range(max(0, i - WINDOW), min(len(self.lines), i + WINDOW + 1))])


_WORD = lazy_compile(r"[^\W\d_]{3,}")


def _mask(line: str, found: list[Any]) -> str:
    """The line with its addresses blanked out, positions kept."""
    for f in found:
        line = line[:f.start] + " " * (f.end - f.start) + line[f.end:]
    return line


def _trim(line: str) -> str:
    line = " ".join(line.split())
    return line if len(line) <= EVIDENCE else line[: EVIDENCE - 1] + "…"


def _best(types: list[str | None]) -> str | None:
    known = [t for t in types if t]
    return min(known, key=lambda t: _PRIORITY.get(t, len(_PRIORITY))) if known else None


def _header(line: str) -> _Table | None:
    """A table header row: 3+ word cells, naming a time or an address column.

    Also the W3C extended log header (IIS): ``#Fields: date time s-ip ... c-ip``,
    space separated, times in UTC by the format's definition.
    """
    w3c = line.startswith("#Fields:")
    if not line or not w3c and (line.count(":") > 2 or _TIMEISH.search(line)):
        return None
    for sep in (" ",) if w3c else _SEPARATORS:
        if not w3c and line.count(sep) < 2:
            continue
        cells = line[8:].split() if w3c else [c.strip() for c in line.split(sep)]
        if sep == "|":
            cells = [c for c in cells if c] or cells
        if max(map(len, cells)) > 42:
            continue  # a sentence with commas, not column names
        wordy = sum(1 for c in cells if c and re.fullmatch(r"[A-Za-z][\w .#/()-]{0,40}", c))
        if wordy < max(3, len(cells) * 2 // 3):
            continue
        t = _Table(sep, len(cells), utc=w3c)
        for i, c in enumerate(cells):
            if _COL_PORT.search(c):
                if re.search(r"source|src|^c-", c, re.I) and t.source_port is None:
                    t.source_port = i
            elif _COL_VICTIM.search(c):
                t.victim.append(i)
            elif _COL_TIME.search(c):
                t.time.append(i)
                t.epoch = t.epoch or bool(re.search(r"epoch|unix|\bts\b", c, re.I))
            elif _COL_SOURCE.search(c):
                t.source.append(i)
        if t.time or t.source:
            t.hint = type_from_text(line)
            return t
    return None


class LogParser(Parser):
    """Free text: pasted logs and prose. See the module doc for the rules."""

    name = "log"
    priority = 10
    fallback = True

    OPTIONS = TIME_OPTIONS + (
        Option("dayfirst", "bool", help="slash dates are day first (default: month first unless a day > 12 shows)"),
    )

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        zone = self.options.get("zone")
        self.default_zone = zone_tzinfo(str(zone)) if zone else None
        self.date_fallback = bool(self.options.get("date_fallback", False))
        #: Slash dates are month first (US) unless this says so, or the block shows a day > 12 first.
        self.dayfirst = self.options.get("dayfirst")

    def parse(self, message: Message) -> Verdict:
        blocks = [b for b in message.blocks if b.kind != "headers"]
        if not blocks:
            return self.not_applicable("no text to read")
        subject_hint = type_from_text(message.subject or "")
        ctx = _Context(self, message)
        for b in blocks:
            if ctx.exhausted:
                break
            ctx.read_block(b.text, subject_hint, ctx.stated_by_block.get(id(b)))
        ctx.read_subject(message.subject or "", subject_hint)
        return self._verdict(ctx, message)

    def _verdict(self, ctx: _Context, message: Message) -> Verdict:
        """Say what was found, or why nothing was: "0 incidents" alone is what desks hate most."""
        incidents = ctx.incidents()
        notes = []
        if ctx.excluded:
            notes.append(f"{_n(len(ctx.excluded), 'victim/reporter address', 'victim/reporter addresses')} left out"
                         f" ({', '.join(sorted(ctx.excluded_labels)[:4])})")
        if ctx.ranges:
            notes.append(f"{_n(ctx.ranges, 'whois or network-range address', 'whois or network-range addresses')}"
                         " skipped")
        if ctx.hops:
            notes.append(f"{_n(ctx.hops, 'traceroute hop')} skipped")
        if ctx.pasted:
            notes.append("a pasted message (headers and body) left to the received/spamcop parsers")
        if ctx.useless:
            notes.append(f"unusable {_n(len(ctx.useless), 'address', 'addresses')} ignored "
                         f"({', '.join(sorted(ctx.useless)[:3])})")
        if ctx.cap:
            notes.append(f"read only the first {ctx.lines_read} lines ({ctx.cap})")
        tail = "; " + "; ".join(notes) if notes else ""
        if incidents:
            head = _n(len(ctx.sources), "source address", "source addresses")
            untimed = sum(1 for i in incidents if i.time is None or i.extra.get("time_from"))
            if untimed:
                head += f", {untimed} without a timestamp" + (" (the report's Date used)" if self.date_fallback else "")
            return self.found(incidents, head + tail)
        if notes:
            return self.found([], f"no accused address in {_n(ctx.lines_read, 'line')}" + tail)
        return self.not_applicable(f"no IP address in {ctx.lines_read} lines of text")


#: Section headings whose words mean something else than the keyword rules say (Project Honey
#: Pot: "dictionary attacks" are spam to guessed mailboxes; harvesters crawl for addresses).
_SECTIONS = [
    (lazy_compile(r"\bharvest", re.I), "scanner"),
    (lazy_compile(r"\bdictionary attack|\bcomment spam|\bemail spam", re.I), "spam"),
    (lazy_compile(r"\bpotentially suspicious|\bother suspicious", re.I), "undetermined"),
]
_RULE = lazy_compile(r"^\s*[-=_*+]{5,}\s*$")
#: Google Safe Browsing notifications: <list type="0"> compromised sites, type 1 phishing (AbuseIO's reading).
_SB_LIST = lazy_compile(r'^\s*<list type="(\d)">')
_SB_TYPES = {"0": "system-compromise", "1": "phishing"}
_QUOTED_SUBJECT = lazy_compile(r"\bsubject:", re.I)


#: "<address> at <time>": the word that makes a subject's stamp the event's, not the report's.
_SUBJECT_AT = lazy_compile(r"[\s,:;(\[]*(?:at|on|@|um|am|à|le|el|il|op|em|a\s+las|alle(?:\s+ore)?|om|às)[\s,:]+$",
                           re.I)


def _dated_in_subject(subject: str, o: _Occurrence) -> bool:
    """True when the subject says when the address did it ("Abuse from 192.0.2.1 at 2026-11-12 03:14 UTC");
    a stamp merely appended to a subject ("Spam from 192.0.2.1 - Tue, 24 Nov 2026") dates the report."""
    if o.stamp is None:
        return False
    at = subject.find(str(o.ip))
    return at >= 0 and bool(_SUBJECT_AT.match(subject, at + len(str(o.ip)), o.stamp.start))


def _section_type(heading: str) -> str | None:
    for rx, type_ in _SECTIONS:
        if rx.search(heading):
            return type_
    return type_from_text(heading)


def _coarseness(group: list[_Occurrence]) -> float:
    """The finest precision among a group's stamps, in seconds."""
    return min(o.stamp.precision for o in group if o.stamp is not None)


def _n(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


class _Context:
    """The state of one message's parse: occurrences, roles and the zone sources."""

    def __init__(self, parser: LogParser, message: Message) -> None:
        self.parser = parser
        self.message = message
        self.reference = message.date
        self.header_offset: timedelta | None = message.date_offset if message.date is not None else None
        self.default = parser.default_zone
        self.occurrences: list[_Occurrence] = []
        self.victims: set[IPAddress] = set()
        self.excluded: set[IPAddress] = set()
        self.excluded_labels: set[str] = set()
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

    @property
    def exhausted(self) -> bool:
        return bool(self.cap)

    def stamps(self, line: str, stated: Any, epoch: bool = False) -> list[Stamp]:
        return find_timestamps(line, reference=self.reference, stated=stated, header_offset=self.header_offset,
                               default=self.default, epoch=epoch, dayfirst=self.dayfirst)

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
        cut = _pasted_headers(lines)
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
        fallback_hint = _Lazy(lambda: subject_hint or type_from_text(text[:65536]))

        # Pass 1: addresses, stamps and line types.
        addrs: list[list[Any]] = []
        count = 0
        for ln in lines:
            fs = find_addresses(ln, MAX_PER_LINE) if ("." in ln or ":" in ln) else []
            if self.addresses + count + len(fs) > MAX_ADDRESSES:
                # Stop reading at the line where the cap is reached, and say so.
                self.lines_read -= len(lines) - len(addrs)
                lines = lines[:len(addrs)]
                self.cap = f"more than {MAX_ADDRESSES} addresses"  # it cut this block shorter still
                break
            count += len(fs)
            addrs.append(fs)
        self.addresses += count
        stamps = _Stamps(lines, lambda ln: self.stamps(ln, stated_tz))
        types = _LineTypes(lines)
        for i, fs in enumerate(addrs):
            # An address beside a clock time no fast shape read ("3 mars 2026 13:05"): ask
            # dateparser, a few times per message at most (1-2 ms a call).
            if not fs or stamps[i] or self.fallbacks >= MAX_FALLBACK:
                continue
            masked = _mask(lines[i], fs)  # "fdf1::0:22" holds no clock
            clock = _CLOCK.search(masked)
            if clock and _WORD.search(masked):
                self.fallbacks += 1
                lo = max(0, clock.start() - 40)
                part = masked[lo:clock.end() + 24]
                stamps[i] = [replace(st, start=st.start + lo, end=st.end + lo) for st in find_timestamps(
                    part, reference=self.reference, stated=stated_tz, header_offset=self.header_offset,
                    default=self.default, dayfirst=self.dayfirst, fallback=True)]

        strong_sources = self._strong_sources(lines, addrs)
        table: _Table | None = None
        section: str | None = None  # the type a list's heading names ("IPs Engaged In Harvesting ...:")
        for i, ln in enumerate(lines):
            if not ln.strip():
                table = None
                continue
            if table is not None:
                cells = [c.strip() for c in ln.split(table.sep)]
                if table.sep == "|":
                    cells = [c for c in cells if c] or cells
                if abs(len(cells) - table.cells) <= 1:
                    self._row(table, cells, ln, stamps[i], stated_tz, strong_sources, fallback_hint)
                    continue
                table = None
            if not addrs[i]:
                table = _header(ln) if "," in ln or "\t" in ln or ";" in ln or "|" in ln or ln[:1] == "#" else None
                xml = _SB_LIST.match(ln) if "<list" in ln else None
                if ln.lstrip()[:1] in "-=_*+" and _RULE.match(ln) or ln.strip() == "</list>":
                    section = None
                elif xml:
                    section = _SB_TYPES.get(xml.group(1))
                elif ln.rstrip().endswith(":") and len(ln) <= 100 and (i == 0 or not lines[i - 1].strip()):
                    section = _section_type(ln)
                continue
            self._line(i, lines, addrs, stamps, types, fallback_hint, section)

    def read_subject(self, subject: str, hint: str | None) -> None:
        """Addresses in the Subject, as mentions; timed only when the body dates nothing for them.

        A subject-only complaint ("Spam from 192.0.2.1") still names its source, and a
        terse one ("Abuse from 192.0.2.1 at 2026-11-12T03:14:07 UTC", body "Thanks.")
        its time too. Where the body has timed lines for the address, the subject's
        stamp is dropped and the mention folds into them.
        """
        before, lines_read = len(self.occurrences), self.lines_read
        timed = {o.ip for o in self.occurrences if o.stamp is not None}
        subject = subject[:MAX_LINE]
        self.read_block(subject, hint, None)
        self.lines_read = lines_read
        self.occurrences[before:] = [replace(o, stamp=o.stamp if o.ip not in timed and _dated_in_subject(subject, o)
                                             else None, evidence="Subject: " + _trim(subject))
                                     for o in self.occurrences[before:]]

    def _strong_sources(self, lines: list[str], addrs: list[list[Any]]) -> list[tuple[IPAddress, int | None]]:
        found: dict[IPAddress, int | None] = {}
        for ln, fs in zip(lines, addrs, strict=True):
            for f in fs:
                if _STRONG_SOURCE.search(ln, max(0, f.start - 24), f.start):
                    ip = source_address(f.ip)
                    if is_useful_source(ip):
                        found.setdefault(ip, f.port)
        return list(found.items())

    def _row(self, table: _Table, cells: list[str], line: str, line_stamps: list[Stamp], stated: Any,
             strong_sources: list[tuple[IPAddress, int | None]], fallback_hint: _Lazy) -> None:
        stamp = None
        if table.time:
            # The stamp read from the line that lies in a time column (not a "last seen" elsewhere).
            starts, pos = [], 0
            for c in line.split(table.sep):
                starts.append(pos)
                pos += len(c) + len(table.sep)
            spans = [(starts[ci], starts[ci + 1] if ci + 1 < len(starts) else len(line))
                     for ci in table.time if ci < len(starts)]
            stamp = next((st for st in line_stamps if any(a <= st.start < b for a, b in spans)), None)
            for ci in table.time if stamp is None else ():
                if ci < len(cells) and cells[ci]:
                    stamp = parse_timestamp(cells[ci], reference=self.reference, stated=stated,
                                            header_offset=self.header_offset, default=self.default,
                                            dayfirst=self.dayfirst, fallback=False)
                    if stamp is not None:
                        break
        if stamp is None and line_stamps:
            stamp = line_stamps[0]
        if stamp is not None and table.utc and stamp.zone != "explicit":
            # W3C extended logs are UTC by definition: read the same stamp again, the format's UTC first.
            start = stamp.start
            stamp = next((st for st in find_timestamps(line, reference=self.reference, dayfirst=self.dayfirst,
                                                       format_utc=True) if st.start == start), stamp)
        port = None
        if table.source_port is not None and table.source_port < len(cells) and cells[table.source_port].isdigit():
            port = int(cells[table.source_port])
        hint = type_from_text(line) or table.hint
        sources: list[tuple[IPAddress, int | None]] = []
        for ci, cell in enumerate(cells):
            for f in find_addresses(cell) if ("." in cell or ":" in cell) else []:
                ip = source_address(f.ip)
                if ci in table.victim:
                    self._exclude(ip, "victim column")
                elif ci in table.source or not table.source:
                    sources.append((ip, f.port))
        if not sources and not table.source and len(strong_sources) == 1:
            sources = [strong_sources[0]]
        for ip, p in sources:
            self._add(ip, stamp, line, hint, port or p, _trim(line), fallback=fallback_hint)

    def _line(self, i: int, lines: list[str], addrs: list[list[Any]], stamps: _Stamps,
              types: _LineTypes, fallback_hint: _Lazy, section: str | None = None) -> None:
        line = lines[i]
        if _HOP.match(line):
            self.hops += 1
            return
        received = bool(_RECEIVED.match(line))
        by = _BY.search(line) if received else None
        line_victim = bool(_LINE_NOT_SOURCE.match(line))
        # Other, non-URL addresses on the line: then a URL host is content, not the actor.
        others = sum(1 for f in addrs[i] if not line.endswith("://", max(0, f.start - 8), f.start)) > 0
        prev_end = 0
        for f in addrs[i]:
            ip = source_address(f.ip)
            before = line[max(prev_end, f.start - 40):f.start]
            prev_end = f.end
            if not is_useful_source(ip):
                self.useless.add(str(ip))
                continue
            cidr = _CIDR_AFTER.match(line, f.end)
            if cidr and int(cidr.group(1)) < ip.max_prefixlen:
                self.ranges += 1
                continue  # a network (whois, "targeted range"), not one machine
            role = None
            if received:
                if re.search(r"helo[= ]\s*\[?$", before, re.I):
                    continue  # the name the client claimed, not where it connected from
                role = "victim" if by and f.start > by.start() else "source"
            if role is None:
                m = _VICTIM_BEFORE.search(before)
                if m:
                    role = "victim"
                    label = m.group().strip(" :=#([")
                elif _SOURCE_BEFORE.search(before):
                    role = "source"
            if role is None:
                after = _VICTIM_AFTER.match(line, f.end)
                if after:
                    role, label = "victim", after.group().strip(" ([")
            if role is None and line_victim:
                label = line.split(":")[0].split("=")[0].strip()[:30]
                if _LINE_RANGE.match(label):
                    self.ranges += 1
                    continue  # whois output: who holds the address, not who did it
                role = "victim"
            if role is None and line.endswith("://", max(0, f.start - 8), f.start) and others:
                continue  # a URL host in a logged request, beside the client that sent it
            if role == "victim":
                self._exclude(ip, label if not received else "Received by")
                continue
            if _QUOTED_SUBJECT.search(line, 0, f.start):
                # "Please preserve our Subject: [...](192.0.2.1) ... As of <date>": a reference to
                # the report, dated when it was sent; the address is mentioned, not dated.
                pairs: list[tuple[Stamp | None, str]] = [(None, _trim(line))]
            else:
                pairs = self._pair(i, lines, addrs, stamps, f)
            hint = "spam" if received else (types[i] or section or types.window(i))
            port = f.port
            if port is None and re.search(r"\b(?:src|saddr)\s*[=:]\s*$", line[max(0, f.start - 8):f.start], re.I):
                m = _SPT.search(line)
                port = int(m.group(1)) if m else None
            for stamp, ev in pairs:
                self._add(ip, stamp, line, hint, port, ev, explicit=role == "source", fallback=fallback_hint)

    def _pair(self, i: int, lines: list[str], addrs: list[list[Any]], stamps: _Stamps,
              f: Any) -> list[tuple[Stamp | None, str]]:
        """The stamps that date the address at line i, with evidence; [(None, line)] if none."""
        own = stamps[i]
        if own:
            # The stamp nearest before the address, else the line's first one.
            before = [s for s in own if s.end <= f.start]
            return [((before[-1] if before else own[0]), _trim(lines[i]))]
        n = len(lines)
        listed = self._listed(i, lines, addrs, stamps)
        if listed:
            return listed
        up = down = True  # a horizontal rule ("-----") ends a record: no stamp across it
        for d in range(1, WINDOW + 1):
            for j, ok in ((i - d, up), (i + d, down)):
                if not ok or not 0 <= j < n:
                    continue
                if _RULE.match(lines[j]):
                    up, down = (False, down) if j < i else (up, False)
                elif stamps[j] and not (addrs[j] and j > i):
                    return [(stamps[j][0], _trim(lines[j] + " | " + lines[i]))]
        # A record's fields below its address ("Offending IP: ..." then "  - Time: ...").
        for j in range(i + WINDOW + 1, min(n, i + RECORD_BACK + 1)):
            ln = lines[j]
            if not ln.strip():
                continue  # fields may be spaced out with blank lines
            if ln[:1] not in " \t-*" or addrs[j] and not _HEADING.match(ln):
                break
            if stamps[j] and _HEADING.match(ln):
                return [(stamps[j][0], _trim(lines[i] + " | " + ln))]
        # A record's heading stamp ("Date: 11/22/2026 5:07:44 PM" above "Source Network Address: ...").
        for j in range(i - WINDOW - 1, max(-1, i - RECORD_BACK - 1), -1):
            if stamps[j]:
                if not addrs[j] and _HEADING.match(lines[j]):
                    return [(stamps[j][0], _trim(lines[j] + " | " + lines[i]))]
                break
        return [(None, _trim(lines[i]))]

    @staticmethod
    def _listed(i: int, lines: list[str], addrs: list[list[Any]], stamps: _Stamps
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
                out.append((stamps[j][0], _trim(lines[i] + " | " + ln)))
        return out

    def _exclude(self, ip: IPAddress, label: str) -> None:
        self.victims.add(ip)
        self.excluded.add(ip)
        if label:
            self.excluded_labels.add(" ".join(label.split())[:30])

    def _add(self, ip: IPAddress, stamp: Stamp | None, line: str, hint: str | None, port: int | None,
             evidence: str, explicit: bool = True, fallback: _Lazy | None = None) -> None:
        self.occurrences.append(_Occurrence(ip, stamp, line, hint, port, evidence, explicit, fallback))

    def incidents(self) -> list[Incident]:
        """Group occurrences into one incident per (ip, time); see the module doc."""
        parser = self.parser.name
        # An address labelled victim anywhere is not accused where its role was unclear.
        occs = [o for o in self.occurrences if o.ip not in self.victims or o.explicit]
        self.excluded -= {o.ip for o in occs}
        groups: dict[tuple, list[_Occurrence]] = {}
        timed_ips: set[IPAddress] = set()
        for o in occs:
            if o.stamp is not None:
                timed_ips.add(o.ip)
        for o in occs:
            if o.stamp is None and o.ip in timed_ips:
                continue  # a mention ("Source IP: ...") of an address whose events have times
            groups.setdefault((o.ip, o.stamp.time if o.stamp else None), []).append(o)
        # A coarse stamp folds into a finer one of the same address inside its span: "03:14"
        # into "03:14:07", "03:14:07" into snort's "03:14:07.123456" - one event, not two.
        # The candidates are looked up per address (a scan of all groups was quadratic: 10,000
        # timed log lines took 35 s).
        timed_keys: dict[IPAddress, list[tuple]] = {}
        for k in groups:
            if k[1] is not None:
                timed_keys.setdefault(k[0], []).append(k)
        for key in sorted((k for k in groups if k[1] is not None), key=lambda k: -_coarseness(groups[k])):
            ip, t = key
            span = _coarseness(groups[key])
            same_ip = timed_keys[ip]
            if len(same_ip) < 2:
                continue
            finer = next((k for k in same_ip if k != key and t <= k[1] < t + timedelta(seconds=span)
                          and _coarseness(groups[k]) < span), None)
            if finer is not None:
                groups[finer].extend(groups.pop(key))
                same_ip.remove(key)
        out = []
        for (ip, _time), g in groups.items():
            timed = [(o.stamp, o) for o in g if o.stamp is not None]
            # The finest stamp of the group; None only for the group of an address without a time.
            stamp, first = min(timed, key=lambda so: so[0].precision) if timed else (None, g[0])
            type_ = _best([o.hint for o in g]) or _best([o.fallback() for o in g if o.fallback]) or "undetermined"
            port = next((o.port for o in g if o.port is not None), None)
            if stamp is None:
                if self.parser.date_fallback and self.message.date is not None:
                    out.append(Incident(ip, type_, self.message.date, parser, "date-header", port, first.evidence,
                                        {"time_from": "report Date header"}))
                else:
                    out.append(Incident(ip, type_, None, parser, "none", port, first.evidence))
            else:
                out.append(Incident(ip, type_, stamp.time, parser, stamp.zone, port, first.evidence))
            self.sources.add(ip)
        return out
