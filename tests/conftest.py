"""Shared fixtures: where the project, its samples and the shared corpus are; replayable randomness."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent

# The parsed-config cache must not fill the tester's ~/.cache with temporary configs.
if "XDG_CACHE_HOME" not in os.environ:
    import tempfile

    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="abuso-test-cache-")
SAMPLES = ROOT / "samples"
#: The public corpus lives beside the project (../shared/corpus); ABUSO_CORPUS overrides.
CORPUS = Path(os.environ.get("ABUSO_CORPUS", ROOT.parent / "shared" / "corpus"))
#: The one wording of every skip for want of the corpus.
NO_CORPUS = f"needs the shared corpus at {CORPUS} (set ABUSO_CORPUS to its folder)"


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(NO_CORPUS)
    return CORPUS


def wait_until(condition: Callable[[], object], seconds: float = 30.0, what: str = "the condition") -> None:
    """Poll ``condition`` until it holds; fail after ``seconds`` (generous: CI machines are shared and busy).

    Tests wait for readiness (a log line, a file, a state) this way, never with a fixed sleep."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {seconds:g}s waiting for {what}")
        time.sleep(0.02)


def sample_path(name: str) -> Path:
    """A path from an expected-incidents key: 'samples/…' or a corpus path ('mail-abuse/…')."""
    if name.startswith("samples/"):
        return ROOT / name
    return CORPUS / name


# --- randomness that can be replayed ------------------------------------------------------------
#
# Property tests (hypothesis) draw their examples from a fixed seed: a failure shows again on the
# next run and on any machine, shrunk the same way. ``--hypothesis-profile=explore`` draws new
# examples each run instead; a failure then prints the ``@reproduce_failure`` blob that replays it.
settings.register_profile("replayable", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "replayable"))

#: Seed of the garbage-input generators (the ``rnd`` fixture). A failure prints it;
#: ``ABUSO_SEED=N`` replays it, ``ABUSO_SEED=random`` draws a new one for this run.
_SEED_TEXT = os.environ.get("ABUSO_SEED", "20261128")
SEED = random.SystemRandom().randrange(2**32) if _SEED_TEXT == "random" else int(_SEED_TEXT)


def pytest_report_header() -> str:
    return f"garbage-input seed: ABUSO_SEED={SEED}"


@pytest.fixture
def rnd(request: pytest.FixtureRequest) -> random.Random:
    """A generator seeded from SEED and the test's id: each test its own stream, all replayable."""
    return random.Random(f"{SEED}:{request.node.nodeid}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    report = yield
    if report.failed and "rnd" in getattr(item, "fixturenames", ()):
        report.sections.append(("garbage-input seed", f"replay with ABUSO_SEED={SEED} pytest '{item.nodeid}'"))
    return report
