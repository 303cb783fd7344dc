"""find_timestamps' plans (issue 8): a plan made from one line, replayed on another line of the same
shape once digits are zeroed, gives the stamps of a plain reading of that line."""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from abuso import timestamps
from abuso.digitblind import blind, zeroed

REF = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)

#: Every fast shape, dates valid and not, zones, prose in seven languages, epochs, several stamps a line.
SEEDS = [
    "2026-11-22T03:14:07.123+01:00 sshd[4121]: Failed password for root from 192.0.2.7 port 52113",
    "2026/11/23 08:15 192.0.2.1 blocked; 2026-13-23 08:15:00 retry; 2026.11.02 7:05:09 PM EST",
    '192.0.2.9 - - [24/Nov/2026:13:05:01 +0100] "GET /index.php?id=12 HTTP/1.1" 404 512',
    "Tue, 23 Oct 2003 18:13:36 -0400 (EST) from 198.51.100.4; 30 Oct 2003 22:10:04; 22-Nov-2026 03:14",
    "22Nov2026 3:14:07 and 31 Feb 2026 10:00:00 GMT+2 and 12 Foo 2026 10:00:00",
    "Nov 22 03:14:07 srv sshd[1]: Failed password for invalid user admin from 203.0.113.5",
    "Sun Nov 22 03:14:07 CET 2026 203.0.113.5; Nov 22 03:14:07 2150 host; Nov 2 3:14:07 1999 x",
    "Oct, 23 2003  6:13:36 PM -0400 and November 22nd, 2026 3:14:07 PM EST and Nov 31 03:14:07 1899",
    "Nov 22 03:14:07 2026 Nov 23 03:14:08 3026 Nov 24 03:14:09 20261 src=192.0.2.44",
    "11/22/2026 5:07:44 PM 192.0.2.3, 22/11/2026 17:07:44, 13/13/26 - 10:00, 1/2/03, 04:05",
    "22.11.2026 14:37:12 192.0.2.8 und 32.11.2026 14:37 und 1.2.26 1:02",
    "11/22-03:14:07.123456 [**] [1:2001219:20] ET SCAN [**] 192.0.2.6:4711 -> 10.0.0.1:22; 11/22/26-03:14:07",
    "time=1763781247 src=192.0.2.10 ts: 1763781247.123 epoch=2763781247 date=17637812 at 10:00",
    "1763781247 192.0.2.11 ssh 14:05",
    "von der IP-Adresse 198.51.100.31 wurde am 12.11.2026 um 23:14:05 Uhr (MEZ) ein Angriff durchgeführt.",
    "Bereits am 14. Juli 2026 um 09:30 Uhr (MESZ) hat 198.51.100.32 einen Portscan gefahren, alle ore 16.20",
    "We saw SSH brute force from 198.51.100.91 on 2026-11-12 between 10:00 and 10:30 UTC.",
    "desde la dirección 198.51.100.41 el 12/11/2026 a las 21:05:33 (GMT-3).",
    "L'adresse 198.51.100.51 a effectué un scan le 12/11/2026 à 14h37 (heure de Paris).",
    "l'indirizzo 198.51.100.61 ha inviato spam il 12/11/2026 alle ore 16:20:00 (ora italiana).",
    "Op 12-11-2026 om 08:15:10 (CET) heeft 198.51.100.71 een poortscan uitgevoerd, om 08.15 uur.",
    "O endereço 198.51.100.81 enviou spam em 12 de novembro de 2026 às 18:45:00 (horário de Brasília).",
    "at 14:05 UTC on 12 November 2026 from 192.0.2.12, um 23:14 Uhr (MEZ) am 12.11.2026",
    "on 12 Nov 2026 from 14:05 to 14:20 CET, November 12, 2026 at 3:14 PM, on 11/12/2026 at 10:00",
    "mac 00:1a:2b:3c:4d:5e port 80:443 v1.2.3 fe80::1:22 12:34:56:78 10.0.0.1:8080",
    "Überweisung 12.11.2026 um 23:14 — «réseau» 12 déc. 2026 à 14:37, 3 mars 2026 13:05 ١٢:٣٤",
]


def _variant(line: str, rnd: random.Random) -> str:
    """The line with other digits: the same shape (some or all of its digits changed) or runs of
    digits one longer or shorter."""
    if rnd.random() < 0.2:
        return re.sub(r"[0-9]+", lambda m: "".join(rnd.choice("0123456789") for _ in range(
            max(1, len(m[0]) + rnd.choice((-1, 0, 0, 1))))), line)
    p = rnd.choice((0.15, 0.3, 1.0))  # how many digits change: a few keep most dates valid
    digits = rnd.choice(("0123456789", "012", "0129"))
    return "".join(rnd.choice(digits) if c in "0123456789" and rnd.random() < p else c for c in line)


_CLOCK = re.compile(r"\d(?::|h)\d\d")


