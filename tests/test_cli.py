"""The command line as procmail, cron and people use it: real processes, real exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CORPUS, ROOT

ABUSO = [sys.executable, str(ROOT / "bin" / "abuso")]
MSG = b"From: r@example.org\nSubject: x\nDate: Sat, 22 Nov 2026 10:00:00 +0100\nMessage-ID: <1@x>\n\nhello\n"


def run(args: list[str], stdin: bytes = b"", cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(ABUSO + args, input=stdin, capture_output=True, cwd=cwd, timeout=120)


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    p = tmp_path / "abuso.yaml"
    p.write_text(f"parsers: []\nquarantine: {tmp_path / 'q'}\ndefaults: {{max_bytes: 100000}}\n")
    return p


def test_piped_message_json(cfg):
    r = run(["run", "-c", str(cfg), "-f", "json"], MSG)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["file"] == "-" and d["message_id"] == "<1@x>" and d["valid"] is False
    assert set(d) >= {"file", "message_id", "valid", "incidents", "verdicts", "filtered"}


def test_bad_config_exits_78_with_file_line_key(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("filters:\n  ip: {within: [nonsense]}\n")
    r = run(["run", "-c", str(p)], MSG)
    assert r.returncode == 78
    err = r.stderr.decode()
    assert err == f"abuso: {p}:2: filters.ip.within[0]: must be a network such as 192.0.2.0/24, not 'nonsense'\n"


def test_oversized_piped_message_is_quarantined_exit_65(cfg, tmp_path):
    big = MSG + b"x" * 200000
    r = run(["run", "-c", str(cfg)], big)
    assert r.returncode == 65, r.stderr
    kept = list((tmp_path / "q").glob("*.eml"))
    assert len(kept) == 1 and kept[0].read_bytes() == big
    assert b"Traceback" not in r.stderr


def test_unwritable_quarantine_is_a_config_error_at_start_exit_78(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    p = tmp_path / "abuso.yaml"
    p.write_text(f"quarantine: {blocker / 'q'}\ndefaults: {{max_bytes: 10}}\n")
    r = run(["run", "-c", str(p)], MSG)
    assert r.returncode == 78
    assert r.stderr.decode() == (f"abuso: {p}:1: quarantine: {blocker / 'q'}: cannot be created: {blocker} "
                                 "is not a folder\n")


def test_hostile_inputs_give_no_traceback(cfg):
    import os

    for blob in (os.urandom(50000), b"\x00" * 1000, b"Content-Type: multipart/mixed; boundary=x\n\n--x\n" * 300):
        r = run(["run", "-c", str(cfg)], blob)
        assert r.returncode in (0, 65), r.stderr
        assert b"Traceback" not in r.stderr


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_batch_over_the_whole_corpus_never_crashes(cfg, jobs):
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    r = run(["run", "-c", str(cfg), "-f", "json", "-j", jobs, str(CORPUS)])
    lines = r.stdout.decode().splitlines()
    files = [json.loads(x)["file"] for x in lines]
    assert len(files) == len(list(CORPUS.rglob("*.eml")))
    assert files == sorted(files)  # stable reader order whatever -j is
    assert b"Traceback" not in r.stderr
    assert r.returncode == 65  # MAIL_ABUSE_FOUND.json is not a message: said, and counted


def test_check_config_prints_pipeline(cfg):
    r = run(["check-config", "-c", str(cfg)])
    assert r.returncode == 0 and b"config OK" in r.stdout and b"parsers:" in r.stdout


def test_explain_says_why_nothing_came_out(cfg):
    r = run(["explain", "-c", str(cfg)], MSG)
    out = r.stdout.decode()
    assert "NOT valid, 0 incidents" in out and "Parsers:" in out


# --- config mistakes are exit 78 at start, named; usage mistakes are 64 -------------------------------------


def test_check_config_reports_every_problem_one_line_each_exit_78(tmp_path):
    p = tmp_path / "abuso.yaml"
    p.write_text("parsers: [log, {arf: {zoen: CET}}]\n"
                 "defaults: {timeout: soon, max_bytes: -5}\n"
                 "processors:\n"
                 "  - table:\n"
                 "      file: missing.txt\n"
                 "  - radius: {detail: /nonexistent/radacct}\n")
    r = run(["check-config", "-c", str(p)])
    assert r.returncode == 78 and r.stdout == b""
    assert r.stderr.decode().splitlines() == [
        f"abuso: {p}:1: parsers.arf.zoen: unknown option (known: zone, date_fallback)",
        f"abuso: {p}:2: defaults.max_bytes: must be at least 1, not -5",
        f"abuso: {p}:2: defaults.timeout: must be a number, not 'soon'",
        f"abuso: {p}:5: processors.table.file: {tmp_path / 'missing.txt'}: no such file",
        f"abuso: {p}:6: processors.radius.detail: /nonexistent/radacct: no such file or folder",
    ]


@pytest.mark.parametrize("processor, line", [
    ("  - radius: {detail: /nonexistent/radacct}\n",
     "{p}:3: processors.radius.detail: /nonexistent/radacct: no such file or folder"),
    ("  - mailer:\n      from: abuse@example.net\n      bad: bad.txt\n",
     "{p}:5: processors.mailer.bad: {tmp}/bad.txt: no such file"),
    ("  - table: {file: networks.txt}\n", "{p}:3: processors.table.file: {tmp}/networks.txt: no such file"),
])
def test_a_missing_file_is_exit_78_for_every_piped_message_not_75(tmp_path, processor, line):
    p = tmp_path / "abuso.yaml"
    p.write_text(f"parsers: [log]\nprocessors:\n{processor}quarantine: {tmp_path / 'q'}\n")
    for _ in range(2):  # the second start reads the parsed-config cache: still checked
        r = run(["run", "-c", str(p)], MSG)
        assert r.returncode == 78
        assert r.stderr.decode() == "abuso: " + line.format(p=p, tmp=tmp_path) + "\n"
    assert not (tmp_path / "q").exists()
