"""A fixed-seed slice of bench/fuzz.py: every fuzzed input is output or quarantined, none twice, no traceback.

The big run (100,000 inputs) is ``python bench/fuzz.py``; its figures are in the issue notes."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import fuzz  # noqa: E402


def test_fuzzed_batch_loses_nothing(tmp_path: Path) -> None:
    result = fuzz.run(1500, seed=1313, jobs=2, work=tmp_path)
    assert result["inputs"] == 1500
    assert result["lost"] == 0, result
    assert result["duplicated"] == 0, result
    assert result["tracebacks"] == 0, result
    assert result["exit"] in (0, 65), result                 # 65: some were quarantined, as they should be
    assert result["quarantined"] > 0 and result["output"] > 0


def test_mutations_are_replayable() -> None:
    r1, r2 = fuzz.random.Random(7), fuzz.random.Random(7)
    data = b"From: a@b\nSubject: x\nContent-Type: text/plain; charset=utf-8\n\nhello\n"
    assert [fuzz.mutate(data, r1) for _ in range(20)] == [fuzz.mutate(data, r2) for _ in range(20)]
