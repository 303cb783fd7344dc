"""Every sample and corpus message against the incidents an abuse desk reads in it.

Expected incidents live in tests/data/expected/*.yaml, one mapping per file:

    mail-abuse/log-10.eml:                 # a path under ../shared/corpus, or samples/…
      - {ip: 10.10.10.10, type: scanner, time: "2026-10-23T22:13:36+00:00"}
    samples/arf/not-spam.eml: []           # no incident at all

A run uses every built-in parser and no filter. An incident matches on (ip, type,
time); time may be null. The suite prints precision and recall over all files.
"""

from __future__ import annotations

from datetime import datetime
from ipaddress import ip_address
from pathlib import Path

import pytest
import yaml

from abuso.pipeline import Pipeline

from .conftest import CORPUS, ROOT, sample_path

EXPECTED_DIR = ROOT / "tests" / "data" / "expected"


def _load_expected() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in sorted(EXPECTED_DIR.glob("*.yaml")):
        data = yaml.safe_load(f.read_text()) or {}
        for name, incidents in data.items():
            assert name not in out, f"{name} expected twice ({f.name})"
            out[name] = incidents or []
    return out


EXPECTED = _load_expected()
_TOTALS = {"tp": 0, "fp": 0, "fn": 0}


def _key(ip: str, type_: str, time: str | None) -> tuple:
    t = datetime.fromisoformat(time) if time else None
    return (ip_address(ip), type_, t)


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline.from_config({})


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_expected_incidents(name: str, pipeline: Pipeline) -> None:
    path = sample_path(name)
    if not name.startswith("samples/") and not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    report = pipeline.analyse(Path(path).read_bytes(), name)
    got = {(i.ip, i.type, i.time) for i in report.incidents}
    want = {_key(str(e["ip"]), e["type"], e.get("time")) for e in EXPECTED[name]}
    _TOTALS["tp"] += len(got & want)
    _TOTALS["fp"] += len(got - want)
    _TOTALS["fn"] += len(want - got)
    verdicts = "; ".join(f"{k}: {v}" for k, v in report.verdicts.items())
    missing, unexpected = sorted(map(str, want - got)), sorted(map(str, got - want))
    assert got == want, f"missing {missing}, unexpected {unexpected} [{verdicts}]"


def test_zz_precision_recall_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """Prints the corpus figures (runs last by name); fails if nothing was compared."""
    tp, fp, fn = _TOTALS["tp"], _TOTALS["fp"], _TOTALS["fn"]
    if not EXPECTED:
        pytest.skip("no expected incidents written yet")
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    with capsys.disabled():
        print(f"\n[corpus] {len(EXPECTED)} messages: precision {precision:.3f}, recall {recall:.3f} "
              f"(tp {tp}, fp {fp}, fn {fn})")
