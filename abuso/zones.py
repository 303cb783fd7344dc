"""Time zones: names, the zone a report states, and the one order that gives a naive stamp its zone.

Every parser resolves a timestamp through :func:`resolve` (or a report's
:class:`Zones`), so one stamp gets one UTC time and one ``zone`` label
(design.md, incident schema) whichever parser read it. The order, first
source that is known wins:

1. ``explicit``     the stamp carries its offset (``+0100``, ``Z``, ``CET``,
                    ``UTC-3``), or its field names the zone (a ``Time (UTC)`` column);
2. ``assumed-utc``  the *format* fixes the zone of its naive stamps (Shadowserver
                    feeds, ACNS ``xs:dateTime``, SpamCop's own times are UTC):
                    the parser says so with ``format_utc=True``. It comes before
                    the report's words and Date because it is about this very
                    field; the label stays ``assumed-utc``, as the sender is only
                    assumed to follow its specification;
3. ``stated``       the report says so ("All times are CET", "Time Zone: UTC";
                    a block's own statement before the message's first one);
4. ``date-header``  the offset the report's own Date header was written in;
5. ``default``      the config's ``defaults.zone`` (or a parser's ``zone``
                    option): the desk's guess for reports that say nothing;
6. ``assumed-utc``  nothing else known.

``default`` comes after ``date-header`` on purpose: the Date offset is
evidence from this report, the configured zone a guess for every report.

Zone names, the choice made: a bare abbreviation is taken as written, the fixed
offset it names (``CET`` is +1 even in July, ``CEST`` +2); some writers mean
local time by ``CET``, but guessing would be wrong for the others, and the
label tells the desk where the offset came from. An IANA name
(``Europe/Berlin``), a pair (``CET/CEST``, ``MEZ/MESZ``, ``EST/EDT``) or a
long name ("Central European Time", "Eastern Time") does mean "local time
there": it goes through zoneinfo, so each stamp gets the offset in force on
its own date (a January stamp +1, a July stamp +2). This holds for stated zones
and for ``defaults.zone`` alike.

Local times at a clock change (PEP 495 ``fold=0``, the same rule everywhere):
an *ambiguous* time (``02:30`` on the night clocks go back, which happens
twice) is the first of the two, still in summer time (``Europe/Berlin``:
00:30 UTC); a *nonexistent* time (``02:30`` on the night clocks go forward) is
read with the offset in force before the jump, i.e. as the clock that forgot to
change shows it (01:30 UTC, which is 03:30 summer time).

:func:`zone_offset` keeps its contract (fixed offsets only, ``None`` for a
region: the RADIUS reader relies on it); :func:`zone_tzinfo` takes both.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache

from .lazy import lazy_compile

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any

#: Abbreviations seen in abuse reports, as fixed offsets in hours.
ZONE_ABBREVIATIONS: dict[str, float] = {
    "UTC": 0, "GMT": 0, "UT": 0, "Z": 0, "WET": 0, "BST": 1, "IST": 5.5, "CET": 1, "MEZ": 1, "CEST": 2,
    "MESZ": 2, "EET": 2, "EEST": 3, "MSK": 3, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7,
    "MDT": -6, "PST": -8, "PDT": -7, "AKST": -9, "AKDT": -8, "HST": -10, "JST": 9, "KST": 9, "AEST": 10,
    "AEDT": 11, "ACST": 9.5, "AWST": 8, "NZST": 12, "NZDT": 13, "SGT": 8, "HKT": 8, "BRT": -3, "ART": -3,
    "VET": -4, "WEST": 1,
}

#: Names that mean "local time in this place" (DST-aware, via zoneinfo).
ZONE_REGIONS: dict[str, str] = {
    "CET/CEST": "Europe/Berlin", "MEZ/MESZ": "Europe/Berlin", "CENTRAL EUROPEAN TIME": "Europe/Berlin",
    "CENTRAL EUROPEAN SUMMER TIME": "Europe/Berlin", "EET/EEST": "Europe/Helsinki",
    "EASTERN EUROPEAN TIME": "Europe/Helsinki", "WET/WEST": "Europe/Lisbon", "GMT/BST": "Europe/London",
    "UK TIME": "Europe/London", "EST/EDT": "America/New_York", "EASTERN TIME": "America/New_York",
    "US/EASTERN": "America/New_York", "CST/CDT": "America/Chicago", "CENTRAL TIME": "America/Chicago",
    "MST/MDT": "America/Denver", "MOUNTAIN TIME": "America/Denver", "PST/PDT": "America/Los_Angeles",
    "PACIFIC TIME": "America/Los_Angeles", "US/PACIFIC": "America/Los_Angeles",
    "AEST/AEDT": "Australia/Sydney", "NZST/NZDT": "Pacific/Auckland",
    # Local time named in words, as reports in other languages write it after a time ("(heure de Paris)").
    "HEURE DE PARIS": "Europe/Paris", "HEURE DE FRANCE": "Europe/Paris", "HEURE FRANÇAISE": "Europe/Paris",
    "HEURE LOCALE DE PARIS": "Europe/Paris", "HEURE DE BRUXELLES": "Europe/Brussels",
    "MITTELEUROPÄISCHE ZEIT": "Europe/Berlin", "DEUTSCHE ZEIT": "Europe/Berlin", "BERLINER ZEIT": "Europe/Berlin",
    "ÖSTERREICHISCHE ZEIT": "Europe/Vienna", "SCHWEIZER ZEIT": "Europe/Zurich",
    "HORA DE MADRID": "Europe/Madrid", "HORA PENINSULAR": "Europe/Madrid", "HORA DE ESPAÑA": "Europe/Madrid",
    "HORA ESPAÑOLA": "Europe/Madrid", "HORA DE ARGENTINA": "America/Argentina/Buenos_Aires",
    "HORA DE BUENOS AIRES": "America/Argentina/Buenos_Aires", "HORA DE MÉXICO": "America/Mexico_City",
    "HORA DEL CENTRO": "America/Mexico_City", "HORA DE CHILE": "America/Santiago",
    "HORA DE COLOMBIA": "America/Bogota", "HORA DE PERÚ": "America/Lima",
    "HORÁRIO DE BRASÍLIA": "America/Sao_Paulo", "HORARIO DE BRASILIA": "America/Sao_Paulo",
    "HORA DE BRASÍLIA": "America/Sao_Paulo", "HORA DE BRASILIA": "America/Sao_Paulo",
    "HORA DE LISBOA": "Europe/Lisbon", "HORA DE PORTUGAL": "Europe/Lisbon",
    "ORA ITALIANA": "Europe/Rome", "ORA DI ROMA": "Europe/Rome", "ORA LOCALE ITALIANA": "Europe/Rome",
    "NEDERLANDSE TIJD": "Europe/Amsterdam", "BELGISCHE TIJD": "Europe/Brussels",
}

_OFFSET = lazy_compile(r"^(?:UTC|GMT|UT)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?$", re.I)


def zone_offset(name: str) -> timedelta | None:
    """'UTC', 'CET', '+0100', 'UTC-5', 'GMT+05:30' -> offset; None if unknown.

    Fixed offsets only: a region ('Europe/Berlin', 'CET/CEST') has no single
    offset, so it gives None here (callers such as the RADIUS reader rely on
    that to go through zoneinfo); :func:`zone_tzinfo` handles both.
    """
    s = name.strip()
    hours = ZONE_ABBREVIATIONS.get(s.upper())
    if hours is not None:
        return timedelta(hours=hours)
    m = _OFFSET.match(s)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        h, mins = int(m.group(2)), int(m.group(3) or 0)
        if h <= 14 and mins < 60:
            return sign * timedelta(hours=h, minutes=mins)
        return None
    return None


@lru_cache(maxsize=64)
def _region(name: str) -> tzinfo | None:
    key = " ".join(name.split()).upper()
    iana = ZONE_REGIONS.get(key)
    if iana is None:
        if "/" not in name or not re.fullmatch(r"[A-Za-z_]+(?:/[A-Za-z_+-]+){1,2}", name):
            return None
        iana = name
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(iana)
    except Exception:  # unknown name, or no tz database on this host
        return None


def zone_tzinfo(name: str) -> tzinfo | None:
    """A zone name or offset -> tzinfo (fixed for abbreviations and offsets, zoneinfo for regions)."""
    off = zone_offset(name)
    region = _region(name.strip())
    if region is not None:
        return region
    return timezone(off) if off is not None else None


def check_zone(value: Any) -> tzinfo:
    """A configured zone (``defaults.zone``, a parser's ``zone``) -> tzinfo; ValueError naming it if unknown.

    Offsets (``+0100``, ``UTC-5``), abbreviations (``CET``: the fixed offset) and
    regions (``Europe/Berlin``, ``CET/CEST``: DST-aware) are accepted.
    """
    tz = zone_tzinfo(str(value)) if value is not None and str(value).strip() else None
    if tz is None:
        raise ValueError(f"unknown time zone {value!r} (use UTC, +0100, CET or a region like Europe/Berlin)")
    return tz


# --- the one order -----------------------------------------------------------------

Zoneish = tzinfo | timedelta | str | tuple | None


def as_tzinfo(z: Zoneish) -> tzinfo | None:
    """A zone in any of the forms callers hold (tzinfo, offset, name, ``stated_zone`` pair) -> tzinfo."""
    if z is None or type(z) is timezone:  # the common cases first (a call per line read)
        return z
    if isinstance(z, tuple):
        z = z[0]
    if isinstance(z, timedelta):
        return timezone(z)
    if isinstance(z, str):
        return zone_tzinfo(z)
    return z if isinstance(z, tzinfo) else None


def resolve(when: datetime, *, stated: Zoneish = None, header_offset: timedelta | None = None,
            default: Zoneish = None, format_utc: bool = False) -> tuple[datetime, str] | None:
    """A read timestamp -> (aware UTC time, ``zone`` label), in the order of the module doc.

    ``when`` is aware when its text carried the zone (``explicit``), naive
    otherwise. ``stated``: the zone the report states (see :func:`stated_zone`);
    ``header_offset``: the report's Date offset (None without a Date);
    ``default``: the configured zone; ``format_utc``: the format fixes UTC.
    None when the time cannot be placed (year 1 or 9999 pushed over the edge).
    """
    try:
        if when.tzinfo is not None:
            return when.astimezone(timezone.utc), "explicit"
        if format_utc:
            return when.replace(tzinfo=timezone.utc), "assumed-utc"
        tz = as_tzinfo(stated)
        if tz is not None:
            return when.replace(tzinfo=tz).astimezone(timezone.utc), "stated"
        if header_offset is not None:
            return (when - header_offset).replace(tzinfo=timezone.utc), "date-header"
        tz = as_tzinfo(default)
        if tz is not None:
            return when.replace(tzinfo=tz).astimezone(timezone.utc), "default"
        return when.replace(tzinfo=timezone.utc), "assumed-utc"
    except (OverflowError, ValueError):
        return None


_UNSET: Any = object()


class Zones:
    """The zone sources of one report, for parsers that resolve stamps one field at a time.

    ``Zones.of(message, options)`` takes the report's Date offset and the
    configured ``zone`` option; what the report states is looked up on first
    need (most stamps carry their zone, and the search reads the text).
    """

    __slots__ = ("_message", "_stated", "header_offset", "default")

    def __init__(self, *, stated: Zoneish = _UNSET, header_offset: timedelta | None = None,
                 default: Zoneish = None, message: Any = None) -> None:
        self._message = message
        self._stated: Zoneish = stated
        self.header_offset = header_offset
        self.default = as_tzinfo(default)

    @classmethod
    def of(cls, message: Any, options: Any = None) -> Zones:
        """The sources of a normalized message; ``options`` may hold the configured ``zone``."""
        zone = (options or {}).get("zone")
        date = getattr(message, "date", None)
        offset = getattr(message, "date_offset", None) if date is not None else None
        return cls(header_offset=offset, default=zone_tzinfo(str(zone)) if zone else None, message=message)

    @property
    def stated(self) -> Zoneish:
        """What the report states (a :func:`stated_zone` pair), looked up on first need."""
        if self._stated is _UNSET:
            self._stated = report_stated_zone(self._message) if self._message is not None else None
        return self._stated

    def resolve(self, when: datetime, *, format_utc: bool = False) -> tuple[datetime, str] | None:
        """:func:`resolve` with this report's sources."""
        if when.tzinfo is not None or format_utc:
            return resolve(when, format_utc=format_utc)
        return resolve(when, stated=self.stated, header_offset=self.header_offset, default=self.default)


def report_stated_zone(message: Any) -> tuple[tzinfo, str] | None:
    """The first zone a normalized report states in its text (header blocks are not its words)."""
    for b in getattr(message, "blocks", ()):
        if b.kind != "headers":
            found = stated_zone(b.text)
            if found is not None:
                return found
    return None


# --- zones the report states ------------------------------------------------------

_ZONE_WORD = (r"(?P<z>[A-Z][a-z]+/[A-Za-z_]+(?:/[A-Za-z_]+)?|(?:UTC|GMT)\s?[+-]\s?\d{1,2}(?::?\d{2})?"
              r"|[+-]\d{2}:?\d{2}|[A-Z]{2,5}/[A-Z]{3,5}|(?:central|eastern|western|pacific|mountain)"
              r"(?: european)?(?: summer| standard| daylight)? time|[A-Z]{2,5})(?![A-Za-z/])")
_PAREN_OFFSET = r"(?:\s*\(\s*(?P<z2>(?:UTC|GMT)\s?[+-]\s?\d{1,2}(?::?\d{2})?|[+-]\d{2}:?\d{2})\s*\))?"
_STATED = [
    # "Time Zone: EST (UTC-5)", "Timezone: UTC", "time zone of -0700", "timezone = Europe/Berlin"
    lazy_compile(r"\btime\s?-?zone\b(?:\s+(?:is|of|used))?\s*[:=]?\s*(?:is\s+)?" + _ZONE_WORD + _PAREN_OFFSET,
               re.I),
    # "All times are UTC", "times are in CET", "timestamps are given in Europe/Berlin", "times shown in GMT-3"
    lazy_compile(r"\b(?:all\s+)?(?:times?|timestamps?|dates?)(?:\s+(?:are|is|were))?(?:\s+(?:shown|given|listed|"
               r"reported|displayed|expressed))?\s+(?:in|as)\s+(?:the\s+)?" + _ZONE_WORD + _PAREN_OFFSET, re.I),
    lazy_compile(r"\b(?:all\s+times?(?:\s+(?:are|is))?|(?:times?|timestamps?)\s+(?:are|is))\s+" + _ZONE_WORD
               + _PAREN_OFFSET, re.I),
    # "(MEZ)", "(UTC+1)" standing alone in prose (not right after a time, where it is the stamp's own:
    # _paren_alone() checks that; a pattern starting with "(" lets re skip ahead fast)
    lazy_compile(r"\((?P<z>[A-Z]{3,5}|(?:UTC|GMT)\s?[+-]\d{1,2}(?::?\d{2})?)\)"),
    # "GMT-3" in prose
    lazy_compile(r"(?<![\d:\w])\s?(?P<z>(?:UTC|GMT)[+-]\d{1,2}(?::?\d{2})?)\b"),
]
_STATED_CHARS = 64 * 1024
#: Words a line must contain for each pattern to be worth running.
_STATED_HINTS = list(zip(_STATED, [("time",), ("time", "date"), ("time",), ("(",), ("gmt", "utc")], strict=True))


def stated_zone(text: str) -> tuple[tzinfo, str] | None:
    """The zone a report says its times are in: (tzinfo, the words it used), or None.

    The first statement wins (a form's ``Time Zone:`` field comes before any
    later remark). Unknown words ("timezone ZP4") state nothing. Only lines
    with a hint word are searched: the patterns are case-insensitive, and Python
    cannot skip ahead on those, so a 5 KB report would otherwise cost ~1 ms.
    """
    for line in text[:_STATED_CHARS].split("\n"):
        low = line.lower()
        if not ("time" in low or "(" in low or "gmt" in low or "utc" in low or "date" in low):
            continue
        wanted = [rx for rx, hints in _STATED_HINTS if any(h in low for h in hints)]
        if not wanted:
            continue
        best: tuple[int, tzinfo, str] | None = None
        for rx in wanted:
            for m in rx.finditer(line):
                if best is not None and m.start() >= best[0]:
                    break
                if rx is _STATED[3] and not _paren_alone(line, m.start()):
                    continue
                name = m.group("z2") if "z2" in rx.groupindex and m.group("z2") else m.group("z")
                name = " ".join(name.split())
                tz = _stated_tz(name)
                if tz is not None:
                    best = (m.start(), tz, name)
                    break
        if best is not None:
            return best[1], best[2]
    return None


def _paren_alone(line: str, start: int) -> bool:
    """A "(CET)" after a space that does not follow a time or date ("14:37:12 (CET)" is the stamp's)."""
    return start >= 1 and line[start - 1].isspace() and (start < 2 or not (line[start - 2].isdigit()
                                                                          or line[start - 2] == ":"))


def _stated_tz(name: str) -> tzinfo | None:
    region = _region(name)
    if region is not None:
        return region
    if name.upper() in ZONE_ABBREVIATIONS and name.isupper() and name not in ("Z", "UT", "IST"):
        return timezone(timedelta(hours=ZONE_ABBREVIATIONS[name.upper()]))
    if name[:1] in "+-" or name.upper().startswith(("UTC", "GMT")):
        off = zone_offset(name)
        return timezone(off) if off is not None else None
    return None
