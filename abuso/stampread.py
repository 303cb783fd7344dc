"""Reading a timestamp once its shape matched: its fields, its year, its zone, and a memo of readings.

:mod:`abuso.timestamps` finds where a stamp is and which shape it has; this module
reads the matched text into a :class:`Stamp` (aware UTC time, where its zone came
from, its span). ``_read`` is the full reading; ``_stamp`` gives the same Stamp from a
memo when a log repeats a stamp but for its minutes and seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache

from .lazy import lazy_compile
from .zones import ZONE_ABBREVIATIONS, resolve, zone_offset, zone_tzinfo

# --- the result ----------------------------------------------------------------


@dataclass(frozen=True)
class Stamp:
    """A timestamp read from text: aware UTC time, where its zone came from, and its span."""

    time: datetime
    zone: str
    start: int = 0
    end: int = 0
    #: The shape that matched (iso, clf, rfc2822, monthfirst, us, eu, snort, epoch, fallback).
    shape: str = ""
    #: True when the stamp has no seconds (``03:14``): it may be the same event as a precise one.
    partial: bool = False
    #: What the stamp resolves, in seconds: 60 (``03:14``), 1 (``03:14:07``), 1e-6 for fractions.
    precision: float = 1.0


# --- month names -----------------------------------------------------------

MONTHS: dict[str, int] = {}
for _i, _names in enumerate((
    "jan january jän januar janv janvier enero gennaio januari janeiro",
    "feb february februar fév févr février fevrier febrero febbraio februari fevereiro",
    "mar march mär märz mrz mars marzo maart março marco",
    "apr april avr avril abril aprile",
    "may mai mayo maggio mei maio",
    "jun june juni juin junio giugno junho",
    "jul july juli juil juillet julio luglio julho",
    "aug august aoû août aout agosto augustus",
    "sep sept september septembre septiembre setiembre settembre setembro",
    "oct october okt oktober octobre octubre ottobre outubro",
    "nov november novembre noviembre novembro",
    "dec december dez dezember déc décembre decembre diciembre dicembre dezembro",
), 1):
    for _name in _names.split():
        MONTHS[_name] = _i
del _i, _names, _name

#: English link words: a slash date among them is month first.
_ENGLISH_LINK = lazy_compile(r"\b(?:at|on|around|about|approx|by|between|from)\b", re.I)
#: The shapes that name their month in words.
_MONTH_SHAPES = {"clf", "rfc2822", "monthfirst", "prosemon"}
#: Years a log stamp can have; anything else is a placeholder or noise.
YEAR_MIN, YEAR_MAX = 1970, 2100


# --- reading a match -------------------------------------------------------------


@lru_cache(maxsize=512)
def _zone_of_token(tok: str) -> tzinfo | None:
    tok = tok.strip().strip("()").strip()
    if tok.upper() in ZONE_ABBREVIATIONS or tok[:1] in "+-" or tok.upper().startswith(("UTC", "GMT", "UT")):
        off = zone_offset(tok)
        return timezone(off) if off is not None else None
    if len(tok) > 5:  # a name in words ("heure de Paris", "horário de Brasília"), a pair or an IANA name
        return zone_tzinfo(tok)
    return None


@lru_cache(maxsize=64)
def _year_limit(ref: datetime, offset: timedelta | None) -> datetime:
    """The reference's wall time plus a day (by the reference and its offset: equal aware times in two
    zones are equal keys, but not the same wall time)."""
    return ref.replace(tzinfo=None) + (offset or timedelta()) + timedelta(days=1)


def _limit_hour(ref: datetime) -> tuple[int, int, int]:
    """The (month, day, hour) of _year_for's limit: the one hour whose minutes and seconds can move a year."""
    limit = _year_limit(ref, ref.utcoffset())
    return limit.month, limit.day, limit.hour


def _year_for(month: int, day: int, hour: int, minute: int, second: int, reference: datetime | None) -> int | None:
    """Yearless stamps (syslog, snort): the latest year that puts the stamp at or before the reference.

    One day of slack allows for zones ahead of the reference's.
    """
    ref = reference or datetime.now(timezone.utc)
    limit = _year_limit(ref, ref.utcoffset())
    for year in range(limit.year, limit.year - 5, -1):
        try:
            cand = datetime(year, month, day, hour, minute, second)
        except ValueError:
            continue  # Feb 29 in a common year
        if cand <= limit:
            return year
    return None


def _build(m: re.Match[str], shape: str, *, reference: datetime | None, stated: tzinfo | None,
           header_offset: timedelta | None, default: tzinfo | None, dayfirst: bool | None,
           note: list[object] | None = None) -> Stamp | None:
    stamp = _read(m, shape, reference=reference, stated=stated, header_offset=header_offset, default=default,
                  dayfirst=dayfirst, note=note)
    if stamp is not None and not m.group("S"):
        return replace(stamp, partial=True, precision=60.0)
    if stamp is not None and m.group("frac"):
        return replace(stamp, precision=10.0 ** -len(m.group("frac")))
    return stamp


