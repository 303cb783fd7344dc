"""Batch worker processes: each message in a forked worker, under a budget the parent enforces.

The parent reads, keeps reader order and writes; ``jobs`` workers process. What no stage can
escape, whatever it does:

* **time**: each message has ``defaults.timeout`` (SIGALRM in the worker); a worker still on the
  same message ``HARD_GRACE`` seconds later (C code that never returns to the interpreter) is
  killed by the parent, and the message is quarantined "over timeout".
* **memory**: each message may grow its worker by ``defaults.max_memory`` (:mod:`abuso.budget`);
  past it the allocation fails, the message is quarantined "over max_memory" and the worker,
  whose state may be half-built, is replaced.
* **death**: a worker that dies (a crash in a C library, the OOM killer) costs the message it was
  on (quarantined, the batch goes on) and is replaced, ``MAX_RESTARTS`` times at most.
* **growth**: a worker is replaced once its resident memory grew by ``recycle_bytes`` since it
  started, or after ``MAX_MESSAGES`` messages, so a long batch or ``--watch`` gives memory back
  (Python and malloc keep freed memory for reuse, fragmented: it is only returned when the process ends).
* **orphans**: a worker dies with its parent (``PR_SET_PDEATHSIG`` on Linux; elsewhere a thread
  watching the parent's pid), and ends when its pipe to the parent closes.

Results come back one message at a time, so the parent always knows which message a worker is on.
With a processor that writes durably (the store), a worker holds those writes for the chunk of messages
it was given and commits them together (one disk wait, one index transaction: ``Processor.hold``): it
says "held" as each message is processed, and sends the results after the commit; a failed commit makes
them temporary failures, and a worker that dies in its commit sends its held messages round again.
"""

from __future__ import annotations

import collections
import os
import signal
import sys
import time
from typing import Any, Callable, Iterable

#: Seconds past ``defaults.timeout`` after which the parent kills a worker still on the same message.
HARD_GRACE = 5.0
#: Messages a worker handles before it is replaced (memory fragments: only a new process gives it back).
MAX_MESSAGES = 1000
#: Growth of a worker's resident memory after which it is replaced, without ``max_memory``; with it,
#: a quarter of ``max_memory`` (at least ``MIN_RECYCLE``).
RECYCLE_BYTES = 256 << 20
MIN_RECYCLE = 64 << 20
#: Messages and bytes sent to a worker at a time (one pipe round trip for several small messages).
CHUNK, CHUNK_BYTES = 8, 8 << 20
#: Bytes of messages the parent holds (read, in work, or done and waiting for their turn), per worker.
WINDOW_BYTES = 32 << 20
#: Seconds a new worker may take to build its pipeline (imports, processors opening files and connections).
START_TIMEOUT = 120.0
#: Unexpected worker deaths before the batch gives up on the rest (exit 75: retried later).
MAX_RESTARTS = 20
DIED = "the worker process died while processing it (crash or killed)"


def recycle_bytes(max_memory: int) -> int:
    return max(max_memory // 4, MIN_RECYCLE) if max_memory > 0 else RECYCLE_BYTES


# --- in the worker ------------------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """Be killed when the parent dies, however it dies (kill -9 included)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_PDEATHSIG = 1
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent:  # the parent died before prctl: nobody will signal us
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass
    import threading

    def watch() -> None:  # no prctl: poll the parent's pid (reparented once the parent is gone)
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="abuso-parent-watch", daemon=True).start()


