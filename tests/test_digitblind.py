"""Patterns blind to digits (issue 8); the timestamp plans that rest on them: test_stamp_plans."""

from __future__ import annotations

import re

import pytest

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
