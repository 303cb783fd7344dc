"""The command line as procmail, cron and people use it: real processes, real exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CORPUS, NO_CORPUS, ROOT

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
        pytest.skip(NO_CORPUS)
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
        f"abuso: {p}:1: parsers.arf.zoen: unknown option (known: trusted, zone, date_fallback)",
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


def test_files_from_a_missing_file_is_a_usage_error_exit_64(cfg, tmp_path):
    r = run(["run", "-c", str(cfg), "--files-from", str(tmp_path / "nonexistent")])
    assert r.returncode == 64
    assert r.stderr.decode() == f"abuso: --files-from {tmp_path / 'nonexistent'}: No such file or directory\n"
    r = run(["run", "-c", str(cfg), "--files-from", str(tmp_path)])
    assert r.returncode == 64 and r.stderr.decode() == f"abuso: --files-from {tmp_path}: Is a directory\n"


def test_usage_errors_are_one_line_exit_64(cfg):
    r = run(["run", "-c", str(cfg), "--bogus"])
    assert r.returncode == 64
    err = r.stderr.decode()
    assert err.startswith("abuso: No such option '--bogus'.") and err.endswith(" (see 'abuso run --help')\n")
    assert err.count("\n") == 1


# --- no side effects unless asked ---------------------------------------------------------------------------


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def side_effect_config(tmp_path: Path) -> Path:
    """A config whose processors would write in tmp_path: a store, a mailer (state, dry_run outbox), a
    radius index; HOME and the cache point into tmp_path too."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "networks.txt").write_text("192.0.2.0/24 id=C1\n203.0.113.0/24 id=C2\n")
    (tmp_path / "etc" / "good.txt").write_text("Thanks for ${subject}\n${incidents}\n")
    (tmp_path / "etc" / "bad.txt").write_text("Nothing in ${subject}\n")
    (tmp_path / "radacct").mkdir()
    p = tmp_path / "etc" / "abuso.yaml"
    p.write_text("parsers: [log]\n"
                 "quarantine: ../var/quarantine\n"
                 "processors:\n"
                 "  - store: {path: ../var/store}\n"
                 "  - table: {file: networks.txt}\n"
                 "  - radius: {detail: ../radacct, index: ../var/radius.idx}\n"
                 "  - mailer: {from: abuse@example.net, good: good.txt, bad: bad.txt, smtp: '127.0.0.1:9',\n"
                 "             state: ../var/mailer.sqlite, dry_run: ../var/outbox}\n")
    return p


def env_in(tmp_path: Path) -> dict[str, str]:
    import os

    return {**os.environ, "HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "cache")}


def test_check_config_creates_nothing(tmp_path):
    p = side_effect_config(tmp_path)
    before = tree(tmp_path)
    r = subprocess.run(ABUSO + ["check-config", "-c", str(p)], capture_output=True, env=env_in(tmp_path), timeout=120)
    assert r.returncode == 0, r.stderr
    assert b"config OK" in r.stdout
    assert tree(tmp_path) == before  # no store folder, no index.sqlite, no state, no cache


def test_explain_runs_no_processor_with_side_effects(tmp_path):
    p = side_effect_config(tmp_path)
    before = tree(tmp_path)
    msg = (ROOT / "samples" / "log" / "sshd-auth.eml").read_bytes()
    r = subprocess.run(ABUSO + ["explain", "-c", str(p)], input=msg, capture_output=True, env=env_in(tmp_path),
                       timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert f"store: would store this report in {tmp_path / 'etc' / '..' / 'var' / 'store'}" in out
    assert "mailer: would answer security@example-hosting.cz (good response) unless answered within the period" \
        in out
    assert "table: {'matched': " in out and "radius: {'matched': 0" in out  # read-only look-ups still run
    # Nothing written: no store, no outbox, no mailer state. The radius look-up runs (read-only, as the
    # table's) and may build its index, a cache of the logs; the parsed-config cache is config.py's own:
    # both left out of the comparison.
    after = {k: v for k, v in tree(tmp_path).items() if not k.startswith(("var/radius.idx", "cache")) and k != "var"}
    assert after == before


def test_run_dry_run_changes_nothing_for_a_whole_batch(tmp_path):
    p = side_effect_config(tmp_path)
    p.write_text(p.read_text().replace("parsers: [log]\n", "parsers: [log]\ndefaults: {max_bytes: 1000}\n"))
    before = tree(tmp_path)
    folder = ROOT / "samples" / "log"
    r = subprocess.run(ABUSO + ["run", "--dry-run", "-c", str(p), "-f", "json", "-j", "2", str(folder)],
                       capture_output=True, env=env_in(tmp_path), timeout=300)
    lines = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert len(lines) >= 10
    assert all(d["store"].startswith("would store this report in ") for d in lines)
    # The mailer's note is structured in JSON: whom it would answer with what, or why not.
    assert all(set(d["mailer"]) in ({"would", "to"}, {"skipped", "rule"}) for d in lines), lines[0]["mailer"]
    big = len([f for f in folder.iterdir() if f.stat().st_size > 1000])
    assert big and r.stderr.decode().count(": would be quarantined: ") == big
    assert r.returncode == 65  # what the run would have said
    after = {k: v for k, v in tree(tmp_path).items() if not k.startswith(("var/radius.idx", "cache")) and k != "var"}
    assert after == before


def test_version_short_and_long() -> None:
    from abuso import __version__

    for flag in ("-V", "--version"):
        r = run([flag])
        assert r.returncode == 0
        assert r.stdout.decode().strip() == f"abuso {__version__}"
