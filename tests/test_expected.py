"""Every sample and corpus message against the incidents an abuse desk reads in it.

Expected incidents live in tests/data/expected/*.yaml, one mapping per file:

    mail-abuse/log-10.eml:                 # a path under ../shared/corpus, or samples/…
      - {ip: 10.10.10.10, type: scanner, time: "2026-10-23T22:13:36+00:00"}
    samples/arf/not-spam.eml: []           # no incident at all

A run uses every built-in parser and no filter. An incident matches on (ip, type,
time); time may be null. The suite prints precision and recall over all files.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from ipaddress import ip_address
from pathlib import Path

import pytest
import yaml

from abuso.pipeline import Pipeline

from .conftest import CORPUS, NO_CORPUS, ROOT, sample_path

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
#: name -> (got, want) for every file compared in this session, whichever test compared it first.
_RESULTS: dict[str, tuple[set, set]] = {}


def _key(ip: str, type_: str, time: str | None) -> tuple:
    t = datetime.fromisoformat(time) if time else None
    return (ip_address(ip), type_, t)


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline.from_config({})


def _compare(name: str, pipeline: Pipeline) -> tuple[set, set, str]:
    """(got, want, verdicts) for one file; skips when it lives in a corpus that is not here."""
    if not name.startswith("samples/") and not CORPUS.is_dir():
        pytest.skip(NO_CORPUS)
    report = pipeline.analyse(Path(sample_path(name)).read_bytes(), name)
    got = {(i.ip, i.type, i.time) for i in report.incidents}
    want = {_key(str(e["ip"]), e["type"], e.get("time")) for e in EXPECTED[name]}
    _RESULTS[name] = (got, want)
    return got, want, "; ".join(f"{k}: {v}" for k, v in report.verdicts.items())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_expected_incidents(name: str, pipeline: Pipeline) -> None:
    got, want, verdicts = _compare(name, pipeline)
    missing, unexpected = sorted(map(str, want - got)), sorted(map(str, got - want))
    assert got == want, f"missing {missing}, unexpected {unexpected} [{verdicts}]"


def selected_names(items: list[pytest.Item]) -> list[str]:
    """The files whose comparison this session selected (after -k, -m, --lf, node ids)."""
    return [item.callspec.params["name"] for item in items
            if getattr(item, "function", None) is test_expected_incidents and hasattr(item, "callspec")]


def test_zz_precision_recall_summary(request: pytest.FixtureRequest, pipeline: Pipeline,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Precision and recall over the files this session selected (named zz: printed after them).

    It fails when nothing was compared: a summary of zero files (``-k zz``) proves nothing. Files
    selected but not compared yet (another order, another worker) are compared here, so the figures
    never depend on the order tests run in. Not selected at all when other test files run alone.
    """
    if not EXPECTED:
        pytest.fail(f"no expected incidents in {EXPECTED_DIR}")
    names = selected_names(request.session.items)
    if not names:
        pytest.fail("nothing compared: no test_expected_incidents case is selected with this summary "
                    "(select them too, e.g. -k 'expected')")
    tp = fp = fn = 0
    compared = 0
    for name in names:
        if name not in _RESULTS:
            if not name.startswith("samples/") and not CORPUS.is_dir():
                continue
            _compare(name, pipeline)
        got, want = _RESULTS[name]
        tp, fp, fn = tp + len(got & want), fp + len(got - want), fn + len(want - got)
        compared += 1
    if not compared:
        pytest.skip(f"every selected file is in the shared corpus, not found at {CORPUS}")
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    with capsys.disabled():
        print(f"\n[corpus] {compared} of {len(EXPECTED)} messages compared: precision {precision:.3f}, "
              f"recall {recall:.3f} (tp {tp}, fp {fp}, fn {fn})")
    assert tp + fp + fn > 0, f"{compared} files compared and no incident expected or found in any"


def _pytest(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)


def test_the_summary_fails_when_nothing_was_compared() -> None:
    """Alone (``-k zz``) the summary fails; run first beside one comparison it compares that file itself."""
    here = "tests/test_expected.py"
    alone = _pytest(here, "-k", "zz")
    assert alone.returncode == 1 and "nothing compared" in alone.stdout, alone.stdout[-2000:]
    sample = sorted(n for n in EXPECTED if n.startswith("samples/") and EXPECTED[n])[0]
    both = _pytest(f"{here}::test_zz_precision_recall_summary", f"{here}::test_expected_incidents[{sample}]")
    assert both.returncode == 0, both.stdout[-2000:]
    assert f"[corpus] 1 of {len(EXPECTED)} messages compared: precision 1.000, recall 1.000" in both.stdout
