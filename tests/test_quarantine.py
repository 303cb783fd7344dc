"""The quarantine keeps each message once, by content, with every reason it was kept for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from abuso.quarantine import quarantine


def test_same_bytes_kept_once_with_every_reason(tmp_path: Path) -> None:
    q = tmp_path / "q"
    first = quarantine(q, b"junk", "a.eml", "not a mail message")
    again = quarantine(q, b"junk", "b.eml", "over timeout 30 s\nforged: line")      # same second, other reason
    assert first == again and first.read_bytes() == b"junk"
    lines = first.with_suffix(".reason").read_text().splitlines()
    assert len(lines) == 2
    assert "origin: a.eml\treason: not a mail message" in lines[0]
    assert "origin: b.eml\treason: over timeout 30 s forged: line" in lines[1]
    other = quarantine(q, b"other junk", "c.eml", "empty")
    assert other != first and sorted(p.suffix for p in q.iterdir()) == [".eml", ".eml", ".reason", ".reason"]


def test_batch_and_pipe_judge_non_mail_alike_and_a_rerun_keeps_it_once(tmp_path: Path) -> None:
    inputs = {"empty": b"", "from-only": b"From x@example.org Sat Nov 28 10:00:00 2026\n",
              "binary": bytes(range(256)) * 4, "text": b"just some words\nand more\n"}
    folder = tmp_path / "in"
    folder.mkdir()
    for name, data in inputs.items():
        (folder / name).write_bytes(data)
    cfg = tmp_path / "abuso.yaml"
    cfg.write_text(f"parsers: [log]\nquarantine: {tmp_path / 'q'}\n")
    abuso = [sys.executable, "-m", "abuso", "run", "-c", str(cfg)]
    for _ in range(2):                                          # a re-run quarantines nothing twice
        batch = subprocess.run([*abuso, str(folder)], capture_output=True, text=True, timeout=120)
        assert batch.returncode == 65
        assert batch.stderr.count("quarantined as") == 4, batch.stderr
    assert len(list((tmp_path / "q").glob("*.eml"))) == 4
    for name, data in inputs.items():
        piped = subprocess.run(abuso, input=data, capture_output=True, timeout=120)
        assert piped.returncode == 65, (name, piped.stderr)
        assert b"quarantined as" in piped.stderr
    assert len(list((tmp_path / "q").glob("*.eml"))) == 4      # the same four, each with more reasons
    reasons = sorted(len(p.read_text().splitlines()) for p in (tmp_path / "q").glob("*.reason"))
    assert reasons == [3, 3, 3, 3]