def _read(m: re.Match[str], shape: str, *, reference: datetime | None, stated: tzinfo | None,
          header_offset: timedelta | None, default: tzinfo | None, dayfirst: bool | None,
          note: list[object] | None = None) -> Stamp | None:
    """A matched stamp, read in full. ``note`` (for _stamp's memo) gets the (month, day, hour) of each
    year guessed and the zone the stamp names."""
    g = m.groupdict()
    try:
        hour, minute = int(g["H"]), int(g["M"])
        second = int(g["S"]) if g.get("S") else 0
        frac = g.get("frac")
        micro = int((frac + "000000")[:6]) if frac else 0
        ampm = g.get("ampm")
        if ampm:
            if not 1 <= hour <= 12:
                return None
            pm = ampm[0] in "pP"
            hour = (hour % 12) + (12 if pm else 0)
        if shape in _MONTH_SHAPES:
            month = MONTHS[g["mon"].lower()]
        else:
            month = int(g["m"])
        day = int(g["d"])
        if shape == "us":
            if month > 12 and day <= 12:  # 22/11/2026: only day-first makes sense
                month, day = day, month
            elif dayfirst and day <= 12:
                month, day = day, month
        elif shape == "prose":
            # Day first, except a slash date among English words (the "us" shape's rule then).
            if g.get("sep") == "/" and not dayfirst and _ENGLISH_LINK.search(g.get("link") or "") and month <= 12:
                month, day = day, month
            if month > 12 and day <= 12:
                month, day = day, month
        year_s = g.get("Y") or g.get("Y2")
        if year_s:
            year = int(year_s)
            if len(year_s) <= 2:
                year += 2000 if year < 70 else 1900
            if not YEAR_MIN <= year <= YEAR_MAX:
                return None  # "0001-01-01 00:00:00": a placeholder, not when anything happened
        else:
            if note is not None:
                note.append((month, day, hour))
            guessed = _year_for(month, day, hour, minute, second, reference)
            if guessed is None:
                return None
            year = guessed
        if second == 60:  # leap second: keep the event, in the next second's place
            second = 59
        naive = datetime(year, month, day, hour, minute, second, micro)
    except (ValueError, KeyError, TypeError):
        return None
    start, end, tz = m.start(), m.end(), None
    tok = g.get("tz")
    if tok:
        tz = _zone_of_token(tok)
        if tz is None:
            # A word after the time that is no zone ("03:14:07 srv kernel"): not part of
            # the stamp, and neither is a year after it.
            end = m.start("tz")
            while end > start and m.string[end - 1] in " \t,":
                end -= 1
            year_s = g.get("Y")
            if not year_s:
                if note is not None:
                    note.append((month, day, hour))
                guessed = _year_for(month, day, hour, minute, second, reference)
                if guessed is None:
                    return None
                try:
                    naive = naive.replace(year=guessed)
                except ValueError:
                    return None
    if tz is None and g.get("tzc"):
        tz = _zone_of_token(g["tzc"])
    if tz is not None:
        if note is not None:
            note.append(tz)
        try:
            return Stamp(naive.replace(tzinfo=tz).astimezone(timezone.utc), "explicit", start, end, shape)
        except (OverflowError, ValueError):
            return None
    return _resolve(naive, start, end, shape, stated, header_offset, default)


#: What _build read, by the stamp's text with its minutes and seconds cut out, in one context: log lines
#: repeat a stamp but for its clock's minutes and seconds (~39 of 40 stamps of the bench corpus). The
#: context (reference, zones, dayfirst) is held by identity with its memo; another context starts another.
#: The key: the shape and pattern, the text from the character before the match up to the minutes and
#: from after the seconds to the character after the match (within endpos), and which of those two
#: characters there are. A regex path that ends where the match ends looks no further than one character
#: on each side (its lookarounds), and every shape treats digits alike (digitblind.blind), so the same
#: key is the same match with the same groups whatever the minutes' and seconds' digits.
#: Kept only where those digits change nothing but the time, by as much as they say: a fixed offset
#: (a zoneinfo zone is read in full), minutes and seconds 0-59 (a leap second is read in full, and so is
#: a fraction), a guessed year that they cannot move (_year_for: the reference's hour, a day on, is not
#: the stamp's).
_Read = tuple[datetime, str, int] | None
_Ctx = tuple[datetime | None, tzinfo | None, timedelta | None, tzinfo | None, bool | None, bool,
             dict[tuple[str, str, str, str, int], _Read]]
_CTX: _Ctx = (None, None, None, None, None, False, {})
_READS_MAX = 4096
_MINUTES = tuple(timedelta(minutes=n) for n in range(60))
_SECONDS = tuple(timedelta(seconds=n) for n in range(60))
_FIXED = (type(None), timezone)  # the zones whose offset the clock cannot change
_NOT_READ: _Read = (datetime.min, "", -1)  # not in the memo (compared by identity)
_new, _set = object.__new__, object.__setattr__


