"""Run a pipeline over a reader: one message (procmail) or a batch (cron), on N cores.

One bad message never stops a batch: it is quarantined with its reason and the
run goes on. Output order follows reader order whatever ``jobs`` is, and only a
bounded window of messages is in flight, so memory stays flat on any archive.
"""

from __future__ import annotations

import _signal as signal  # type: ignore[import-not-found]  # not signal.py: its enums cost start-up ~2 ms
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .config import Config
from .errors import BROKEN, EX_DATAERR, EX_OK, EX_TEMPFAIL, MessageError, TransientError, internal_error
from .readers.base import Item, Reader

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import IO, Any, Callable

    from .model import Report

OK, QUARANTINED, TRANSIENT = "ok", "quarantined", "transient"


@dataclass
class Outcome:
    """What became of one message."""

    origin: str
    status: str
    output: str = ""
    reason: str = ""
    valid: bool = False
    incidents: int = 0
    #: The process that made this outcome should not take another message (it ran out of its
    #: budget: what it holds may be half-built); a batch worker is replaced.
    retire: bool = False
    #: The log line of the message (abuso.logs.describe), when the log wants one.
    log: str = ""


class OutputClosed(Exception):
    """The reader of our output went away (``abuso run … | head``): stop, as a pipeline expects."""


class _Timeout(BaseException):
    """BaseException so that no stage's ``except Exception`` can swallow it."""


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout()


def process_item(pipeline: Any, render: Callable[[Any], str], data: bytes, origin: str, timeout: float,
                 max_memory: int = 0) -> Outcome:
    """Process one message within its budget; every failure becomes an Outcome, never an exception.

    ``timeout`` seconds (0: none) and ``max_memory`` bytes of growth (0: none) for the whole chain,
    rendering included; over either, the message is quarantined with that reason.
    """
    from .budget import memory_limit

    use_alarm = timeout > 0 and hasattr(signal, "SIGALRM")
    if use_alarm:
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with memory_limit(max_memory):
            report = pipeline.process(data, origin)
            output = render(report)
        line = _describe(report)
        if report.error:  # a parser crashed on this input: keep the message for a human
            return Outcome(origin, QUARANTINED, output, report.error, report.valid, len(report.incidents), log=line)
        return Outcome(origin, OK, output, "", report.valid, len(report.incidents), log=line)
    except _Timeout:
        return Outcome(origin, QUARANTINED, reason=over_timeout(timeout), retire=True)
    except TransientError as e:
        return Outcome(origin, TRANSIENT, reason=str(e))
    except MessageError as e:
        return Outcome(origin, QUARANTINED, reason=str(e))
    except RecursionError:
        return Outcome(origin, QUARANTINED, reason="message structure nested too deeply")
    except MemoryError:
        if max_memory > 0:
            return Outcome(origin, QUARANTINED, reason=over_memory(max_memory), retire=True)
        return Outcome(origin, TRANSIENT, reason="out of memory (and defaults.max_memory is 0: no limit)",
                       retire=True)
    except BROKEN as e:  # a broken install or a bug any message would hit (rendering): not this message's fault
        return Outcome(origin, TRANSIENT, reason=str(internal_error("abuso", e)))
    except Exception as e:  # a bug in abuso on this input: keep the message for a human
        return Outcome(origin, QUARANTINED, reason=f"internal error: {type(e).__name__}: {e}")
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)


def _describe(report: Report) -> str:
    from .logs import INFO, describe, enabled

    if not enabled(INFO):
        return ""

    return describe(report)


def over_timeout(timeout: float) -> str:
    return f"over timeout {timeout:g} s (defaults.timeout)"


def over_memory(max_memory: int) -> str:
    from .sizes import show_size

    return f"over max_memory {show_size(max_memory)} (defaults.max_memory)"


# --- worker processes ---------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _worker_init(config: Config, fmt: str, explain: bool, timeout: float, dry_run: bool = False) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C
    from .output import renderer

    _WORKER["pipeline"] = _build(config, explain, dry_run)
    _WORKER["render"] = renderer(fmt)
    _WORKER["timeout"] = timeout


def _build(config: Config, explain: bool, dry_run: bool = False) -> Any:
    """The pipeline for ``config``, with the explain processor appended when asked for.

    explain and dry runs run no processor with side effects (they say what it would do).
    """
    from dataclasses import replace

    from .config import Stage
    from .pipeline import Pipeline

    if explain and not any(s.name == "explain" for s in config.processors):
        config = replace(config, processors=[*config.processors, Stage("processors", "explain", {})])
    return Pipeline(config, preview=True) if explain or dry_run else Pipeline(config)


# --- the run -----------------------------------------------------------------


