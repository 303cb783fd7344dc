"""Cells of a CSV feed: column names, timestamps, addresses, category words, text decoding.

The row-level pieces of :mod:`abuso.parsers.csv` (split off at this seam: the parser reads
containers and tables, this module reads what is in one cell).
"""

from __future__ import annotations

import codecs
import re
from _socket import AF_INET, inet_pton  # not socket.py: its enums cost start-up ~4 ms
from datetime import datetime, timezone
from ipaddress import IPv4Address, ip_address

from ..lazy import lazy_compile
from ..taxonomy import normalize_type, type_from_text
from ..zones import zone_offset

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any

#: Column names (normalized: lower case, runs of non-alphanumerics -> "_") in order of preference.
IP_COLUMNS = ("src_ip", "source_ip", "ip", "ip_address", "ipaddress", "source_ip_address", "src_ip_address",
              "srcip", "sourceip", "src_addr", "source_address", "infected_ip", "attacker_ip", "offender_ip",
              "offending_ip", "ipv4", "ipv6", "host_ip", "bot_ip", "infected_host", "drone_ip", "compromised_ip",
              "infected_ip_address", "src", "source", "address")
#: Full date-and-time columns, best first. ``time``/``date`` alone come after the date+time pair.
STAMP_COLUMNS = ("source_time", "time_source", "timestamp", "timestamp_utc", "time_utc", "datetime", "date_time",
                 "datetime_utc", "event_timestamp", "first_seen", "firstseen", "first_seen_utc", "last_seen",
                 "lastseen", "detected", "detection_time", "seen", "seen_at", "observation_time",
                 "time_observation", "observed", "observed_at", "reported_at")
DATE_COLUMNS = ("event_date", "date", "day")
TIME_COLUMNS = ("event_time", "time")
PORT_COLUMNS = ("src_port", "source_port", "sport", "srcport", "port")
TYPE_COLUMNS = ("classification_type", "type", "category", "report_type", "infection_type", "infection",
                "threat", "threat_type", "abuse_type", "incident_type", "tag", "classification", "feed")

_COLUMN = lazy_compile(r"[^a-z0-9]+")
UTC_SUFFIX = lazy_compile(r"_(?:utc|gmt)$")
_TRAILING_ZONE = lazy_compile(r"^(.*?\d)\s*\(?\s*([A-Z]{1,5}|(?:UTC|GMT)?[+-]\d{1,2}(?::?\d{2})?)\)?$")
_SLASHED = lazy_compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?$")
_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M", "%d %b %Y %H:%M:%S",
            "%b %d %Y %H:%M:%S", "%d.%m.%Y %H:%M:%S", "%Y%m%dT%H%M%S", "%Y%m%d%H%M%S")


def column_key(name: str) -> str:
    """'Source IP' -> 'source_ip', '\\ufeffTimestamp (UTC)' -> 'timestamp_utc'."""
    return _COLUMN.sub("_", name.strip().lstrip("\ufeff").lower()).strip("_")


def parse_stamp(value: str) -> datetime | None:
    """A date and time from a CSV cell; naive when the cell has no offset; None for a date alone.

    ISO 8601 (what feeds write) goes through ``fromisoformat``; a few other fixed
    shapes through ``strptime``; epoch seconds are UTC. No dateparser: this runs
    once per row of a 100k-row report.
    """
    s = value.strip()
    if not s:
        return None
    if s.isdigit():
        if len(s) in (9, 10):
            return datetime.fromtimestamp(int(s), timezone.utc)
        if len(s) == 13:
            return datetime.fromtimestamp(int(s) / 1000, timezone.utc)
        if len(s) != 14:
            return None
    elif ":" not in s:
        return None  # a date alone is no time of day: do not invent midnight
    try:
        return datetime.fromisoformat(s)
    except ValueError:
        pass
    m = _SLASHED.match(s)
    if m:
        return _slashed(m)
    offset = None
    m = _TRAILING_ZONE.match(s)
    if m:
        offset = zone_offset(m.group(2))
        if offset is not None:
            s = m.group(1)
    for fmt in _FORMATS:
        try:
            dt = datetime.strptime(s, fmt)
        except ValueError:
            continue
        return dt.replace(tzinfo=timezone(offset)) if offset is not None else dt
    if offset is not None:
        try:
            dt = datetime.fromisoformat(s)
        except ValueError:
            return None
        return dt.replace(tzinfo=timezone(offset)) if dt.tzinfo is None else dt
    return None


def _slashed(m: re.Match[str]) -> datetime | None:
    """'20/11/2026 14:00' or '11/20/2026 14:00': only when one of the two cannot be a month."""
    a, b, year, hh, mm, ss = (int(x or 0) for x in m.groups())
    if a > 12 >= b:
        day, month = a, b
    elif b > 12 >= a:
        day, month = b, a
    else:
        return None  # 05/06/2026: May or June; a guess would put the incident a month off
    try:
        return datetime(year, month, day, hh, mm, ss)
    except ValueError:
        return None


def decode_csv(data: bytes) -> str:
    """Bytes -> text: BOMs (UTF-8, UTF-16 from Excel) honoured, UTF-8, else cp1252."""
    if data.startswith(codecs.BOM_UTF8):
        text = data[3:].decode("utf-8", "replace")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = data.decode("utf-16", "replace")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("cp1252", "replace")
    return text.replace("\x00", "") if "\x00" in text else text


def sniff_delimiter(line: str) -> str:
    """The separator of a header line: the most frequent of , ; TAB | outside quotes."""
    unquoted = re.sub(r'"[^"]*"', "", line)
    best, count = ",", 0
    for d in (",", ";", "\t", "|"):
        c = unquoted.count(d)
        if c > count:
            best, count = d, c
    return best


_DEFANG = lazy_compile(r"\[\.\]|\(\.\)")


def cell_ip(cell: str) -> Any:
    """An address from a cell; dotted IPv4 through inet_pton (4x faster than ipaddress' parser)."""
    s = cell.strip()
    try:
        return IPv4Address(inet_pton(AF_INET, s))
    except (OSError, ValueError):
        pass
    try:
        return ip_address(s)
    except ValueError:
        pass
    s = _DEFANG.sub(".", s).strip("[]")
    if s.count(":") == 1 and "." in s:  # 192.0.2.1:5555
        s = s.split(":", 1)[0]
    return ip_address(s)


def cell_type(value: str) -> str | None:
    """A type from a category cell: an exact alias first, then the keyword rules."""
    v = value.strip()
    if not v:
        return None
    t = normalize_type(v)
    if t != "undetermined":
        return t
    return type_from_text(v)
