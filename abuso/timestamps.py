"""Timestamps in abuse reports: find them in a line, read them, and say where the zone came from.

Reports paste logs in every shape there is, and most stamps carry no zone. A
stamp that carries one is ``explicit``; a naive one takes its zone from the
report in the one order of :mod:`abuso.zones` (``stated``, ``date-header``,
``default``, ``assumed-utc``), which every parser shares. The zone names and
:func:`resolve` are re-exported here.

Yearless stamps (syslog, snort) take the latest year that puts them at or
before the report's Date (one day of slack for zones ahead), never the
current year; without a Date, the current time is the reference. Years
outside 1970-2100 are placeholders, not stamps.

The common shapes are compiled regexes plus integer parsing (a few µs per
line); dateparser (1-2 ms per call, ~100 ms to import) is only a lazy fallback
for odd shapes and other languages (:mod:`abuso.datefallback`: its languages, memo and budget per
message), and never runs on a line a fast shape read.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from .datefallback import (  # re-exported: the dateparser fallback is part of reading timestamps
    FALLBACK_CALLS,
    FALLBACK_SKIPPED,
    MAX_CALLS_PER_MESSAGE,
    MAX_SECONDS_PER_MESSAGE,
    DateScope,
    message_scope,
    report_languages,
)
from .datefallback import fallback as _fallback
from .digitblind import Keyed, blind, key_for
from .lazy import lazy_compile
from .stampread import (  # Stamp re-exported: the result of finding stamps
    _MISS,
    _MONTH_SHAPES,
    MONTHS,
    Stamp,
    _clock_at,
    _recall,
    _stamp,
)
from .zones import (
    ZONE_ABBREVIATIONS,
    ZONE_REGIONS,
    Zoneish,
    Zones,
    as_tzinfo,
    check_zone,
    resolve,
    stated_zone,
    zone_offset,
    zone_tzinfo,
)

__all__ = [
    "FALLBACK_CALLS", "FALLBACK_SKIPPED", "MAX_CALLS_PER_MESSAGE", "MAX_SECONDS_PER_MESSAGE",
    "ZONE_ABBREVIATIONS", "ZONE_REGIONS", "DateScope", "Stamp", "Zoneish", "Zones", "check_zone",
    "find_timestamps", "message_scope", "parse_timestamp", "report_languages", "resolve", "stated_zone",
    "zone_offset", "zone_tzinfo",
]


# --- the shapes -----------------------------------------------------------------

# Any short word; stampread._read() checks it against MONTHS (a 70-way alternation costs ~10x more per position).
_MON = r"(?P<mon>[^\W\d_]{3,9})\.?"
_DAY = r"(?:(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?,?\s+)?"
_TIME = (r"(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<frac>\d{1,9}))?)?"
         r"(?:\s?(?P<ampm>[AaPp]\.?[Mm]\.?)(?![A-Za-z]))?")
# A zone after the time: numeric offset, Z, UTC/GMT±n, or a word checked against the tables.
_TZ = (r"(?:\s*(?P<tz>Z(?![A-Za-z])|[+-]\d{2}:?\d{2}(?!\d)|(?:UTC|GMT|UT)(?:\s?[+-]\d{1,2}(?::?\d{2})?)?(?![A-Za-z])"
       r"|[A-Z]{3,5}(?![A-Za-z])|\((?:[A-Za-z]{2,5}|(?:UTC|GMT)\s?[+-]\d{1,2}(?::?\d{2})?)\))"
       r"(?:\s*\((?P<tzc>[A-Za-z]{2,5})\))?)?")

# "22. November 2026 um 14:37", "November 22, 2026 at 3:14 PM", "22 nov. 2026 à 14:37"
_AT = r",?\s+(?:at|um|à|a las|alle|om|kl\.?)\s+"

_SHAPES: list[tuple[str, re.Pattern[str]]] = [
    # 2026-11-22T03:14:07.123+01:00, 2026-11-23 08:15:00, 2026/11/23 08:15
    ("iso", lazy_compile(r"(?<!\d)(?P<Y>\d{4})(?P<sep>[-/.])(?P<m>\d{1,2})(?P=sep)(?P<d>\d{1,2})(?:[T ]|\s+|T\s*)"
                       + _TIME + _TZ)),
    # 24/Nov/2026:13:05:01 +0100 (Apache, CLF)
    ("clf", lazy_compile(r"(?<!\d)(?P<d>\d{1,2})/" + _MON + r"/(?P<Y>\d{4}):" + _TIME + _TZ, re.I)),
    # Tue, 23 Oct 2003 18:13:36 -0400 (EST); 30 Oct 2003 22:10:04; 22-Nov-2026 03:14; 22Nov2026 3:14:07
    ("rfc2822", lazy_compile(r"(?<![\dA-Za-z])" + _DAY + r"(?P<d>\d{1,2})\.?[-\s]*" + _MON + r"[-\s,]*(?P<Y>\d{4})"
                           r"(?:" + _AT + r"|[\s,]+|\s*[-:]\s*)" + _TIME + _TZ, re.I)),
    # Oct, 23 2003 6:13:36 PM -0400; Nov 22 03:14:07 (syslog); Sun Nov 22 03:14:07 CET 2026 (date(1))
    ("monthfirst", lazy_compile(r"(?<![\dA-Za-z])" + _DAY + _MON + r",?\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?,?\s+"
                              r"(?:(?P<Y>\d{4})(?:" + _AT + r"|,?\s+))?" + _TIME + _TZ
                              + r"(?P<tail>\s+(?P<Y2>\d{4})(?!\d))?", re.I)),  # Y2 is 19xx/20xx: _matches()
    # 11/22/2026 5:07:44 PM (US, Windows); 22/11/2026 when the first number cannot be a month
    ("us", lazy_compile(r"(?<![\d/])(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<Y>\d{4}|\d{2})(?:\s+|,\s*|\s*-\s*)"
                      + _TIME + _TZ)),
    # 22.11.2026 14:37:12 (European)
    ("eu", lazy_compile(r"(?<![\d.])(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<Y>\d{4}|\d{2})(?:\s+|,\s*|\s*-\s*)"
                      + _TIME + _TZ)),
    # 11/22-03:14:07.123456 (snort), 11/22/26-03:14:07
    ("snort", lazy_compile(r"(?<![\d/])(?P<m>\d{2})/(?P<d>\d{2})(?:/(?P<Y>\d{2,4}))?-" + _TIME)),
]

# --- prose: a date, words, then its clock time (issue 8.1, issue 11 class 7) ---------------
#
# "am 12.11.2026 um 23:14:05 Uhr (MEZ)", "el 12/11/2026 a las 21:05:33 (GMT-3)",
# "le 12/11/2026 à 14h37 (heure de Paris)", "il 12/11/2026 alle ore 16:20:00 (ora italiana)",
# "op 12-11-2026 om 08:15:10 (CET)", "em 12 de novembro de 2026 às 18:45:00 (horário de Brasília)",
# "on 2026-11-12 between 10:00 and 10:30 UTC", "on 12 Nov 2026 from 14:05 to 14:20 CET".
# A range is dated by its start, in the zone written after its end. Numeric dates in these
# languages are day first; with English words a slash date is month first (as the "us" shape).
# A zone in parentheses may be a long name ("heure de Paris"): abuso.zones resolves it.
_LINK_WORD = (r"(?:at|on|around|approx\.?|about|by|between|from|um|gegen|ca\.?|zwischen|von|à|a|às|as|las|los"
              r"|sobre|hacia|entre|desde|alle|ore|verso|tra|fra|dalle|dal|le|vers|rond|om|omstreeks|tussen|van"
              r"|kl\.?|klokken|por\s+volta\s+d[ae]s|alrededor\s+de)")
_PROSE_TIME = (r"(?P<H>\d{1,2})(?::|h(?=\d\d)|\.(?=\d\d(?![\d.])))(?P<M>\d{2})"
               r"(?::(?P<S>\d{2})(?:[.,](?P<frac>\d{1,9}))?)?"
               r"(?:\s?(?P<ampm>[AaPp]\.?[Mm]\.?)(?![A-Za-z]))?"
               r"(?:\s*(?:Uhr|uur|hrs?|horas?|heures?|h)(?![A-Za-z]))?")
# the end of a range: "and 10:30", "- 14:20", "bis 10:30 Uhr", "y las 21:10"
_PROSE_RANGE = (r"(?:(?:\s+[-–]\s*|\s*–\s*|\s+(?:to|and|und|bis|et|à|a|y|e|en|tot|till|until|through)\s+"
                r"(?:(?:las|as|le|ore|om|um)\s+)?)\d{1,2}(?::|h(?=\d\d)|\.(?=\d\d(?![\d.])))\d{2}(?::\d{2})?"
                r"(?:\s*(?:Uhr|uur|hrs?|h)(?![A-Za-z]))?)?")
_PROSE_ZONE = (r"(?:\s*(?P<tz>Z(?![A-Za-z])|[+-]\d{2}:?\d{2}(?!\d)|(?:UTC|GMT|UT)(?:\s?[+-]\d{1,2}(?::?\d{2})?)?"
               r"(?![A-Za-z])|[A-Z]{3,5}(?![A-Za-z]))|\s*\((?P<tzc>[^()\n]{1,40})\))?")
_PROSE_TAIL = r"(?P<link>(?:\s*,)?(?:\s+" + _LINK_WORD + r"){1,3}\s+)" + _PROSE_TIME + _PROSE_RANGE + _PROSE_ZONE
# Time first: "at 14:05 UTC on 12 November 2026", "um 23:14 Uhr (MEZ) am 12.11.2026", "à 14h37 le 12/11/2026".
_PROSE_HEAD = (r"(?<![\d:.])" + _PROSE_TIME + _PROSE_RANGE + _PROSE_ZONE
               + r"(?P<link>\s*,?\s*(?:on|le|am|el|il|op|em|del|du|of)(?:\s+the)?\s+)")
_NUM_DATE = r"(?P<d>\d{1,2})(?P<sep>[./-])(?P<m>\d{1,2})(?P=sep)(?P<Y>\d{4})(?![\d:])"
_ISO_DATE = r"(?P<Y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})(?![\d:T])"
_DAY_MON = (r"(?P<d>\d{1,2})(?:\.|º|°|er|st|nd|rd|th)?\s*(?:de\s+|of\s+)?(?P<mon>[^\W\d_]{3,10})\.?,?\s*"
            r"(?:de\s+|del\s+)?(?P<Y>\d{4})(?![\d:])")
_MON_DAY = r"(?P<mon>[^\W\d_]{3,10})\.?\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<Y>\d{4})(?![\d:])"
_PROSE_SHAPES: list[tuple[str, re.Pattern[str]]] = [
    # 12.11.2026, 12/11/2026, 12-11-2026
    ("prose", lazy_compile(r"(?<![\d.:/-])" + _NUM_DATE + _PROSE_TAIL, re.I)),
    # 2026-11-12 (then words: "2026-11-12 10:00" is the iso shape's)
    ("prose", lazy_compile(r"(?<![\d.:/-])" + _ISO_DATE + _PROSE_TAIL, re.I)),
    # 12. November 2026, 12 de noviembre de 2026, 12 nov. 2026
    ("prosemon", lazy_compile(r"(?<![\dA-Za-z])" + _DAY_MON + _PROSE_TAIL, re.I)),
    # November 12, 2026 (English)
    ("prosemon", lazy_compile(r"(?<![\dA-Za-z])" + _MON_DAY + _PROSE_TAIL, re.I)),
    # The clock first, then the date.
    ("prose", lazy_compile(_PROSE_HEAD + _NUM_DATE, re.I)),
    ("prose", lazy_compile(_PROSE_HEAD + _ISO_DATE, re.I)),
    ("prosemon", lazy_compile(_PROSE_HEAD + _DAY_MON, re.I)),
    ("prosemon", lazy_compile(_PROSE_HEAD + _MON_DAY, re.I)),
]
#: Whether a clock time is written in prose: a link word right before it ("um 23:14", "a las 21:05",
#: "between 10:00"), "14h37", or "Uhr"/"uur" after it. Looked at around each H:MM only (a
#: case-insensitive alternation over the whole line cost ~18 µs a line); ordinary log lines fail it.
_LINK_BEFORE = lazy_compile(r"\b(?:at|on|around|between|from|um|gegen|zwischen|von|à|a|às|as|las|entre|desde|alle|ore"
                            r"|tra|dalle|vers|om|tussen|kl\.?|klokken|de)\s+\d?$", re.I)


#: "alle ore 16.20", "om 08.15 uur", "um 23.14 Uhr": a clock with a dot, only right after such a word
#: (a dot between digits is otherwise an address or a version).
_DOT_CLOCK = lazy_compile(r"\b(?:ore|om|um|kl\.?|klokken|alle|às|as|las|vers|gegen|at)\s+(\d{1,2}\.\d\d)(?![\d.])",
                          re.I)
_DOT_WORDS = (" ore ", " om ", " um ", "kl.", "klokken", " às ", " as ", " las ", " vers ", " gegen ", " at ")


def _clock_spans(line: str) -> tuple[list[tuple[int, int]], bool]:
    """Where the clock times of a line are (H:MM, HhMM, and dotted ones after a prose word), and
    whether a dotted one was found (then the line is prose)."""
    spans = [t.span() for t in _TIMEISH.finditer(line)]
    dotted = False
    if "." in line:
        low = line.lower()
        if any(w in low for w in _DOT_WORDS):
            for m in _DOT_CLOCK.finditer(line):
                spans.append((m.start(1) + m.group(1).index(".") - 1, m.end(1)))
                dotted = True
            if dotted:
                spans.sort()
    return spans, dotted


#: A date right after a clock time and its zone ("14:05 UTC on 12 November 2026", "23:14 Uhr am 12.11.").
_DATE_AFTER = lazy_compile(r"(?::\d\d(?:[.,]\d+)?)?(?:\s*[AP]\.?M\.?)?(?:\s*(?:[A-Z]{1,5}|[+-]\d\d:?\d\d|Uhr|uur|h))?"
                           r"(?:\s*\([^()\n]{1,40}\))?\s*,?\s*"
                           r"(?:on|le|am|el|il|op|em|del|du)\s+(?:the\s+)?(?:\d|[^\W\d_]{3,10}\.?\s+\d)", re.I)


def _prose_here(line: str, times: list[tuple[int, int]]) -> bool:
    for s, e in times:
        if line[s + 1] == "h" or _LINK_BEFORE.search(line, max(0, s - 14), s):
            return True
        if _DATE_AFTER.match(line, e, e + 64):
            return True
        after = line[e:e + 6].lower()
        if "uhr" in after or "uur" in after:
            return True
    return False


#: Cheap test before any shape runs: every fast shape has H:MM.
_TIMEISH = lazy_compile(r"\d(?::|h(?=\d\d))\d\d")
#: A clock time standing alone (not "80:443", not a MAC): worth asking dateparser about.
_CLOCK = lazy_compile(r"(?<![\d:])\d{1,2}:\d{2}(?::\d{2})?(?![\d:])")
#: A character each numeric shape's date part cannot do without (a cheap test before the regex).
_NEEDS = {"iso": "-/.", "clf": "/", "us": "/", "eu": ".", "snort": "/", "prose": "-/."}
#: Substring tests are ~4x cheaper than one case-insensitive alternation over the line.
_MONTH_PREFIXES = tuple(sorted({m[:3] for m in MONTHS}))
#: Whether a lower-cased line holds any of them: one literal alternation, ~15x cheaper than 33 `in` tests.
_MONTHISH = lazy_compile("|".join(re.escape(m) for m in _MONTH_PREFIXES))
#: How far a stamp reaches before its H:MM ("Tue, 23 Oct 2003 18:" is 17) and after it (seconds,
#: fraction, AM/PM, zone, a date(1) year).
_BEFORE, _AFTER = 32, 48
#: Prose puts more words between its date and its clock ("12 de noviembre de 2026 a las 21:05").
_PROSE_BEFORE, _PROSE_AFTER = 48, 80


def _windows(line: str, times: list[tuple[int, int]], before: int = _BEFORE, after: int = _AFTER
             ) -> list[tuple[int, int]]:
    """Stretches of the line around each H:MM where a stamp can be: the shapes are only tried there.

    Python's re has no first-character skip for these patterns, so searching every
    position of a long line costs ~70 µs per shape; a window around each time costs ~2.
    """
    out: list[tuple[int, int]] = []
    n = len(line)
    for start, end in times:
        lo, hi = max(0, start - before), min(n, end + after)
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out
_EPOCH = lazy_compile(r"(?<![\d.])(?P<e>1\d{9}|[2-3]\d{9})(?:\.(?P<frac>\d{1,6}))?(?![\d])")
#: What every epoch needs: ten digits in a row (a cheaper scan; most lines have none).
_TEN_DIGITS = lazy_compile(r"\d{10}")
#: Epoch seconds count only where the text marks them as a time (or in a table's time column).
_EPOCH_LABEL = lazy_compile(r"(?:time(?:stamp)?|epoch|date|unixtime|ts)\s*[=:]\s*\"?$", re.I)
EPOCH_MIN, EPOCH_MAX = 946684800, 4102444800  # 2000-01-01 .. 2100-01-01


#: A line's plan, by the line with its digits made 0 (abuso.digitblind.zeroed): each shape in the
#: order find_timestamps tries them, with where its regex matched (start, window end) when it treats
#: every digit alike, else the windows it must search every time. Where a stamp can be (clock times,
#: windows, prose, month words, _NEEDS) and where a digit-blind regex matches are the same for every
#: line of that zeroed text; what the digits say (month 13, a year, a zone) is read each time.
#: Log lines repeat by shape: ~17 lines per plan on the bench corpus.
#: With it, whether the line has ten digits in a row (what every epoch needs; \d{10} is digit-blind).
_Plan = tuple[tuple[tuple[str, re.Pattern[str], bool, tuple[tuple[int, ...], ...]], ...], bool]
_PLANS: dict[str | bytes, _Plan] = {}
_PLANS_MAX = 4096
#: Longer lines are planned each time, not kept.
_PLAN_CHARS = 4096


def _plan(line: str) -> _Plan:
    ten = _TEN_DIGITS.search(line) is not None
    times, dotted = _clock_spans(line)
    if not times:
        return (), ten
    windows = _windows(line, times)
    months = _MONTHISH.search(line.lower()) is not None
    prose = _windows(line, times, _PROSE_BEFORE, _PROSE_AFTER) if dotted or _prose_here(line, times) else None
    steps: list[tuple[str, re.Pattern[str], bool, tuple[tuple[int, ...], ...]]] = []
    for shape, rx in (_PROSE_SHAPES + _SHAPES) if prose else _SHAPES:
        if not months and shape in _MONTH_SHAPES:
            continue
        need = _NEEDS.get(shape)
        spans = tuple(w for w in (prose if prose and shape.startswith("prose") else windows)
                      if need is None or any(c in line[w[0]:w[1]] for c in need))
        if not spans:
            continue
        if blind(rx):
            # where it matched, with the match's end and its minutes' and seconds' starts (stampread._clock_at)
            at = tuple((m.start(), hi, m.end(), *_clock_at(m)) for lo, hi in spans for m in rx.finditer(line, lo, hi))
            if at:
                steps.append((shape, rx, False, at))
        else:
            steps.append((shape, rx, True, spans))  # its matches may depend on the digits: searched each time
    return tuple(steps), ten


def _matches(shape: str, rx: re.Pattern[str], live: bool, spans: tuple[tuple[int, ...], ...], line: str
             ) -> list[re.Match[str]]:
    """A plan step's matches in ``line``: searched in its windows (``live``), or matched where the plan says."""
    if live:
        found = [m for lo, hi in spans for m in rx.finditer(line, lo, hi)]
    else:  # (a digit-blind regex matches there, whatever the digits: never None, but never trust a plan over the line)
        found = [m for s, hi in spans if (m := rx.match(line, s, hi)) is not None]
    if shape == "monthfirst":
        for i, m in enumerate(found):
            if m["Y2"] and m["Y2"][:2] not in ("19", "20"):
                # A year after the time is 19xx or 20xx (checked here, not in the regex, to keep it
                # digit-blind): without it the stamp ends where the year's blank began.
                found[i] = rx.match(line, m.start(), m.start("tail")) or m
    return found