def _worker_main(conn: Any, others: list[Any], parent: int, initargs: tuple, max_memory: int,
                 recycle: int) -> None:
    _die_with_parent(parent)
    for other in others:  # the parent's ends of every pipe: only then does a dead parent mean EOF here
        other.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C and SIGTERM, and stops us
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from .budget import memory
    from .runner import _WORKER, _worker_init, process_item

    try:
        _worker_init(*initargs)
    except BaseException as e:  # kept broad: whatever stops a worker from starting, the parent says it once
        from .errors import AbusoError

        try:
            conn.send(("failed", str(e) if isinstance(e, AbusoError) else f"{type(e).__name__}: {e}"))
        finally:
            os._exit(1)
    # What the worker has built (modules, config, pipeline, tables) lives as long as it does: out of the
    # collector's way, so the full collections a long batch makes do not walk it again and again.
    import gc

    gc.freeze()
    conn.send(("ready",))  # the clock of its first message starts now, not while it imports and builds
    pipeline, render, timeout = _WORKER["pipeline"], _WORKER["render"], _WORKER["timeout"]
    # Group commit: processors that write durably (the store) hold their writes for a chunk of messages
    # and commit them together; each message says "held" when processed (so the parent knows which one
    # the worker is on), and the results follow the commit, a failed commit making them temporary failures.
    grouped = pipeline.hold()
    start = memory()
    handled = 0
    try:
        while True:
            try:
                task = conn.recv()
            except (EOFError, OSError):  # the parent is gone
                return
            if task is None:
                break
            held: list[tuple[Any, bool]] = []
            retire = False
            for data, origin in task:
                before = pipeline.held if grouped else 0
                outcome = process_item(pipeline, render, data, origin, timeout, max_memory)
                handled += 1
                now = memory()
                grown = start is not None and now is not None and now[1] - start[1] > recycle
                retire = outcome.retire or grown or handled >= MAX_MESSAGES
                if grouped:
                    held.append((outcome, pipeline.held > before))
                    conn.send(("held",))
                else:
                    conn.send(("outcome", outcome, retire))
                if retire:
                    break
            if held:
                _commit(conn, pipeline, held, retire)
            if retire:
                return
    finally:
        problem = None
        try:
            pipeline.close()
        except Exception as e:  # kept broad: said by the parent, whatever a processor raised on close
            problem = str(e) if hasattr(e, "status") else f"{type(e).__name__}: {e}"
        try:
            conn.send(("closed", problem))
        except (OSError, ValueError):
            pass


def _commit(conn: Any, pipeline: Any, held: list[tuple[Any, bool]], retire: bool) -> None:
    """Commit the held writes, then send the held results in order; a message whose writes did not
    commit is a temporary failure (retried), whatever its analysis said."""
    from .runner import OK, TRANSIENT, Outcome

    problem = ""
    if any(mine for _, mine in held):
        try:
            pipeline.commit()
        except Exception as e:  # kept broad: nothing held is durable, whatever failed
            problem = str(e) or type(e).__name__
    for k, (outcome, mine) in enumerate(held):
        if problem and mine and outcome.status == OK:
            outcome = Outcome(outcome.origin, TRANSIENT, reason=problem)
        conn.send(("outcome", outcome, retire and k == len(held) - 1))


# --- in the parent ------------------------------------------------------------------------------


class _Entry:
    """One message in the window: its item, then its outcome."""

    __slots__ = ("item", "outcome")

    def __init__(self, item: Any) -> None:
        self.item: Any = item
        self.outcome: Any = None


class _Worker:
    def __init__(self, proc: Any, conn: Any) -> None:
        self.proc, self.conn = proc, conn
        self.inflight: collections.deque[_Entry] = collections.deque()
        #: Processed, their results waiting for the worker's group commit (see _commit).
        self.held: collections.deque[_Entry] = collections.deque()
        self.since = time.monotonic()  # when it started; once ready, when the message it is on started
        self.ready = False  # built its pipeline: takes messages, and its time limits run
        self.retiring = False  # said it ends after its last result
        self.killed = False  # killed by the parent: over the hard timeout
        self.stopping = False  # told to stop (end of the batch)