def _lines() -> list[str]:
    rnd = random.Random(8)
    root = Path(__file__).resolve().parent.parent
    base = list(SEEDS)
    for path in sorted((root / "samples").rglob("*.eml")):
        base += [ln for ln in path.read_bytes().decode("utf-8", "replace").split("\n") if ":" in ln]
    lines = []
    for line in base:
        lines.append(line)
        lines += [_variant(line, rnd) for _ in range(40 if line in SEEDS else 8 if _CLOCK.search(line) else 0)]
    rnd.shuffle(lines)
    return lines


#: The monthfirst regex as it was, with its 19xx/20xx year in the pattern (not digit-blind).
_OLD_MONTHFIRST = re.compile(dict(timestamps._SHAPES)["monthfirst"].pattern.replace(
    r"(?P<tail>\s+(?P<Y2>\d{4})(?!\d))?", r"(?:\s+(?P<Y2>(?:19|20)\d\d)(?!\d))?"), re.I)


def _plain_plan(line: str) -> Any:
    """A plan that searches every shape in its windows each time (the reading before plans), with the
    monthfirst regex as it was."""
    steps, ten = _plan_of(line, everything=True)
    assert all(live for _, _, live, _ in steps) and ten is (re.search(r"\d{10}", line) is not None)
    return tuple((shape, _OLD_MONTHFIRST if shape == "monthfirst" else rx, True, spans)
                 for shape, rx, _, spans in steps), ten


_PLAN = timestamps._plan


def _plan_of(line: str, everything: bool) -> Any:
    real = timestamps.blind
    try:
        timestamps.blind = (lambda rx: False) if everything else real  # type: ignore[assignment]
        return _PLAN(line)
    finally:
        timestamps.blind = real


def _read_all(lines: list[str], cold: bool) -> list[Any]:
    out = []
    for i, line in enumerate(lines):
        if cold:
            timestamps._PLANS.clear()
        kw: dict[str, Any] = {"reference": REF, "epoch": i % 3 == 0, "dayfirst": (None, True, False)[i % 3]}
        if i % 4 == 1:
            kw.update(stated="Europe/Berlin", header_offset=timedelta(hours=-5))
        out.append(timestamps.find_timestamps(line, **kw))
    return out


def test_the_shapes_that_plans_replay_are_digit_blind() -> None:
    assert all(blind(rx) for _, rx in timestamps._PROSE_SHAPES + timestamps._SHAPES)
    assert not blind(_OLD_MONTHFIRST)


@pytest.mark.parametrize("text, end", [
    ("Nov 22 03:14:07 2026 x", 20), ("Nov 22 03:14:07 1999", 20), ("Nov 22 03:14:07 2150 x", 15),
    ("Nov 22 03:14:07  1899", 15), ("Nov 22 03:14:07 20261", 15), ("Nov 22 03:14:07 CET 3026", 19),
])
def test_a_year_after_the_time_is_19xx_or_20xx(text: str, end: int) -> None:
    (found,) = timestamps.find_timestamps(text, reference=REF)
    assert (found.shape, found.end) == ("monthfirst", end)
    assert _OLD_MONTHFIRST.match(text).end() == end  # type: ignore[union-attr]


def test_plans_give_the_stamps_of_a_plain_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Corpus and generated lines, read with plans made from other lines of their shape (warm),
    with a plan made from the line itself (cold) and with every shape searched (plain): the same."""
    lines = _lines()
    assert len(lines) > 3000
    timestamps._PLANS.clear()
    warm = _read_all(lines, cold=False)
    assert len(timestamps._PLANS) < len(lines) // 2  # shapes repeat: most lines replayed a plan
    cold = _read_all(lines, cold=True)
    assert warm == cold
    monkeypatch.setattr(timestamps, "_plan", _plain_plan)
    plain = _read_all(lines, cold=True)
    assert warm == plain
    shapes = Counter(s.shape for found in warm for s in found)
    assert sum(shapes.values()) > 1500 and shapes["monthfirst"] > 200 and shapes["prose"] + shapes["prosemon"] > 100


def test_a_plan_is_kept_by_the_zeroed_line_and_the_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    timestamps._PLANS.clear()
    (a,) = timestamps.find_timestamps("2026-11-22 03:14:07 x", reference=REF)
    assert list(timestamps._PLANS) == [zeroed("2026-11-22 03:14:07 x")]
    assert timestamps.find_timestamps("2026-13-22 03:14:07 x", reference=REF) == []  # same plan, month 13
    (b,) = timestamps.find_timestamps("2025-01-02 13:04:05 x", reference=REF)
    assert (a.time.day, b.time.day, len(timestamps._PLANS)) == (22, 2, 1)
    monkeypatch.setattr(timestamps, "_PLANS_MAX", 3)
    for h in range(10, 20):
        timestamps.find_timestamps(f"{h}:00 on {'x' * h}")
    assert len(timestamps._PLANS) <= 3
    long = "x" * timestamps._PLAN_CHARS + " 2026-11-22 03:14:07"
    timestamps._PLANS.clear()
    assert timestamps.find_timestamps(long, reference=REF)[0].start == timestamps._PLAN_CHARS + 1
    assert not timestamps._PLANS
