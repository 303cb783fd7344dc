"""stampread's memo (issue 8): a stamp read from the memo of its context is the Stamp of the full reading,
on sample and built stamps of every shape: odd zones, DST edges, 2-digit years, Feb 29, yearless stamps
whose year the report's Date decides, leap seconds, fractions, invalid fields."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from abuso import stampread, timestamps
from abuso.stampread import Stamp
from tests.test_stamp_plans import _lines

UTC = timezone.utc
PLUS1 = timezone(timedelta(hours=1))
NEPAL = timezone(timedelta(hours=5, minutes=45))
BERLIN = ZoneInfo("Europe/Berlin")
#: Its clocks went back at 00:01 (1987-2010): the offset changes within an hour.
ST_JOHNS = ZoneInfo("America/St_Johns")

#: (reference, stated, header_offset, default, dayfirst), as find_timestamps takes them.
CONTEXTS: list[tuple[datetime | None, Any, timedelta | None, Any, bool | None]] = [
    (datetime(2026, 11, 25, 12, tzinfo=UTC), None, None, None, None),
    (datetime(2026, 11, 25, 12, tzinfo=PLUS1), PLUS1, timedelta(hours=1), None, True),
    (datetime(2026, 11, 25, 12, tzinfo=UTC), None, timedelta(hours=-5), None, False),
    (datetime(2026, 11, 25, 12, tzinfo=NEPAL), NEPAL, None, None, None),
    # _year_for's limit (the reference a day on) inside an hour that stamps have: "Jan  2 00:30:01" is 2025.
    (datetime(2026, 1, 1, 0, 30, 0, 500000, tzinfo=UTC), None, None, None, None),
    (datetime(2028, 2, 28, 3, 0, 7, tzinfo=UTC), None, None, timezone(timedelta(hours=-3, minutes=-30)), None),
    (datetime(2100, 2, 28, 12, tzinfo=UTC), None, None, None, None),  # Feb 29 is 2096's
    (datetime(2101, 6, 1, 12, tzinfo=UTC), None, None, None, None),  # no Feb 29 in five years
    # Zones whose offset depends on the date: read in full.
    (datetime(2026, 11, 25, 12, tzinfo=UTC), BERLIN, None, None, None),
    (datetime(2010, 11, 8, 12, tzinfo=UTC), None, None, ST_JOHNS, None),
    (None, None, None, None, None),  # no reference: yearless stamps take the current year's
]

_MONS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "Foo", "Mär", "déc"]
_ZONES = ["", "", "Z", "+01:00", "-0530", "+1400", "-1200", " +0545", " UTC", " GMT+5:45", " UTC-3", " CET", " PDT",
          " IST", " (CET)", " CEST (MESZ)", " srv", " EST (EST)"]
_OFFSETS = ["+0100", "-0500", "+0000", "+0545", "-0330", "+1400"]
_PROSE_ZONES = ["Uhr (MEZ)", "(heure de Paris)", "(GMT-3)", "CET", "(hora de Madrid)", "(ora italiana)", ""]
#: Days where clocks change, with the hour they change at (Europe, US, St John's).
_DST = [(2026, 3, 29, 2), (2026, 10, 25, 2), (2026, 3, 8, 2), (2026, 11, 1, 1), (2010, 11, 7, 0), (2010, 3, 14, 0)]


def _templates(rnd: random.Random) -> list[str]:
    """Lines with ``{M}`` and ``{S}`` where a stamp's minutes and seconds go, of every shape."""
    out = []
    for _ in range(80):
        y = rnd.choice((1969, 1970, 1999, 2010, 2024, 2025, 2026, 2026, 2028, 2100, 2101))
        mo, d, h = rnd.choice(range(0, 14)), rnd.choice((0, 1, 2, 7, 28, 29, 29, 30, 31, 32)), rnd.choice(range(0, 26))
        if rnd.random() < 0.3:  # a day and hour that matter: a clock change, a year's edge, Feb 29
            y, mo, d, h = rnd.choice(_DST + [(2026, 1, 2, 0), (2028, 2, 29, 3), (2025, 2, 29, 3), (2100, 2, 29, 1)])
            h = max(0, h + rnd.choice((-1, 0, 0, 1)))
        mon, yy = rnd.choice(_MONS) if not 1 <= mo <= 12 or rnd.random() < 0.2 else _MONS[mo - 1], f"{y % 100:02d}"
        h12, ap = (h % 12) or 12, rnd.choice(("AM", "PM", "p.m."))
        zone, off, prose_zone = rnd.choice(_ZONES), rnd.choice(_OFFSETS), rnd.choice(_PROSE_ZONES)
        pre = rnd.choice(("", "", "x ", "192.0.2.1 ", "from 198.51.100.4 at ", "(", "1"))
        out += [
            pre + f"{y}-{mo:02d}-{d:02d}{rnd.choice('T ')}{h:02d}:{{M}}:{{S}}{zone} sshd[4121]: from 192.0.2.7",
            pre + f"{y}/{mo:02d}/{d:02d} {h:02d}:{{M}}:{{S}}{zone}",
            f'192.0.2.9 - - [{d:02d}/{mon}/{y}:{h:02d}:{{M}}:{{S}} {off}] "GET / HTTP/1.1" 404',
            f"Tue, {d} {mon} {y} {h:02d}:{{M}}:{{S}} {off}{rnd.choice(('', ' (EST)', ' (CET)'))} from 198.51.100.4",
            f"{mon} {d:2d} {h:02d}:{{M}}:{{S}} host sshd[42]: Failed password for root from 203.0.113.5",
            pre + f"{mon} {d:2d} {h:02d}:{{M}}:{{S}}{zone} {rnd.choice(('', str(y), 'kernel'))}",
            f"Sun {mon} {d} {h:02d}:{{M}}:{{S}} {rnd.choice(('CET', 'UTC', 'srv', 'PDT'))} {y} 203.0.113.5",
            f"{mon}, {d} {y} {h12}:{{M}}:{{S}} {ap} {off} and {mon} {d}, {y} at {h12}:{{M}}:{{S}} {ap}",
            f"{mo}/{d}/{rnd.choice((yy, str(y)))} {h12}:{{M}}:{{S}} {ap} 192.0.2.3, {d}/{mo}/{y} {h}:{{M}}:{{S}}",
            f"{d}.{mo}.{rnd.choice((yy, str(y)))} {h}:{{M}}:{{S}}{zone} und {d}.{mo}.{y} - {h}:{{M}}:{{S}}",
            f"{mo:02d}/{d:02d}-{h:02d}:{{M}}:{{S}}{rnd.choice(('.123456', ''))} [**] "
            f"{mo:02d}/{d:02d}/{yy}-{h:02d}:{{M}}:{{S}}",
            f"von 198.51.100.31 am {d:02d}.{mo:02d}.{y} um {h:02d}:{{M}}:{{S}} {prose_zone} ein Angriff",
            f"le {d:02d}/{mo:02d}/{y} à {h:02d}:{{M}}:{{S}} {prose_zone}, el {d}/{mo}/{y} a las {h}:{{M}}:{{S}}",
            f"on {d} {mon} {y} from {h:02d}:{{M}}:{{S}} to {h:02d}:{{M}} {rnd.choice(('CET', 'UTC', ''))}",
            f"at {h:02d}:{{M}}:{{S}} UTC on {d} {mon} {y} from 192.0.2.12, um {h}:{{M}}:{{S}} Uhr am {d}.{mo}.{y}",
        ]
    return out


