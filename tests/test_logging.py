"""The run's log: one line per message, where the operator wants it, never forged by hostile mail."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from abuso.cli import piped_args

ABUSO = [sys.executable, "-m", "abuso"]
REPORT = (b"From: Alice <alice@reporter.example>\nTo: abuse@example.net\nSubject: ssh\n"
          b"Date: Sat, 28 Nov 2026 10:00:00 +0000\nMessage-ID: <a1@reporter.example>\n\n"
          b"Nov 28 09:59:01 h sshd[1]: Failed password for root from 192.0.2.7 port 4242 ssh2\n")


def config(tmp_path: Path, store: bool = True) -> Path:
    cfg = tmp_path / "abuso.yaml"
    cfg.write_text(f"parsers: [log]\nquarantine: {tmp_path / 'q'}\n"
                   + (f"processors:\n  - store: {{path: {tmp_path / 'store'}}}\n" if store else ""))
    return cfg


def run(args: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(ABUSO + args, input=stdin, capture_output=True, timeout=120)


def test_piped_mode_logs_one_line_per_message_to_a_file(tmp_path: Path) -> None:
    log = tmp_path / "abuso.log"
    r = run(["run", "-c", str(config(tmp_path)), "--log", str(log)], REPORT)
    assert r.returncode == 0, r.stderr
    (line,) = log.read_text().splitlines()
    assert " INFO -: message-id <a1@reporter.example>; 1 incident (192.0.2.7); store: digest=" in line
    assert "duplicate=False" in line


def test_the_fast_piped_path_takes_the_log_options() -> None:
    assert piped_args(["run", "-c", "x.yaml", "--log", "syslog", "-v"]) == {
        "config_path": "x.yaml", "log": "syslog", "verbose": 1}
    assert piped_args(["run", "-c", "x.yaml", "-q", "--log-level=error"]) == {
        "config_path": "x.yaml", "quiet": True, "log_level": "error"}
    assert piped_args(["run", "-c", "x.yaml", "--log", "a", "--log", "b"]) is None


def test_verbose_batch_logs_each_message_and_quarantine_is_said_once(tmp_path: Path) -> None:
    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "good.eml").write_bytes(REPORT)
    (folder / "huge.eml").write_bytes(REPORT + b"x" * 5000)
    cfg = config(tmp_path, store=False)
    cfg.write_text(cfg.read_text() + "defaults: {max_bytes: 4000}\n")
    r = run(["run", "-c", str(cfg), "-v", str(folder)])
    err = r.stderr.decode()
    assert r.returncode == 65
    assert f"abuso: {folder / 'good.eml'}: message-id <a1@reporter.example>; 1 incident (192.0.2.7)" in err
    assert err.count("huge.eml") == 1, err
    quiet = run(["run", "-c", str(cfg), "-q", str(folder)])
    assert quiet.returncode == 65
    assert b"messages," not in quiet.stderr                 # no summary line with -q


def test_hostile_message_id_cannot_forge_a_log_line(tmp_path: Path) -> None:
    log = tmp_path / "abuso.log"
    forged = REPORT.replace(b"Message-ID: <a1@reporter.example>",
                            b"Message-ID: =?utf-8?q?<x=0A2026-11-28_INFO_forged=0D@x>?=")
    r = run(["run", "-c", str(config(tmp_path, store=False)), "--log", str(log)], forged)
    assert r.returncode == 0, r.stderr
    assert len(log.read_text().splitlines()) == 1


def test_journald_lines_carry_a_priority(tmp_path: Path) -> None:
    r = run(["run", "-c", str(config(tmp_path, store=False)), "--log", "journald"], REPORT)
    assert r.stderr.decode().startswith("<6>-: message-id <a1@reporter.example>")


def test_a_log_file_that_cannot_be_opened_is_a_usage_error(tmp_path: Path) -> None:
    r = run(["run", "-c", str(config(tmp_path)), "--log", str(tmp_path / "no" / "such" / "dir.log")], REPORT)
    assert r.returncode == 64
    assert r.stderr.decode().count("\n") == 1 and "--log" in r.stderr.decode()


@pytest.mark.skipif(not hasattr(pty, "openpty"), reason="needs a pseudo-terminal")
def test_a_terminal_on_stdin_is_told_what_abuso_waits_for(tmp_path: Path) -> None:
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(ABUSO + ["run", "-c", str(config(tmp_path, store=False))], stdin=secondary,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(secondary)
    os.write(primary, b"\x04")          # Ctrl-D: an empty message
    _, err = proc.communicate(timeout=60)
    os.close(primary)
    assert b"reading one message from stdin" in err


def test_progress_line_is_cleared_before_the_summary(tmp_path: Path) -> None:
    folder = tmp_path / "mail"
    folder.mkdir()
    for i in range(60):
        (folder / f"{i}.eml").write_bytes(REPORT.replace(b"<a1@", f"<a{i}@".encode()))
    r = run(["run", "-c", str(config(tmp_path, store=False)), "--progress", "-f", "json", str(folder)])
    err = r.stderr.decode()
    assert "done," in err and "/s" in err
    progress, summary = err.rsplit("\r\x1b[K", 1)
    assert summary.startswith("abuso: 60 messages")       # the summary is not left behind a progress line


def test_describe_escapes_control_characters() -> None:
    from abuso.logs import describe
    from abuso.model import Report

    report = Report(raw=b"", origin="-", message_id="<x>\n2026-11-28 INFO forged\r", incidents=[])
    line = describe(report)
    assert "\n" not in line and "\r" not in line
    assert "<x>\\n2026-11-28 INFO forged\\r" in line


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_closed_pipe_ends_the_run_without_error(tmp_path: Path, jobs: str) -> None:
    """``abuso run … | head -1``: exit 0, nothing on stderr, no worker left behind."""
    folder = tmp_path / "mail"
    folder.mkdir()
    for i in range(300):
        (folder / f"{i:03}.eml").write_bytes(REPORT.replace(b"<a1@", f"<a{i}@".encode()))
    proc = subprocess.Popen(ABUSO + ["run", "-c", str(config(tmp_path, store=False)), "-j", jobs, str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()                      # what head does after its line
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0
    assert err == b""


def test_progress_line_gives_share_and_eta_when_the_total_is_known() -> None:
    from abuso.runner import Summary, progress_line

    s = Summary(total=250, valid=240, quarantined=3)
    assert progress_line(s, 10.0, 250_000, 1_000_000) == "250 done, 240 valid, 3 quarantined, 25/s, 25%, ETA 0:00:30"
    assert progress_line(s, 10.0, 250_000, None) == "250 done, 240 valid, 3 quarantined, 25/s"


def test_paths_reader_knows_the_bytes_it_will_read(tmp_path: Path) -> None:
    from abuso.readers.paths import PathsReader

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1.eml").write_bytes(b"x" * 100)
    (tmp_path / "2.eml").write_bytes(b"y" * 50)
    (tmp_path / ".hidden").write_bytes(b"z" * 1000)
    assert PathsReader({"paths": [str(tmp_path)]}).total_bytes() == 150
    assert PathsReader({"paths": [], "files_from": "-"}).total_bytes() is None