def find_timestamps(line: str, *, reference: datetime | None = None, stated: Zoneish = None,
                    header_offset: timedelta | None = None, default: Zoneish = None,
                    epoch: bool = False, dayfirst: bool | None = None, fallback: bool = False,
                    format_utc: bool = False, keyed: Keyed | None = None) -> list[Stamp]:
    """Every timestamp in one line, left to right, with spans; overlapping matches are dropped.

    ``reference`` (the report's Date) fixes the year of yearless stamps.
    ``stated`` / ``header_offset`` / ``default`` are the zone sources for naive
    stamps, ``format_utc`` says the format fixes UTC (abuso.zones.resolve).
    ``epoch``: read bare epoch seconds (set it for a table's time column);
    labelled ones (``time=1763781247``) are always read. ``fallback``: try
    dateparser when no fast shape matched a time-like text. ``keyed``: the line with its key, made once
    for all its memos (abuso.digitblind.keyed), used only when made for this very line.
    """
    out: list[Stamp] = []
    if format_utc:  # the format's UTC comes before every source of the report: none of them applies
        stated = header_offset = default = None
    key = None if len(line) > _PLAN_CHARS else key_for(line, keyed)
    plan = _PLANS.get(key) if key is not None else None
    if plan is None:
        plan = _plan(line)
        if key is not None:
            if len(_PLANS) >= _PLANS_MAX:
                _PLANS.clear()
            _PLANS[key] = plan
    steps, ten = plan
    st, df = (as_tzinfo(stated), as_tzinfo(default)) if steps or fallback else (None, None)
    for shape, rx, live, spans in steps:
        if not live:  # where the plan says: each match's spans, read from the memo when it can (stampread._recall)
            for s, hi, e, a, b in spans:
                m = None if a >= 0 else _matches(shape, rx, False, ((s, hi),), line)[0]
                if m is not None:
                    s, e = m.span()
                for o in out:
                    if o.start <= s < o.end or s <= o.start < e:
                        break
                else:
                    if m is None:
                        stamp = _recall(line, shape, rx.pattern, s, e, hi, a, b, reference, st, header_offset, df,
                                        dayfirst)
                        if stamp is _MISS:
                            stamp = _stamp(_matches(shape, rx, False, ((s, hi),), line)[0], shape, reference, st,
                                           header_offset, df, dayfirst)
                    else:
                        stamp = _stamp(m, shape, reference, st, header_offset, df, dayfirst)
                    if stamp is not None:
                        out.append(stamp)
            continue
        for m in _matches(shape, rx, live, spans, line):
            s, e = m.span()
            for o in out:
                if o.start <= s < o.end or s <= o.start < e:
                    break
            else:
                stamp = _stamp(m, shape, reference, st, header_offset, df, dayfirst)
                if stamp is not None:
                    out.append(stamp)
    if ten and (epoch or ":" in line or "=" in line or line[:1].isdigit()):
        for m in _EPOCH.finditer(line):
            s = m.start()
            if any(o.start <= s < o.end for o in out):
                continue
            if not (epoch or s == 0 or _EPOCH_LABEL.search(line, max(0, s - 16), s)):
                continue
            secs = int(m.group("e"))
            if not EPOCH_MIN <= secs <= EPOCH_MAX:
                continue
            frac = m.group("frac")
            t = datetime.fromtimestamp(secs, timezone.utc)
            if frac:
                t = t.replace(microsecond=int((frac + "000000")[:6]))
            out.append(Stamp(t, "explicit", s, m.end(), "epoch", precision=10.0 ** -len(frac) if frac else 1.0))
    if not out and fallback and _CLOCK.search(line):
        stamp = _fallback(line, reference, st, header_offset, df)
        if stamp is not None:
            out.append(stamp)
    if len(out) > 1:
        out.sort(key=lambda x: x.start)
    return out


def parse_timestamp(text: str, *, reference: datetime | None = None, stated: Zoneish = None,
                    header_offset: timedelta | None = None, default: Zoneish = None,
                    dayfirst: bool | None = None, fallback: bool = True) -> Stamp | None:
    """One timestamp field (an ARF Arrival-Date, a CSV cell) -> Stamp, or None.

    Epoch seconds are accepted (the caller says this text is a time). The fast
    shapes are tried first; dateparser only when they fail and ``fallback``.
    """
    text = text.strip()
    if not text:
        return None
    found = find_timestamps(text, reference=reference, stated=stated, header_offset=header_offset,
                            default=default, epoch=True, dayfirst=dayfirst, fallback=False)
    if found:
        return found[0]
    if not fallback or len(text) > 200:
        return None
    return _fallback(text, reference, as_tzinfo(stated), header_offset, as_tzinfo(default), whole=True)