def _clock(rnd: random.Random) -> str:
    """Two digits of minutes or seconds: mostly 00-59, some 60, 61, 99, some not ASCII."""
    r = rnd.random()
    if r < 0.04:
        return rnd.choice(("60", "61", "99"))
    if r < 0.06:
        return "".join(chr(0x660 + int(c)) for c in f"{rnd.randrange(60):02d}")  # Arabic-Indic digits
    return f"{rnd.randrange(60):02d}"


#: Yearless stamps in the hour of _year_for's limit for CONTEXTS[4] and [5]: its minutes and seconds decide
#: the year (2026 or 2025; 2028 or 2024), then the same stamp in other hours.
EDGES = [f"{day} {clock} host sshd[1]: Failed password from 192.0.2.{i}" for i, (day, clock) in enumerate([
    ("Jan  2", "00:29:59"), ("Jan  2", "00:30:00"), ("Jan  2", "00:30:01"), ("Jan  2", "00:59:00"),
    ("Jan  2", "01:00:00"), ("Jan  1", "23:59:59"), ("Feb 29", "03:00:05"), ("Feb 29", "03:00:07"),
    ("Feb 29", "03:00:08"), ("Feb 29", "03:59:59"), ("Feb 29", "02:59:59"), ("Feb 29", "04:00:00"),
])]