@dataclass
class Summary:
    """The counts of a run, and its exit status."""

    total: int = 0
    valid: int = 0
    incidents: int = 0
    quarantined: int = 0
    transient: int = 0
    #: Inputs that could not even be read (missing file, no permission): never silently 0.
    unreadable: int = 0
    #: The output's reader went away (``| head``): the run stopped early, which is not an error.
    output_closed: bool = False

    @property
    def status(self) -> int:
        if self.transient:
            return EX_TEMPFAIL
        if self.quarantined or self.unreadable:
            return EX_DATAERR
        return EX_OK


class Runner:
    """Drives ``reader`` through the pipeline; writes rendered reports to ``out``."""

    def __init__(self, config: Config, reader: Reader, *, fmt: str = "text", jobs: int = 1, explain: bool = False,
                 out: IO[str] | None = None, err: IO[str] | None = None, progress: bool | None = None,
                 dry_run: bool = False, quiet: bool = False, workers: bool | None = None) -> None:
        from .logs import Logger

        self.log = Logger("abuso.run")  # logging imported only when a record goes somewhere
        self.quiet = quiet
        self.config, self.reader, self.fmt, self.explain = config, reader, fmt, explain
        #: Change nothing: no processor with side effects, no quarantine file, no message marked done.
        self.dry_run = dry_run or explain
        self.jobs = max(1, jobs)
        #: Messages in worker processes (abuso/workers.py): the parent's hard timeout, a crash costs one
        #: message, memory given back. None: with -j N and --watch; the command line's batches always.
        self.workers = workers if workers is not None else (self.jobs > 1 or bool(getattr(reader, "watch", False)))
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.timeout = float(config.default("timeout"))
        self.max_memory = config.max_memory
        self.summary = Summary()
        self.progress = (self.err.isatty() and not quiet) if progress is None else progress
        self._started = time.monotonic()
        self._progress_shown = False
        #: Bytes of input in all, when the reader can tell (files and folders named on the command line).
        self._total_bytes = reader.total_bytes() if self.progress and hasattr(reader, "total_bytes") else None
        self._done_bytes = 0

    def run(self) -> Summary:
        try:
            if not self.workers:
                self._run_serial()
            else:
                self._run_parallel()
        except OutputClosed:
            self.summary.output_closed = True      # not an error: nothing unfinished was marked done
        finally:
            self.reader.close()
            for problem in getattr(self.reader, "errors", []):
                self._say(problem)
                self.summary.unreadable += 1
            self._clear_progress()
        return self.summary

    def _say(self, problem: str, origin: str = "", level: int = 40) -> None:
        """A problem, on stderr (over the progress line, which is redrawn later) and in the log."""
        self._clear_progress()
        self.err.write(f"abuso: {origin + ': ' if origin else ''}{problem}\n")
        self.log.log(level, "%s%s", origin + ": " if origin else "", problem, extra={"said": True})

    def _clear_progress(self) -> None:
        """The progress line is erased, never left above what follows (the summary, a problem)."""
        if self._progress_shown:
            self.err.write("\r\033[K")
            self.err.flush()
            self._progress_shown = False

    def _run_serial(self) -> None:
        from .output import renderer

        pipeline = _build(self.config, self.explain, self.dry_run)
        render = renderer(self.fmt)
        try:
            for item in self.reader:
                self._finish(item, process_item(pipeline, render, item.data, item.origin, self.timeout,
                                                self.max_memory))
        finally:
            pipeline.close()

    def _run_parallel(self) -> None:
        """Worker processes (``-j N``, and ``--watch``): each message under a budget that no stage escapes.

        ``--watch`` takes one message at a time (the reader waits for new mail between messages, and
        a message held back meanwhile would wait with it), in one worker replaced as it grows.
        """
        from .workers import CHUNK, Pool

        watching = bool(getattr(self.reader, "watch", False))
        # The parent's validated config, not its file again: workers see exactly what the parent loaded.
        initargs = (self.config, self.fmt, self.explain, self.timeout, self.dry_run)
        pool = Pool(1 if watching else self.jobs, initargs, timeout=self.timeout, max_memory=self.max_memory,
                    window=1 if watching else self.jobs * 4 * CHUNK, finish=self._finish,
                    problem=self._worker_problem)
        pool.run(self.reader)

    def _worker_problem(self, problem: str) -> None:
        self.summary.transient += 1
        self._say(problem)

    def _finish(self, item: Item, outcome: Outcome) -> None:
        s = self.summary
        s.total += 1
        if outcome.output:
            try:
                self.out.write(outcome.output)
            except BrokenPipeError:
                raise OutputClosed() from None
        if outcome.status == OK:
            s.valid += outcome.valid
            s.incidents += outcome.incidents
            if not self.dry_run:
                self.reader.done(item, None)
            if outcome.log:
                self.log.info("%s: %s", item.origin, outcome.log)
        elif outcome.status == QUARANTINED:
            self._quarantine(item, outcome)
        else:
            s.transient += 1
            self._say(f"temporary failure, will retry: {outcome.reason}", item.origin)
        self._done_bytes += len(item.data)
        if self.progress and s.total % 25 == 0:
            self.err.write("\r\033[K" + progress_line(s, time.monotonic() - self._started, self._done_bytes,
                                                      self._total_bytes))
            self.err.flush()
            self._progress_shown = True

    def _quarantine(self, item: Item, outcome: Outcome) -> None:
        from .quarantine import quarantine

        if self.dry_run:
            self.summary.quarantined += 1
            self._say(f"would be quarantined: {outcome.reason}", item.origin, 30)
            return
        try:
            path = quarantine(Path(self.config.quarantine), item.data, item.origin, outcome.reason)
        except OSError as e:  # cannot keep it safe here: do not mark it done, let it be retried
            self.summary.transient += 1
            self._say(f"{outcome.reason}; and cannot quarantine it: {e}", item.origin)
            return
        self.summary.quarantined += 1
        self._say(f"quarantined as {path.name}: {outcome.reason}"
                  + (f" ({outcome.log})" if outcome.log else ""), item.origin, 30)
        self.reader.done(item, outcome.reason)