class Pool:
    """Runs ``items`` through ``jobs`` worker processes; hands each outcome to ``finish`` in reader order."""

    def __init__(self, jobs: int, initargs: tuple, *, timeout: float, max_memory: int, window: int,
                 finish: Callable[[Any, Any], None], problem: Callable[[str], None]) -> None:
        import multiprocessing

        self.ctx = multiprocessing.get_context("fork")
        self.jobs, self.initargs, self.timeout, self.max_memory = jobs, initargs, timeout, max_memory
        self.window, self.finish, self.problem = max(1, window), finish, problem
        self.workers: list[_Worker] = []
        self.deaths = 0
        self.give_up = "worker processes keep dying; stopped"
        self.started = 0
        self.pending: collections.deque[_Entry] = collections.deque()

    # -- the loop --

    def run(self, items: Iterable[Any]) -> None:
        from .runner import QUARANTINED, TRANSIENT, Outcome

        self._Outcome, self._QUARANTINED, self._TRANSIENT = Outcome, QUARANTINED, TRANSIENT
        order: collections.deque[_Entry] = collections.deque()
        held = 0  # bytes of the messages in ``order``
        it = iter(items)
        more = True
        try:
            while more or order:
                room = more and len(order) < self.window and (not order or held < self.jobs * WINDOW_BYTES)
                if room:  # one message at a time, handed out at once: a slow reader never holds back the rest
                    try:
                        item = next(it)
                    except StopIteration:
                        more = room = False
                    else:
                        entry = _Entry(item)
                        order.append(entry)
                        self.pending.append(entry)
                        held += len(item.data)
                self._assign()
                if order and order[0].outcome is None:
                    self._wait(block=not room)
                while order and order[0].outcome is not None:
                    entry = order.popleft()
                    held -= len(entry.item.data)
                    self.finish(entry.item, entry.outcome)
        finally:
            self.close()

    def _assign(self) -> None:
        """Give waiting messages to idle workers, starting workers as needed."""
        while self.pending:
            # A starting worker takes its first messages at once (a slow reader must not hold them back);
            # their clock starts when it says it is ready.
            idle = next((w for w in self.workers
                         if not w.inflight and not w.held and not w.retiring and not w.stopping), None)
            if idle is None:
                if len(self.workers) >= self.jobs:
                    return
                if self.deaths > MAX_RESTARTS:
                    while self.pending:
                        entry = self.pending.popleft()
                        entry.outcome = self._Outcome(entry.item.origin, self._TRANSIENT, reason=self.give_up)
                    return
                idle = self._start()
                if idle is None:
                    continue
            chunk: list[_Entry] = []
            size = 0
            while self.pending and len(chunk) < CHUNK and (not chunk or size < CHUNK_BYTES):
                entry = self.pending.popleft()
                chunk.append(entry)
                size += len(entry.item.data)
            idle.inflight.extend(chunk)
            if idle.ready:
                idle.since = time.monotonic()
            try:
                idle.conn.send([(e.item.data, e.item.origin) for e in chunk])
            except OSError:  # it died before taking them: they are not its fault
                self.pending.extendleft(reversed(idle.inflight))
                idle.inflight.clear()
                self._ended(idle)

    def _start(self) -> _Worker | None:
        from .budget import memory  # noqa: F401 - imported before the fork, not in every worker

        parent, child = self.ctx.Pipe()
        others = [parent] + [w.conn for w in self.workers]
        proc = self.ctx.Process(target=_worker_main, name=f"abuso-worker-{self.started + 1}", daemon=True,
                                args=(child, others, os.getpid(), self.initargs, self.max_memory,
                                      recycle_bytes(self.max_memory)))
        try:
            proc.start()
        except OSError as e:  # cannot fork (out of processes, memory)
            parent.close()
            child.close()
            self.deaths += 1
            self.problem(f"cannot start a worker process: {e}")
            return None
        child.close()
        self.started += 1
        worker = _Worker(proc, parent)
        self.workers.append(worker)
        return worker

    def serve(self, take: Callable[[], list[Any]], wake: Any, done: Callable[[Any, Any], None],
              stopping: Callable[[], bool]) -> None:
        """A live source (``abuso serve``): ``take()`` gives the messages that arrived, ``wake`` (a
        readable connection) says more did; each outcome goes to ``done(item, outcome)`` as soon as it is
        ready, in no particular order. Returns when ``stopping()`` and nothing is in flight."""
        from .runner import QUARANTINED, TRANSIENT, Outcome

        self._Outcome, self._QUARANTINED, self._TRANSIENT = Outcome, QUARANTINED, TRANSIENT
        open_: list[_Entry] = []
        try:
            while True:
                for item in take():
                    entry = _Entry(item)
                    open_.append(entry)
                    self.pending.append(entry)
                if not open_ and stopping():
                    return
                self._assign()
                self._wait(block=True, extra=(wake,))
                while wake.poll():
                    wake.recv_bytes()
                still = []
                for entry in open_:
                    if entry.outcome is None:
                        still.append(entry)
                    else:
                        done(entry.item, entry.outcome)
                open_ = still
        finally:
            for entry in open_:   # a pool that fails: what it held is not lost, the MTA retries it
                done(entry.item, Outcome(entry.item.origin, TRANSIENT, reason="the server is stopping"))
            self.close()

    def _wait(self, block: bool, extra: tuple = ()) -> None:
        from multiprocessing.connection import wait

        busy = [w for w in self.workers if w.inflight or w.held]
        if not busy and not any(w.retiring or not w.ready for w in self.workers) and not extra:
            return
        timeout = None if block else 0.0
        deadlines = [d for d in map(self._deadline, self.workers) if d is not None]
        if deadlines:
            soonest = max(0.0, min(deadlines) - time.monotonic())
            timeout = soonest if timeout is None else min(timeout, soonest)
        ready = set(wait([w.conn for w in self.workers] + [w.proc.sentinel for w in self.workers] + list(extra),
                         timeout))
        for w in list(self.workers):
            if w.conn in ready:
                self._receive(w)
            if w in self.workers and w.proc.sentinel in ready:
                self._drain(w)
                self._ended(w)
        self._enforce_deadlines()

    def _receive(self, w: _Worker) -> None:
        try:
            message = w.conn.recv()
        except (EOFError, OSError):
            self._ended(w)
            return
        self._take(w, message)

    def _take(self, w: _Worker, message: tuple) -> None:
        if message[0] == "ready":
            w.ready, w.since = True, time.monotonic()
            return
        if message[0] == "failed":  # it could not build its pipeline: every worker would fail the same way
            why = f"worker processes cannot start: {message[1]}"
            self.deaths = MAX_RESTARTS + 1
            if why != self.give_up:  # said once, not by every worker
                self.give_up = why
                self.problem(why)
            return
        if message[0] == "closed":
            if message[1]:
                self.problem(f"a worker could not close its processors: {message[1]}")
            return
        if message[0] == "held":  # processed; its result comes after the worker's commit
            if w.inflight:
                w.held.append(w.inflight.popleft())
            w.since = time.monotonic()
            return
        _, outcome, retire = message
        if w.held:
            w.held.popleft().outcome = outcome
        elif w.inflight:
            w.inflight.popleft().outcome = outcome
        w.since = time.monotonic()
        if retire:
            w.retiring = True

    def _drain(self, w: _Worker) -> None:
        """Results a worker sent before it ended."""
        try:
            while w.conn.poll():
                self._take(w, w.conn.recv())
        except (EOFError, OSError):
            pass

    def _ended(self, w: _Worker) -> None:
        """A worker is gone: what it was on is its fault unless it said it ends; the rest goes to another."""
        if w not in self.workers:
            return
        self.workers.remove(w)
        w.proc.join(1.0)
        if w.proc.exitcode is None:
            w.proc.kill()
            w.proc.join()
        w.conn.close()
        held, left = list(w.held), list(w.inflight)
        w.held.clear()
        w.inflight.clear()
        if not w.ready:  # died or hung while starting: the messages it was given are not its fault
            self.deaths += 1
            if w.killed:
                self.problem(f"a worker process did not start within {START_TIMEOUT:g} s; killed")
        elif left and not w.retiring:
            culprit = left.pop(0)
            if w.killed:
                from .runner import over_timeout

                culprit.outcome = self._Outcome(culprit.item.origin, self._QUARANTINED,
                                                reason=over_timeout(self.timeout))
            else:
                self.deaths += 1
                status = self._QUARANTINED if self.deaths <= MAX_RESTARTS else self._TRANSIENT
                culprit.outcome = self._Outcome(culprit.item.origin, status, reason=DIED)
        elif held and not w.retiring:
            # It ended in its group commit, before saying the messages it held were kept: no message's
            # fault, and they go round again (a store skips what did reach it). Still a death: restarts
            # are bounded.
            self.deaths += 1
        self.pending.extendleft(reversed(held + left))

    def _deadline(self, w: _Worker) -> float | None:
        """When the parent kills ``w``: starting for too long, or on one message past timeout + HARD_GRACE."""
        if w.killed:
            return None
        if not w.ready:
            return w.since + max(START_TIMEOUT, self.timeout)
        if (w.inflight or w.held) and self.timeout > 0:
            return w.since + self.timeout + HARD_GRACE
        return None

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for w in self.workers:
            deadline = self._deadline(w)
            if deadline is not None and now > deadline:
                w.killed = True
                w.proc.kill()

    def close(self) -> None:
        """Tell every worker to stop (they close their processors), then wait for them."""
        for w in self.workers:
            w.stopping = True
            try:
                w.conn.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + 30.0
        for w in list(self.workers):
            if not w.inflight:  # an interrupted batch: no waiting for messages nobody will read
                w.proc.join(max(0.0, deadline - time.monotonic()))
                self._drain(w)
            if w.proc.exitcode is None:
                w.proc.kill()
                w.proc.join()
            w.conn.close()
        self.workers.clear()