@lru_cache(maxsize=1)
def _built() -> tuple[str, ...]:
    rnd = random.Random(20261129)
    lines = EDGES * 4
    for t in _templates(rnd):
        for _ in range(6):  # the same stamp but for its minutes and seconds: what the memo is for
            lines.append(t.replace("{M}", _clock(rnd)).replace("{S}", _clock(rnd)))
    rnd.shuffle(lines)
    return tuple(lines)


def _built_lines() -> list[str]:
    return list(_built())


def _full(m: Any, shape: str, reference: Any, stated: Any, header_offset: Any, default: Any, dayfirst: Any
          ) -> Stamp | None:
    return stampread._build(m, shape, reference=reference, stated=stated, header_offset=header_offset,
                            default=default, dayfirst=dayfirst)


def _read_all(lines: list[str], ctx: tuple[Any, ...]) -> list[list[Stamp]]:
    reference, stated, header_offset, default, dayfirst = ctx
    return [timestamps.find_timestamps(ln, reference=reference, stated=stated, header_offset=header_offset,
                                       default=default, dayfirst=dayfirst) for ln in lines]


def _differences(monkeypatch: pytest.MonkeyPatch, lines: list[str], ctx: tuple[Any, ...]
                 ) -> tuple[list[str], Counter[str]]:
    """The lines whose stamps from the memo differ from the full reading's, and how often each path ran."""
    runs: Counter[str] = Counter()
    build, stamp, recall = stampread._build, stampread._stamp, stampread._recall

    def counted_build(*a: Any, **k: Any) -> Stamp | None:
        runs["full"] += 1
        return build(*a, **k)

    def counted_stamp(*a: Any) -> Stamp | None:
        runs["read"] += 1
        return stamp(*a)

    def counted_recall(*a: Any) -> Stamp | None:
        got = recall(*a)
        runs["read"] += got is not stampread._MISS  # answered from the plan's spans, not matched
        return got

    monkeypatch.setattr(stampread, "_CTX", (None, None, None, None, None, False, {}))
    with monkeypatch.context() as mp:
        mp.setattr(stampread, "_build", counted_build)
        mp.setattr(timestamps, "_stamp", counted_stamp)
        mp.setattr(timestamps, "_recall", counted_recall)
        memo = _read_all(lines, ctx)
    with monkeypatch.context() as mp:
        mp.setattr(timestamps, "_stamp", _full)
        mp.setattr(timestamps, "_recall", lambda *a: stampread._MISS)
        plain = _read_all(lines, ctx)
    runs["stamps"] = sum(len(x) for x in plain)
    # repr: the same class, fields and values (a memo's Stamp is made without the dataclass __init__)
    return [ln for ln, a, b in zip(lines, memo, plain, strict=True) if a != b or repr(a) != repr(b)], runs


@pytest.mark.parametrize("ctx", CONTEXTS, ids=[str(i) for i in range(len(CONTEXTS))])
def test_memo_gives_the_full_reading_on_built_stamps(monkeypatch: pytest.MonkeyPatch, ctx: tuple[Any, ...]) -> None:
    lines = _built_lines()
    diff, runs = _differences(monkeypatch, lines, ctx)
    assert diff == []
    assert runs["stamps"] > 2000
    if ctx[0] is not None and ctx[1] is not BERLIN and ctx[3] is not ST_JOHNS:
        assert runs["full"] < runs["read"] / 2  # the memo answered most of them
    else:
        assert runs["full"] == runs["read"]


