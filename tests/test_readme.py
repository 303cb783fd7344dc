"""Every abuso command README.rst shows against the repository's own files works as written."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ("abuso", ".venv/bin/abuso")


def readme_commands() -> list[list[str]]:
    """abuso command lines from README's literal blocks that name only files of a fresh clone."""
    commands = []
    for line in (ROOT / "README.rst").read_text().splitlines():
        if not line.startswith("    "):           # literal blocks are indented; prose is not
            continue
        text = line.strip()
        if "&&" in text:                       # "python3 -m venv … && .venv/bin/abuso run …": the abuso part
            text = text.rsplit("&&", 1)[1].strip()
        words = shlex.split(text, comments=True) if text.startswith(PROGRAMS) else []
        if not words or words[0] not in PROGRAMS:
            continue
        if any(w.startswith(("~", "/", "$")) or re.fullmatch(r"[A-Z]+", w) for w in words[1:]):
            continue                           # a recipe for the user's own machine, or a placeholder
        commands.append(words)
    return commands


def test_readme_commands_work_as_written(tmp_path: Path) -> None:
    commands = readme_commands()
    shown = {" ".join(c[1:3]) for c in commands}
    # The test is only worth something if it found the commands a new user tries first.
    assert {"run -c", "query -c"} <= shown, shown
    for name in ("etc", "samples"):
        shutil.copytree(ROOT / name, tmp_path / name)
    for words in commands:
        r = subprocess.run([sys.executable, "-m", "abuso", *words[1:]], cwd=tmp_path, capture_output=True,
                           timeout=300)
        said = r.stderr.decode(errors="replace")
        assert r.returncode == 0, f"{' '.join(words)}: exit {r.returncode}: {said}"
        assert "Traceback" not in said
        if words[1] == "query":
            assert r.stdout.strip(), f"{' '.join(words)}: matched nothing: {said}"
