"""Patterns blind to digits, and the memo of timestamp shapes that rests on it (issue 8)."""

from __future__ import annotations

import random
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from abuso import timestamps
from abuso.digitblind import digit_blind, zeroed


@pytest.mark.parametrize("pattern, blind", [
    (r"\d{1,2}:\d\d", True), (r"[0-9]+", True), (r"[^\W\d_]{3}", True), (r"\w+\s\S", True),
    (r"(?<![\d.])\d", True), (r"(?P<sep>[-/.])\d(?P=sep)", True), (r"(?i)nov|dec", True),
    (r"1\d{9}", False), (r"[0-5]\d", False), (r"(?:19|20)\d\d", False), (r"(\d)\1", False),
    (r"(?<!ab)c", False), (r"[^7]", False), (r"(?>\d+)", False),
])
def test_digit_blind(pattern: str, blind: bool) -> None:
    assert digit_blind(pattern) is blind


def test_a_blind_pattern_finds_the_same_spans_in_the_zeroed_text() -> None:
    rx = re.compile(r"(?<![\d.])(\d{1,3})\.(\d{1,3})(?![\d.])")
    text = "v1.2.3 at 10.20 and 7.9; 123.45"
    assert digit_blind(rx.pattern)
    zero = text.translate(str.maketrans("123456789", "000000000"))
    assert [m.span() for m in rx.finditer(text)] == [m.span() for m in rx.finditer(zero)]
    assert zeroed("a1b9") == b"a0b0" and zeroed("é1") == "é0"


def _lines() -> list[str]:
    root = Path(__file__).resolve().parent.parent
    lines = []
    for path in sorted((root / "samples").rglob("*.eml")):
        lines += [ln for ln in path.read_bytes().decode("utf-8", "replace").split("\n") if ":" in ln]
    return lines


def test_shape_memo_gives_the_stamps_of_a_plain_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every sample line with a colon, read with the memo warm (after lines of the same shape with
    other digits) and with no memo at all: the same stamps."""
    ref = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)
    lines = _lines()
    rnd = random.Random(8)
    # The same lines with their digits changed: same shapes of window, other numbers.
    lines += ["".join(rnd.choice("0123456789") if c.isdigit() else c for c in ln) for ln in lines]
    assert len(lines) > 1000
    timestamps._MATCHED.clear()
    warm = [timestamps.find_timestamps(ln, reference=ref) for ln in reversed(lines)][::-1]
    monkeypatch.setattr(timestamps, "_shape_key", lambda *a: None)
    plain = [timestamps.find_timestamps(ln, reference=ref) for ln in lines]
    assert warm == plain