@pytest.mark.parametrize("ctx", CONTEXTS[:2], ids=["utc", "cet"])
def test_memo_gives_the_full_reading_on_sample_lines(monkeypatch: pytest.MonkeyPatch, ctx: tuple[Any, ...]) -> None:
    lines = _lines()
    diff, runs = _differences(monkeypatch, lines, ctx)
    assert diff == []
    assert runs["stamps"] > 1000


def test_the_built_stamps_reach_every_shape_and_each_reason_to_read_in_full() -> None:
    lines = _built_lines()
    shapes = Counter(s.shape for ln in lines for s in timestamps.find_timestamps(
        ln, reference=CONTEXTS[0][0], default=ST_JOHNS))
    assert {"iso", "clf", "rfc2822", "monthfirst", "us", "eu", "snort", "prose", "prosemon"} <= set(shapes)
    assert min(shapes.values()) >= 20
    joined = "\n".join(lines)
    for text in ("Feb 29 ", "2010-11-07 00:", "2026-03-29 02:", ":60", ":61", "\u0663", ".123456", "heure de Paris"):
        assert text in joined


def _broken(monkeypatch: pytest.MonkeyPatch, ctx: tuple[Any, ...]) -> list[str]:
    return _differences(monkeypatch, _built_lines(), ctx)[0]


def test_a_memo_for_zoneinfo_zones_would_be_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    """St John's fell back at 00:01: "00:00:30" and "00:05:30" on 2010-11-07 are an hour apart in offset."""
    monkeypatch.setattr(stampread, "_FIXED", (type(None), timezone, ZoneInfo))
    assert _broken(monkeypatch, CONTEXTS[9])


def test_a_memo_that_kept_the_year_of_the_limits_hour_would_be_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stampread, "_limit_hour", lambda ref: (0, 0, 0))
    assert _broken(monkeypatch, CONTEXTS[4])
    assert _broken(monkeypatch, CONTEXTS[5])


def test_a_memo_that_dropped_the_minutes_would_be_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stampread, "_MINUTES", (timedelta(0),) * 60)
    assert _broken(monkeypatch, CONTEXTS[0])


def test_the_memo_is_per_context_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stampread, "_READS_MAX", 5)
    ref = datetime(2026, 11, 25, 12, tzinfo=UTC)
    for h in range(12):
        timestamps.find_timestamps(f"Nov 22 {h:02d}:14:07 host sshd[1]: x", reference=ref)
    assert 1 <= len(stampread._CTX[6]) <= 5
    timestamps.find_timestamps("Nov 22 03:14:07 host", reference=ref + timedelta(0))  # equal, but not the same
    assert stampread._CTX[0] is not ref and len(stampread._CTX[6]) == 1


def test_a_plans_spans_read_from_the_memo_where_the_digits_cannot_move_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """One plan for lines of the same shape: a monthfirst year after the time is 19xx or 20xx or not part of
    the stamp (matched each time); a fraction, no seconds, a leap second: matched and read in full."""
    ref = datetime(2026, 11, 25, 12, tzinfo=UTC)
    lines = [f"Nov 22 03:{m}:{s}{tail} host" for tail in (" 2026", " 2150", " 1999", " 3026", ".123", "")
             for m, s in (("14", "07"), ("14", "08"), ("59", "60"), ("15", "07"))]
    lines += ["Nov 22 03:14 2026 host", "Nov 22 03:15 2150 host"]
    diff, runs = _differences(monkeypatch, lines * 2, (ref, None, None, None, None))
    assert diff == [] and runs["full"] < runs["read"]
    found = timestamps.find_timestamps("Nov 22 03:14:09 2150 host", reference=ref)
    assert [(s.end, s.time.year) for s in found] == [(15, 2026)]