def progress_line(s: Summary, elapsed: float, done_bytes: int, total_bytes: int | None) -> str:
    """"1,250 done, 1,201 valid, 3 quarantined, 410/s, 37%, ETA 0:00:05": the share and ETA by bytes, when
    the reader knows the total (mboxes hold many messages per file, so bytes, not files, measure the way)."""
    elapsed = max(elapsed, 1e-6)
    line = f"{s.total:,} done, {s.valid:,} valid, {s.quarantined:,} quarantined, {s.total / elapsed:,.0f}/s"
    if total_bytes and done_bytes:
        share = min(done_bytes / total_bytes, 1.0)
        left = int(elapsed * (1 - share) / share) if share > 0 else 0
        line += f", {share:.0%}, ETA {left // 3600}:{left % 3600 // 60:02d}:{left % 60:02d}"
    return line


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def execute(*, config_path: str | None, fmt: str = "text", explain: bool = False, jobs: int = 1,
            files_from: str | None = None, mark: bool = False, watch: bool = False, progress: bool | None = None,
            paths: tuple[str, ...] = (), dry_run: bool = False, verbose: int = 0, quiet: bool = False,
            log: str | None = None, log_level: str | None = None, stream: Any = None) -> int:
    """``abuso run`` without the command-line layer: returns the exit status.

    The procmail path calls this directly (see abuso.cli), without importing click. ``stream``: where the
    one message comes from instead of stdin (its ``read()`` gives it all).
    """
    from .config import load
    from .logs import setup

    setup(log, verbose, quiet, log_level)
    config = load(config_path)
    reader = _reader(config, paths, files_from, mark, watch, stream)
    if jobs <= 0:
        jobs = cpu_count()
    # A batch (files, a mailbox) runs in worker processes even with -j 1: the budget's hard side (a
    # message stuck in C code, a crash below Python) costs one message, never the batch. One piped
    # message runs here: its start-up is paid per message.
    summary = Runner(config, reader, fmt=fmt, jobs=jobs, explain=explain, progress=progress, dry_run=dry_run,
                     quiet=quiet, workers=reader.name != "stdin").run()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        summary.output_closed = True
    if summary.output_closed:           # nothing more can be written there, not even at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return summary.status
    if (summary.total > 1 or paths or files_from) and not quiet:
        sys.stderr.write(f"abuso: {summary.total} messages, {summary.valid} valid, {summary.incidents} incidents, "
                         f"{summary.quarantined} quarantined, {summary.transient} to retry\n")
    return summary.status


def _reader(config: Config, paths: tuple[str, ...], files_from: str | None, mark: bool, watch: bool,
            stream: Any = None) -> Reader:
    from . import registry
    from .errors import UsageError

    if paths or files_from:
        from .readers.paths import PathsReader

        return PathsReader({"paths": list(paths), "files_from": files_from, "mark": mark,
                            "max_bytes": config.defaults.get("max_bytes", 32 * 1024 * 1024)})
    if config.reader is not None:
        options = dict(config.reader.options)
        if watch:
            options["watch"] = True
        return registry.load("readers", config.reader.name)(options)
    if watch:
        raise UsageError("--watch needs a mailbox reader (reader: imap or pop3) in the config")
    from .readers.stdin import StdinReader

    return StdinReader({"stream": stream} if stream is not None else None)
