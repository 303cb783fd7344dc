"""Shared fixtures: where the project, its samples and the shared corpus are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The parsed-config cache must not fill the tester's ~/.cache with temporary configs.
if "XDG_CACHE_HOME" not in os.environ:
    import tempfile

    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="abuso-test-cache-")
SAMPLES = ROOT / "samples"
#: The public corpus lives beside the project (../shared/corpus); ABUSO_CORPUS overrides.
CORPUS = Path(os.environ.get("ABUSO_CORPUS", ROOT.parent / "shared" / "corpus"))


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS} (set ABUSO_CORPUS)")
    return CORPUS


def sample_path(name: str) -> Path:
    """A path from an expected-incidents key: 'samples/…' or a corpus path ('mail-abuse/…')."""
    if name.startswith("samples/"):
        return ROOT / name
    return CORPUS / name
