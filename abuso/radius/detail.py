"""Accounting events from FreeRADIUS and Livingston ``detail`` logs.

A record is a date line (``Tue Nov 24 13:05:01 2026``, the server's local time)
followed by indented ``Attribute = value`` lines; records are separated by a
blank line. Livingston's format is the same minus the ``Timestamp`` attribute.
Work is done on bytes with compiled regexes over whole blocks: a 1 GB log is
tens of millions of lines and a Python loop per line would dominate.
"""

from __future__ import annotations

import calendar
import ipaddress
import re
import time as _time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Callable

from ..lazy import lazy_compile

START, STOP, INTERIM, ACCT_ON, ACCT_OFF = 1, 2, 3, 7, 8
_STATUS = {b"start": START, b"1": START, b"stop": STOP, b"2": STOP, b"interim-update": INTERIM,
           b"alive": INTERIM, b"3": INTERIM, b"accounting-on": ACCT_ON, b"7": ACCT_ON,
           b"accounting-off": ACCT_OFF, b"8": ACCT_OFF}

#: An Event-Timestamp further than this from the server's own time is a NAS with an unset clock.
MAX_SKEW = 86400.0
#: Prefixes wider than these are ignored: a garbage ``Framed-Route = 0.0.0.0/0`` must
#: not make every address on the Internet belong to one subscriber.
MIN_PREFIX = {4: 16, 6: 32}

# One record: a non-indented first line, then indented lines. Blank lines separate records.
_RECORD = lazy_compile(rb"^([^ \t\r\n][^\n]*)\n((?:[ \t]+[^ \t\r\n][^\n]*\n)*)", re.M)
_ATTR = lazy_compile(rb"^[ \t]+([A-Za-z][A-Za-z0-9_.:-]*)[ \t]*=[ \t]*([^\r\n]*?)[ \t]*\r?$", re.M)
_NAMES = lazy_compile(rb"[A-Za-z][A-Za-z0-9_.:-]*(?:\n[A-Za-z][A-Za-z0-9_.:-]*)*")
_DATE = lazy_compile(rb"(?i:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[ \t]+((?i:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec))"
                   rb"[ \t]+(0?[1-9]|[12]\d|3[01])[ \t]+([01]?\d|2[0-3]):([0-5]\d):([0-5]\d|60)[ \t]+(\d{4})[ \t\r]*\Z")
_MONTHS = {m.encode(): i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}


@dataclass(frozen=True, slots=True)
class Event:
    """One accounting record, reduced to what session matching needs.

    ``time`` is when the event happened on the NAS (UTC epoch seconds): the
    Event-Timestamp if present, else the record time minus Acct-Delay-Time.
    ``since`` is ``time - Acct-Session-Time``: the session's start as the NAS
    counts it, which lets a Stop or Interim-Update alone give the whole window.
    """

    kind: int
    skey: str
    user: str | None
    nas: str
    session: str
    time: float
    since: float | None
    nets: tuple[bytes, ...]


@dataclass
class BlockResult:
    """The events read from one block of a RADIUS detail file."""

    events: list[Event]
    records: int = 0
    #: Malformed records: bad date line, lines that are not ``Attribute = value``.
    corrupt: int = 0
    #: Well-formed records that say nothing about who held an address (Failed,
    #: no status, no session id, no address and not Accounting-On/Off).
    ignored: int = 0


def zone_converter(zone: str) -> Callable[[int, int, int, int, int, int], float]:
    """The function turning a naive date-line time into a UTC epoch.

    ``local`` is the machine's zone (FreeRADIUS writes the date line in its
    own local time); otherwise an IANA name (DST-aware) or a fixed offset.
    ValueError on an unknown zone so that the config check can say so.
    """
    if zone.lower() == "local":
        def local(y: int, mo: int, d: int, h: int, mi: int, s: int) -> float:
            return float(_time.mktime((y, mo, d, h, mi, s, 0, 0, -1)))
        return local
    tz = zone_tzinfo(zone)

    def convert(y: int, mo: int, d: int, h: int, mi: int, s: int) -> float:
        return datetime(y, mo, d, h, mi, s, tzinfo=tz).timestamp()
    return convert


def zone_tzinfo(zone: str) -> tzinfo:
    from ..timestamps import zone_offset

    off = zone_offset(zone)
    if off is not None:
        return timezone(off)
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(zone)
    except (LookupError, ValueError, OSError):  # not found, not a zone key, a folder ("Europe")
        raise ValueError(f"unknown time zone {zone!r} (use local, UTC, +0100 or a name like Europe/Berlin)")


