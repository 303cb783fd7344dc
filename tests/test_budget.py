"""The hard budget of a message (issue 13): defaults.max_memory and defaults.timeout, in-process, in batch
workers and piped; workers replaced when they hit it or grow; workers gone when their parent is killed.

Test-only parsers below do what a hostile message makes a stage do: allocate, hang in code that no
signal interrupts, report their pid. They are registered as built-ins (in this process, or in a child
``python -c`` that imports this module).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from abuso import registry
from abuso.config import load
from abuso.errors import EX_DATAERR, EX_OK
from abuso.model import Verdict
from abuso.parsers.base import Parser
from abuso.readers.base import Item, Reader
from abuso.runner import QUARANTINED, Runner, process_item

from .conftest import ROOT, wait_until


class Hog(Parser):
    """Allocates 256 MB for a message whose subject says ``hog``; says its pid for every other one."""

    name = "hog"
    OPTIONS = ()

    def parse(self, message):  # noqa: ANN001, ANN201
        if "hog" in (message.subject or ""):
            block = bytearray(256 << 20)
            return Verdict(self.name, False, f"held {len(block)}")
        return Verdict(self.name, True, f"pid {os.getpid()}")


class Stuck(Parser):
    """For a subject saying ``stuck``: sleeps with SIGALRM blocked (as C code that never returns would)."""

    name = "stuck"
    OPTIONS = ()

    def parse(self, message):  # noqa: ANN001, ANN201
        if "stuck" in (message.subject or ""):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            if os.environ.get("ABUSO_TEST_STUCK"):  # say where we are stuck
                Path(os.environ["ABUSO_TEST_STUCK"], str(os.getpid())).touch()
            time.sleep(3600)
        return Verdict(self.name, True, f"pid {os.getpid()}")


class Crash(Parser):
    """For a subject saying ``crash``: the worker dies at once, as in a crash below Python."""

    name = "crash"
    OPTIONS = ()

    def parse(self, message):  # noqa: ANN001, ANN201
        if "crash" in (message.subject or ""):
            os._exit(70)
        return Verdict(self.name, False, "")


@pytest.fixture
def stages(monkeypatch):
    monkeypatch.setitem(registry.BUILTINS["parsers"], "hog", "tests.test_budget:Hog")
    monkeypatch.setitem(registry.BUILTINS["parsers"], "stuck", "tests.test_budget:Stuck")
    monkeypatch.setitem(registry.BUILTINS["parsers"], "crash", "tests.test_budget:Crash")


class ListReader(Reader):
    def __init__(self, items):
        super().__init__({})
        self.items, self.outcomes = items, []

    def __iter__(self):
        yield from self.items

    def done(self, item, error=None):
        self.outcomes.append((item.origin, error))


def message(n: int, subject: str = "report") -> Item:
    return Item(f"From: r@example.org\nSubject: {subject} {n}\nMessage-ID: <{n}@example.org>\n\nhello\n".encode(),
                f"m{n}")


def run(config, items, **kw):
    out, err = io.StringIO(), io.StringIO()
    reader = ListReader(items)
    summary = Runner(config, reader, out=out, err=err, progress=False, fmt="json", **kw).run()
    return summary, reader, [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def pids(reports) -> set[str]:
    return {r["verdicts"][name].split()[1] for r in reports for name in ("hog", "stuck") if name in r["verdicts"]}


def test_max_memory_is_a_size_with_a_default():
    assert load({}).max_memory == 1 << 30
    assert load({"defaults": {"max_memory": "512M"}}).max_memory == 512 << 20
    assert load({"defaults": {"max_memory": "1.5 GB"}}).max_memory == 3 << 29
    assert load({"defaults": {"max_memory": 0}}).max_memory == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS with /proc/self/statm")
def test_in_process_message_over_max_memory_is_quarantined_and_the_limit_lifted(tmp_path, stages):
    import resource

    before = resource.getrlimit(resource.RLIMIT_AS)
    config = load({"parsers": ["hog"], "quarantine": str(tmp_path / "q"), "defaults": {"max_memory": "64M"}})
    summary, reader, reports, err = run(config, [message(1), message(2, "hog"), message(3)])
    assert summary.status == EX_DATAERR and summary.quarantined == 1 and summary.total == 3
    assert reader.outcomes == [("m1", None), ("m2", "over max_memory 64 MB (defaults.max_memory)"), ("m3", None)]
    assert [r["file"] for r in reports] == ["m1", "m3"]
    (reason,) = (tmp_path / "q").glob("*.reason")
    assert "reason: over max_memory 64 MB" in reason.read_text()
    assert resource.getrlimit(resource.RLIMIT_AS) == before  # the caller is left as it was
    # Without the budget the same message is analysed (the 256 MB are there to take).
    summary, _, _, _ = run(load({"parsers": ["hog"], "quarantine": str(tmp_path / "q"),
                                 "defaults": {"max_memory": 0}}), [message(2, "hog")])
    assert summary.status == EX_OK


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS with /proc/self/statm")
def test_worker_over_max_memory_is_replaced_and_the_batch_goes_on(tmp_path, stages):
    config = load({"parsers": ["hog"], "quarantine": str(tmp_path / "q"), "defaults": {"max_memory": "64M"}})
    items = [message(n, "hog" if n == 3 else "report") for n in range(24)]
    summary, reader, reports, err = run(config, items, jobs=2)
    assert summary.status == EX_DATAERR and summary.quarantined == 1 and summary.total == 24, err
    assert [o for o in reader.outcomes if o[1]] == [("m3", "over max_memory 64 MB (defaults.max_memory)")]
    assert [r["file"] for r in reports] == [f"m{n}" for n in range(24) if n != 3]  # reader order kept
    assert len(pids(reports)) >= 3  # the worker that hit the limit took no more messages: a third one did


def test_message_stuck_where_no_signal_reaches_is_killed_with_its_worker(tmp_path, stages, monkeypatch):
    """SIGALRM cannot stop it (blocked, as in C code that never returns): the parent kills the worker."""
    from abuso import workers

    monkeypatch.setattr(workers, "HARD_GRACE", 0.5)
    config = load({"parsers": ["stuck"], "quarantine": str(tmp_path / "q"), "defaults": {"timeout": 0.5}})
    items = [message(n, "stuck" if n == 2 else "report") for n in range(12)]
    summary, reader, reports, err = run(config, items, jobs=2)
    assert summary.status == EX_DATAERR and summary.quarantined == 1 and summary.total == 12, err
    assert [o for o in reader.outcomes if o[1]] == [("m2", "over timeout 0.5 s (defaults.timeout)")]
    assert [r["file"] for r in reports] == [f"m{n}" for n in range(12) if n != 2]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS with /proc/self/statm")
def test_every_message_once_whatever_its_workers_go_through(tmp_path, stages, monkeypatch, rnd):
    """Crashes, hangs, memory hogs and recycling in one batch: each message is output or quarantined
    exactly once, in reader order, with the reason of what happened to it."""
    from abuso import workers

    monkeypatch.setattr(workers, "HARD_GRACE", 0.3)
    monkeypatch.setattr(workers, "MAX_MESSAGES", 5)
    config = load({"parsers": ["crash", "stuck", "hog"], "quarantine": str(tmp_path / "q"),
                   "defaults": {"timeout": 0.3, "max_memory": "64M"}})
    kinds = ["crash"] * 3 + ["stuck"] * 2 + ["hog"] * 3 + ["report"] * 52
    rnd.shuffle(kinds)
    items = [message(n, kind) for n, kind in enumerate(kinds)]
    summary, reader, reports, err = run(config, items, jobs=2)
    why = {"crash": workers.DIED, "stuck": "over timeout 0.3 s (defaults.timeout)",
           "hog": "over max_memory 64 MB (defaults.max_memory)", "report": None}
    assert reader.outcomes == [(f"m{n}", why[kind]) for n, kind in enumerate(kinds)], err
    assert [r["file"] for r in reports] == [f"m{n}" for n, kind in enumerate(kinds) if kind == "report"]
    assert summary.quarantined == 8 and summary.transient == 0 and summary.status == EX_DATAERR
    assert len(list((tmp_path / "q").glob("*.eml"))) == 8


def test_a_worker_that_cannot_start_quarantines_nothing(tmp_path, monkeypatch):
    """Building the pipeline fails in the workers (a file gone, a broken install): not the messages' fault.
    Nothing is quarantined or marked done; the run says why once and exits 75 (retry)."""
    from abuso.errors import EX_TEMPFAIL
    from abuso.pipeline import Pipeline

    main, original = os.getpid(), Pipeline.__init__

    def init(self, *args, **kw):
        if os.getpid() != main:
            raise OSError("table.csv: gone")
        original(self, *args, **kw)

    monkeypatch.setattr(Pipeline, "__init__", init)  # fork: the workers inherit it
    config = load({"parsers": [], "quarantine": str(tmp_path / "q")})
    summary, reader, reports, err = run(config, [message(n) for n in range(5)], jobs=2)
    assert summary.status == EX_TEMPFAIL and summary.quarantined == 0 and reader.outcomes == [] and not reports
    assert err.count("abuso: worker processes cannot start: OSError: table.csv: gone\n") == 1, err  # then per message
    assert not (tmp_path / "q").exists()


def test_workers_are_replaced_as_they_grow(tmp_path, stages, monkeypatch):
    """A worker whose resident memory grew past its bound takes no more messages: memory goes back."""
    from abuso import workers

    recycle_bytes = workers.recycle_bytes
    assert recycle_bytes(1 << 30) == 256 << 20 and recycle_bytes(0) == workers.RECYCLE_BYTES
    monkeypatch.setattr(workers, "recycle_bytes", lambda max_memory: -1)  # any size is too big
    config = load({"parsers": ["hog"], "quarantine": str(tmp_path / "q")})
    summary, reader, reports, err = run(config, [message(n) for n in range(6)], jobs=2)
    assert summary.status == EX_OK and [r["file"] for r in reports] == [f"m{n}" for n in range(6)], err
    assert len(pids(reports)) == 6  # one worker per message

    monkeypatch.setattr(workers, "recycle_bytes", recycle_bytes)  # as it is: these messages are far below it
    monkeypatch.setattr(workers, "MAX_MESSAGES", 2)
    config = load({"parsers": ["hog"], "quarantine": str(tmp_path / "q")})
    summary, reader, reports, err = run(config, [message(n) for n in range(8)], jobs=2)
    handled = Counter(r["verdicts"]["hog"] for r in reports)  # "pid N" -> messages it handled
    assert summary.status == EX_OK and max(handled.values()) == 2 and len(handled) >= 4, handled


def test_watch_runs_its_messages_one_at_a_time_in_a_recycled_worker(tmp_path, stages, monkeypatch):
    """--watch (a reader that waits for new mail between messages): messages are never held back behind
    that wait, and the long-running service gives memory back like a batch."""
    from abuso import workers

    monkeypatch.setattr(workers, "MAX_MESSAGES", 2)
    config = load({"parsers": ["hog"], "quarantine": str(tmp_path / "q")})
    finished: list[str] = []

    class Watching(ListReader):
        watch = True

        def __iter__(self):
            for item in self.items:
                yield item
                assert finished == [item.origin]  # done before the reader is asked (and waits) for more
                finished.clear()

        def done(self, item, error=None):
            super().done(item, error)
            finished.append(item.origin)

    out = io.StringIO()
    reader = Watching([message(n) for n in range(6)])
    summary = Runner(config, reader, out=out, err=io.StringIO(), progress=False, fmt="json", jobs=1).run()
    reports = [json.loads(line) for line in out.getvalue().splitlines()]
    assert summary.status == EX_OK and [r["file"] for r in reports] == [f"m{n}" for n in range(6)]
    assert len(pids(reports)) == 3 and str(os.getpid()) not in pids(reports)  # in workers, 2 messages each


def test_process_item_says_out_of_memory_without_a_budget_as_transient():
    from abuso.runner import TRANSIENT

    class Pipeline:
        def process(self, data, origin):
            raise MemoryError

    outcome = process_item(Pipeline(), str, b"x", "x", 0, 0)
    assert outcome.status == TRANSIENT and "max_memory is 0" in outcome.reason and outcome.retire
    outcome = process_item(Pipeline(), str, b"x", "x", 0, 100 << 20)
    assert outcome.status == QUARANTINED and outcome.reason == "over max_memory 100 MB (defaults.max_memory)"


# --- whole runs, in processes of their own -------------------------------------------------------

#: ``python -c`` prologue: the test parsers as built-ins, then abuso's own entry point.
_LAUNCH = ("import sys; sys.path.insert(0, {root!r}); from abuso import registry; "
           "registry.BUILTINS['parsers'].update(hog='tests.test_budget:Hog', stuck='tests.test_budget:Stuck', "
           "crash='tests.test_budget:Crash'); "
           "from abuso.cli import main; sys.argv[0] = 'abuso'; main()")


def abuso(*args: str, **kw) -> list[str]:
    return [sys.executable, "-c", _LAUNCH.format(root=str(ROOT)), *args]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS with /proc/self/statm")
def test_piped_message_over_max_memory_is_quarantined_with_exit_65(tmp_path):
    config = tmp_path / "abuso.yaml"
    config.write_text(f"parsers: [hog]\nquarantine: {tmp_path / 'q'}\ndefaults: {{max_memory: 32M}}\n")
    raw = message(1, "hog").data
    run = subprocess.run(abuso("run", "-c", str(config)), input=raw, capture_output=True, timeout=120)
    err = run.stderr.decode()
    assert run.returncode == EX_DATAERR and "Traceback" not in err, err
    assert "quarantined as" in err and "over max_memory 32 MB" in err
    (kept,) = (tmp_path / "q").glob("*.eml")
    assert kept.read_bytes() == raw


def test_command_line_batch_runs_in_a_worker_even_with_one_job(tmp_path):
    """A crash below Python costs `abuso run FILES` (-j 1) one message, not the batch."""
    config = tmp_path / "abuso.yaml"
    config.write_text(f"parsers: [crash, hog]\nquarantine: {tmp_path / 'q'}\n")
    files = []
    for n in range(4):
        files.append(tmp_path / f"m{n}.eml")
        files[-1].write_bytes(message(n, "crash" if n == 1 else "report").data)
    run = subprocess.run(abuso("run", "-c", str(config), "-f", "json", *map(str, files)), capture_output=True,
                         timeout=120)
    err = run.stderr.decode()
    assert run.returncode == EX_DATAERR and "Traceback" not in err, err
    assert f"{files[1]}: quarantined as" in err and "the worker process died while processing it" in err
    reports = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["file"] for r in reports] == [str(files[n]) for n in (0, 2, 3)]
    assert "abuso: 4 messages," in err and "1 quarantined" in err


def _children(pid: int) -> set[int]:
    """The live child processes of ``pid``, from /proc."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent (init here) has not reaped it yet


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads the process tree from /proc")
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
@pytest.mark.parametrize("busy", [True, False], ids=["busy", "idle"])
def test_workers_exit_when_their_parent_is_killed(tmp_path, how, busy):
    """Busy workers (on a message that takes an hour, where no pipe is read) and idle ones (the reader
    waits on a FIFO nobody writes)."""
    config = tmp_path / "abuso.yaml"
    config.write_text(f"parsers: [stuck]\nquarantine: {tmp_path / 'q'}\ndefaults: {{timeout: 0}}\n")
    files = []
    for n in range(2):
        files.append(tmp_path / f"m{n}.eml")
        files[-1].write_bytes(message(n, "stuck" if busy else "report").data)
    fifo = tmp_path / "more.eml"
    os.mkfifo(fifo)
    marks = tmp_path / "stuck"
    marks.mkdir()
    parent = subprocess.Popen(abuso("run", "-c", str(config), "-j", "2", *map(str, files), str(fifo)),
                              env={**os.environ, "ABUSO_TEST_STUCK": str(marks)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    try:
        if busy:
            wait_until(lambda: len(list(marks.iterdir())) == 2, what="both workers stuck on their message")
        wait_until(lambda: len(_children(parent.pid)) >= (2 if busy else 1), what="the worker processes")
        workers = _children(parent.pid)
        os.kill(parent.pid, how)
        assert parent.wait(30) == -how
        wait_until(lambda: not any(_alive(p) for p in workers), what="the workers to exit")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for p in workers:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