def _stamp(m: re.Match[str], shape: str, reference: datetime | None, stated: tzinfo | None,
           header_offset: timedelta | None, default: tzinfo | None, dayfirst: bool | None) -> Stamp | None:
    """_build's reading of a match, remembered as said at _CTX."""
    global _CTX
    a, b = m.start("M"), m.start("S")
    if b != a + 3 or reference is None or m.start("frac") >= 0:
        return _build(m, shape, reference=reference, stated=stated, header_offset=header_offset,
                      default=default, dayfirst=dayfirst)
    ctx = _CTX
    if not (ctx[0] is reference and ctx[1] is stated and ctx[2] is header_offset and ctx[3] is default
            and ctx[4] is dayfirst):
        fixed = type(stated) in _FIXED and type(default) in _FIXED
        ctx = _CTX = (reference, stated, header_offset, default, dayfirst, fixed, {})
    string = m.string
    minute, sec = int(string[a:a + 2]), int(string[b:b + 2])
    if minute > 59 or sec > 59:
        return _build(m, shape, reference=reference, stated=stated, header_offset=header_offset,
                      default=default, dayfirst=dayfirst)
    s, e = m.span()
    lo = s - 1 if s else 0
    hi = e + 1 if e < m.endpos else e
    key = (shape, m.re.pattern, string[lo:a], string[b + 2:hi], s - lo + 2 * (hi - e))
    memo = ctx[6]
    got = memo.get(key, _NOT_READ)
    if got is not _NOT_READ:
        if got is None:
            return None
        made: Stamp = _new(Stamp)  # Stamp(time, zone, s, end, shape) without the frozen __init__'s 7 calls
        _set(made, "__dict__", {"time": got[0] + _MINUTES[minute] + _SECONDS[sec], "zone": got[1], "start": s,
                                "end": s + got[2], "shape": shape, "partial": False, "precision": 1.0})
        return made
    note: list[object] = []
    stamp = _build(m, shape, reference=reference, stated=stated, header_offset=header_offset, default=default,
                   dayfirst=dayfirst, note=note)
    if not ctx[5]:
        return stamp
    for x in note:
        if (x == _limit_hour(reference)) if isinstance(x, tuple) else type(x) is not timezone:
            return stamp
    if len(memo) >= _READS_MAX:
        memo.clear()
    memo[key] = None if stamp is None else (stamp.time - _MINUTES[minute] - _SECONDS[sec], stamp.zone, stamp.end - s)
    return stamp


#: What _recall answers when the memo cannot: match the line and read it (_stamp).
_MISS = Stamp(datetime.min, "", -1, -1)


def _clock_at(m: re.Match[str]) -> tuple[int, int]:
    """Where a match's minutes and seconds start, when _recall may answer for a match of the same spans
    (a plan's, abuso.timestamps): seconds without a fraction, and no monthfirst year after the time
    (whether it is one depends on its digits); else (-1, -1)."""
    a, b = m.start("M"), m.start("S")
    if b != a + 3 or m.start("frac") >= 0 or "Y2" in m.re.groupindex and m.start("Y2") >= 0:
        return -1, -1
    return a, b


def _recall(line: str, shape: str, pattern: str, s: int, e: int, endpos: int, a: int, b: int,
            reference: datetime | None, stated: tzinfo | None, header_offset: timedelta | None,
            default: tzinfo | None, dayfirst: bool | None) -> Stamp | None:
    """_stamp's answer from its memo for the match ``rx.match(line, s, endpos)`` of ``pattern`` that
    spans s..e with its minutes at a and seconds at b (a plan's spans: every shape is digit-blind), without
    matching; _MISS when the memo has none (then match and call _stamp)."""
    ctx = _CTX
    if reference is None or not (ctx[0] is reference and ctx[1] is stated and ctx[2] is header_offset
                                 and ctx[3] is default and ctx[4] is dayfirst):
        return _MISS
    minute, sec = int(line[a:a + 2]), int(line[b:b + 2])
    if minute > 59 or sec > 59:
        return _MISS
    lo = s - 1 if s else 0
    hi = e + 1 if e < endpos else e
    got = ctx[6].get((shape, pattern, line[lo:a], line[b + 2:hi], s - lo + 2 * (hi - e)), _NOT_READ)
    if got is _NOT_READ:
        return _MISS
    if got is None:
        return None
    made: Stamp = _new(Stamp)  # as in _stamp
    _set(made, "__dict__", {"time": got[0] + _MINUTES[minute] + _SECONDS[sec], "zone": got[1], "start": s,
                            "end": s + got[2], "shape": shape, "partial": False, "precision": 1.0})
    return made


def _resolve(naive: datetime, start: int, end: int, shape: str, stated: tzinfo | None,
             header_offset: timedelta | None, default: tzinfo | None) -> Stamp | None:
    """A naive stamp's zone from the report, in the one order (abuso.zones.resolve)."""
    found = resolve(naive, stated=stated, header_offset=header_offset, default=default)
    return Stamp(found[0], found[1], start, end, shape) if found is not None else None