def _value(raw: bytes) -> bytes:
    if len(raw) >= 2 and raw[:1] == b'"' and raw[-1:] == b'"':
        return raw[1:-1]
    return raw


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def net_key(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bytes:
    """Index key of a network: prefix length byte + packed network address.

    Lengths differ by family (5 vs 17 bytes), so one column holds both.
    """
    return bytes((net.prefixlen,)) + net.network_address.packed


def key_network(key: bytes) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    addr = ipaddress.ip_address(key[1:])
    return ipaddress.ip_network(f"{addr}/{key[0]}")


_NET_CACHE: dict[bytes, bytes | None] = {}


def _net(attr: bytes, raw: bytes) -> bytes | None:
    """Address attribute value -> net key, None if unusable. Cached: pools are small."""
    ck = attr + b"=" + raw
    hit = _NET_CACHE.get(ck, b"")
    if hit != b"":
        return hit
    if len(_NET_CACHE) > 200_000:
        _NET_CACHE.clear()
    key = None
    try:
        v = raw.decode("ascii").strip()
        if attr in (b"Framed-Route", b"Framed-IPv6-Route"):
            v = v.split()[0] if v.split() else ""
            if "/" not in v:
                raise ValueError("route without prefix length")
        net = ipaddress.ip_network(v, strict=False)
        if attr == b"Framed-IP-Address" and (net.is_unspecified or str(net.network_address) in
                                              ("255.255.255.254", "255.255.255.255")):
            raise ValueError("placeholder: NAS assigns the address")
        if net.prefixlen >= MIN_PREFIX[net.version] and not net.is_unspecified:
            key = net_key(net)
    except (ValueError, UnicodeDecodeError):
        key = None
    _NET_CACHE[ck] = key
    return key


_ADDRESS_ATTRS = (b"Framed-IP-Address", b"Framed-IPv6-Address", b"Framed-IPv6-Prefix", b"Delegated-IPv6-Prefix",
                  b"Framed-Route", b"Framed-IPv6-Route")
_NAS_ATTRS = (b"NAS-IP-Address", b"NAS-IPv6-Address", b"NAS-Identifier", b"Packet-Src-IP-Address",
              b"Client-IP-Address")


_ZONE_SECONDS: dict[bytes, float | None] = {}
_DAYS: dict[tuple[int, int, int], int] = {}
# Event-Timestamp as FreeRADIUS 2/3 print it: "Nov 24 2026 13:05:01 CET" (fraction and zone optional).
_EVENT_TS = lazy_compile(rb"((?i:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec))\s+(0?[1-9]|[12]\d|3[01])\s+"
                       rb"(19[7-9]\d|2[01]\d\d)\s+([01]?\d|2[0-3]):([0-5]\d):([0-5]\d|60)(?:\.\d+)?(?:\s+(\S+))?\Z")


def _zone_seconds(name: bytes) -> float | None:
    """Seconds east of UTC for a zone name in an Event-Timestamp (cached: a log uses one or two)."""
    if name not in _ZONE_SECONDS:
        from ..timestamps import zone_offset

        td = zone_offset(name.decode("ascii", "replace"))
        _ZONE_SECONDS[name] = td.total_seconds() if td is not None else None
    return _ZONE_SECONDS[name]


def event_timestamp(raw: bytes, fallback: Callable[..., float]) -> float | None:
    """Event-Timestamp in the shapes servers print: epoch, ``Nov 24 2026 13:05:01 CET``, ISO 8601.

    An unknown zone name falls back to the configured zone of the date lines.
    """
    v = raw.strip()
    if v.isdigit():
        return float(v)
    m = _EVENT_TS.match(v)
    if m:
        off = _zone_seconds(m.group(7)) if m.group(7) else None
        mon, d, y = _MONTHS[m.group(1).lower()], int(m.group(2)), int(m.group(3))
        h, mi, sec = int(m.group(4)), int(m.group(5)), int(m.group(6))
        if off is None:
            return fallback(y, mon, d, h, mi, sec)
        day = _DAYS.get((y, mon, d))
        if day is None:
            if len(_DAYS) > 10_000:
                _DAYS.clear()
            day = _DAYS[(y, mon, d)] = calendar.timegm((y, mon, d, 0, 0, 0, 0, 0, 0))
        return float(day + h * 3600 + mi * 60 + sec) - off
    try:
        dt = datetime.fromisoformat(v.decode("ascii").replace("Z", "+00:00"))
    except (ValueError, UnicodeDecodeError):
        return None
    if dt.tzinfo is None:
        return fallback(dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second)
    return dt.timestamp()


def _int(raw: bytes | None) -> int | None:
    return int(raw) if raw is not None and raw.isdigit() else None


def _attributes(body: bytes) -> dict[bytes, bytes] | None:
    """``Attribute = value`` lines -> dict of unquoted values; None if any line is something else.

    The fast path is the shape FreeRADIUS writes (tab, name, `` = ``, value,
    LF) split in C; anything else (spaces, CRLF, odd spacing) takes the regex.
    """
    n = body.count(b"\n")
    if body[:1] == b"\t" and body.count(b"\n\t") == n - 1 and b"\r" not in body:
        # "A = 1\n\tB = 2" -> "A = 1 = B = 2" -> [A, 1, B, 2]: a value holding " = " spoils the count.
        if b'"' in body:
            body = body.replace(b' = "', b" = ").replace(b'"\n', b"\n")
        parts = body[1:-1].replace(b"\n\t", b" = ").split(b" = ")
        if len(parts) == 2 * n:
            keys = parts[0::2]
            if _NAMES.fullmatch(b"\n".join(keys)):
                return dict(zip(keys, parts[1::2], strict=True))
    attrs = _ATTR.findall(body)
    if len(attrs) != n:
        return None
    return {k: _value(v) for k, v in attrs}


def parse_block(data: bytes, to_epoch: Callable[..., float]) -> BlockResult:
    """Parse whole records in ``data`` (bytes ending at a record boundary).

    Never raises on content: a malformed record is counted and skipped.
    """
    out = BlockResult([])
    events = out.events
    pos = 0
    records = corrupt = ignored = 0
    for m in _RECORD.finditer(data):
        if m.start() != pos and data[pos:m.start()].strip():  # indented lines with no date line above them
            records += 1
            corrupt += 1
        pos = m.end()
        records += 1
        head, body = m.group(1), m.group(2)
        a = _attributes(body)
        dm = _DATE.match(head)
        if a is None or dm is None:
            corrupt += 1
            continue
        try:
            ev = _event(dm, a, to_epoch)
        except (ValueError, OverflowError):
            corrupt += 1
            continue
        if ev is None:
            ignored += 1
        else:
            events.append(ev)
    if data[pos:].strip():
        records += 1
        corrupt += 1
    out.records, out.corrupt, out.ignored = records, corrupt, ignored
    return out


def _event(dm: re.Match, a: dict[bytes, bytes], to_epoch: Callable[..., float]) -> Event | None:
    kind = _STATUS.get(a.get(b"Acct-Status-Type", b"").lower())
    if kind is None:
        return None
    nas = ""
    for name in _NAS_ATTRS:
        if name in a:
            nas = _text(a[name])
            break
    stamp = _int(a.get(b"Timestamp"))
    if stamp is not None:
        record_time = float(stamp)
    else:
        mon = _MONTHS[dm.group(1).lower()]
        record_time = to_epoch(int(dm.group(6)), mon, int(dm.group(2)), int(dm.group(3)), int(dm.group(4)),
                               int(dm.group(5)))
    delay = _int(a.get(b"Acct-Delay-Time"))
    when = record_time - delay if delay is not None and delay <= 7 * 86400 else record_time
    if b"Event-Timestamp" in a:
        event = event_timestamp(a[b"Event-Timestamp"], to_epoch)
        # The NAS's clock is preferred, unless it is plainly wrong: unset (1970, a day or more off the
        # server's) or set in another zone (off by whole quarter hours: "CST" is -6 in Chicago, +8 in Beijing).
        if event is not None and abs(event - when) < MAX_SKEW and not _zone_mistake(abs(event - when)):
            when = event
    if kind in (ACCT_ON, ACCT_OFF):
        return Event(kind, "", None, nas, "", when, None, ())
    session = a.get(b"Acct-Unique-Session-Id")
    if session is not None:
        skey = "u:" + _text(session)
    else:
        session = a.get(b"Acct-Session-Id")
        if session is None:
            return None
        skey = "s:" + nas + "\x00" + _text(session)
    nets = []
    for name in _ADDRESS_ATTRS:
        raw = a.get(name)
        if raw is not None:
            k = _net(name, raw)
            if k is not None:
                nets.append(k)
    # No usable address (some NASes put it only in later records): still an event, for the session's times.
    duration = _int(a.get(b"Acct-Session-Time"))
    # A session-time beyond a year is a broken counter; believing it would widen every lookup.
    since = when - duration if duration is not None and kind != START and duration < 366 * 86400 else None
    user = a.get(b"User-Name")
    return Event(kind, skey, _text(user) if user is not None else None, nas,
                 _text(a.get(b"Acct-Session-Id", session)), when, since, tuple(nets))


def _zone_mistake(diff: float) -> bool:
    if diff < 1800:
        return False
    off = diff % 900
    return off <= 120 or off >= 900 - 120


def epoch_to_iso(t: float | None) -> str | None:
    if t is None:
        return None
    return (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=t)).isoformat()
