"""``abuso serve``: the MTA delivers to abuso over LMTP (RFC 2033); the pipeline runs in the batch pool.

    MTA --LMTP--> asyncio server (aiosmtpd's LMTP) --queue--> Pool.serve (its own thread) --> workers

The reply to each recipient comes only after the processors finished: ``250`` when the message is done or
safe in the quarantine, ``451 4.3.0`` for a transient failure (the MTA keeps the message and retries), and
``552 5.3.4`` for a message over ``defaults.max_bytes`` (never worth a retry). A killed server loses
nothing: the MTA retries what was not answered, and the store keeps a re-delivered message once.

SIGTERM stops accepting, finishes what is in flight and exits 0. SIGHUP reloads the config: a config that
does not load keeps the old one running (said in the log); a new one takes effect with new workers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import signal
import socket
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from .config import Config, load
from .readers.base import Item

log = logging.getLogger("abuso.serve")

#: How long SIGTERM waits for messages in flight before the server exits anyway (they are retried).
STOP_GRACE = 120.0


def parse_listen(spec: str) -> tuple[str, Any]:
    """``unix:/run/abuso/lmtp.sock``, ``127.0.0.1:2424``, ``[::1]:2424`` or ``systemd`` (socket activation)."""
    from .errors import UsageError

    if spec == "systemd":
        if os.environ.get("LISTEN_PID") != str(os.getpid()) or int(os.environ.get("LISTEN_FDS", "0")) < 1:
            raise UsageError("--lmtp systemd: no socket passed by systemd (LISTEN_FDS)")
        return "fd", 3
    if spec.startswith("unix:"):
        return "unix", spec[5:]
    host, sep, port = spec.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise UsageError(f"--lmtp {spec!r}: give unix:PATH, HOST:PORT or systemd")
    return "tcp", (host.strip("[]"), int(port))


class Service:
    """The pool side: messages in, outcomes out, quarantine written here (in the parent)."""

    def __init__(self, config: Config, config_path: str | None, jobs: int, fmt: str) -> None:
        self.config, self.config_path, self.jobs, self.fmt = config, config_path, jobs, fmt
        self.inbox: queue.SimpleQueue[tuple[Item, Future]] = queue.SimpleQueue()
        self.wake_r, self.wake_w = _pipe()
        self.stopping = threading.Event()
        self.reload_asked = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="abuso-pool", daemon=True)
        self.out_lock = threading.Lock()
        self.failed: BaseException | None = None
        #: Called (from the pool thread) when the pool cannot go on: the server stops, exit 75, restarted.
        self.on_fail: Any = None

    def start(self) -> None:
        self.thread.start()

    def submit(self, data: bytes, origin: str) -> Future:
        future: Future = Future()
        self.inbox.put((Item(data, origin), future))
        self.wake_w.send_bytes(b"!")
        return future

    def stop(self) -> None:
        self.stopping.set()
        self.wake_w.send_bytes(b"!")

    def reload(self) -> None:
        self.reload_asked.set()
        self.wake_w.send_bytes(b"!")

    def _take(self) -> list[_Pending]:
        taken: list[_Pending] = []
        while True:
            try:
                item, future = self.inbox.get_nowait()
            except queue.Empty:
                return taken
            taken.append(_Pending(item, future))

    def _loop(self) -> None:
        from .workers import Pool

        try:
            while True:
                initargs = (self.config, self.fmt, False, float(self.config.default("timeout")), False)
                pool = Pool(self.jobs, initargs, timeout=float(self.config.default("timeout")),
                            max_memory=self.config.max_memory, window=self.jobs, finish=lambda i, o: None,
                            problem=lambda p: log.error("%s", p))
                self.reload_asked.clear()
                pool.serve(self._take, self.wake_r, self._done,
                           lambda: self.stopping.is_set() or self.reload_asked.is_set())
                if self.stopping.is_set():
                    return
                self._reload()
        except BaseException as e:  # kept broad: whatever stops the pool, the server must stop answering 250
            self.failed = e
            log.error("the worker pool stopped: %s: %s", type(e).__name__, e)
            while True:       # answer what is left 451: the MTA keeps it
                try:
                    item, future = self.inbox.get_nowait()
                except queue.Empty:
                    break
                future.set_result(("transient", "the server's worker pool stopped"))
            if self.on_fail is not None:
                self.on_fail()

    def _reload(self) -> None:
        from .errors import AbusoError

        try:
            self.config = load(self.config_path)
        except AbusoError as e:
            log.error("SIGHUP: the config does not load, the old one stays: %s", str(e).replace("\n", "; "))
            return
        log.warning("SIGHUP: config %s reloaded", self.config_path)

    def _done(self, pending: _Pending, outcome: Any) -> None:
        from .runner import OK, QUARANTINED

        status: tuple[str, str]
        if outcome.status == OK:
            status = ("ok", "")
            if outcome.log:
                log.info("%s: %s", pending.origin, outcome.log)
        elif outcome.status == QUARANTINED:
            status = self._quarantine(pending, outcome)
        else:
            log.error("%s: temporary failure, the MTA retries: %s", pending.origin, outcome.reason)
            status = ("transient", outcome.reason)
        if outcome.output and status[0] != "transient":
            with self.out_lock:
                try:
                    os.write(1, outcome.output.encode("utf-8", "surrogateescape"))
                except OSError:
                    pass
        pending.future.set_result(status)

    def _quarantine(self, pending: _Pending, outcome: Any) -> tuple[str, str]:
        from .quarantine import quarantine

        try:
            path = quarantine(Path(self.config.quarantine), pending.data, pending.origin, outcome.reason)
        except OSError as e:
            log.error("%s: %s; and cannot quarantine it: %s", pending.origin, outcome.reason, e)
            return ("transient", f"cannot quarantine: {e.strerror or e}")
        log.warning("%s: quarantined as %s: %s", pending.origin, path.name, outcome.reason)
        return ("quarantined", path.name)


class _Pending:
    """A message (what the pool reads: ``data``, ``origin``) and the future its LMTP transaction waits on."""

    __slots__ = ("data", "origin", "future")

    def __init__(self, item: Item, future: Future) -> None:
        self.data, self.origin, self.future = item.data, item.origin, future


def _pipe() -> tuple[Any, Any]:
    import multiprocessing

    return multiprocessing.Pipe(duplex=False)


def _reply(status: tuple[str, str]) -> str:
    kind, detail = status
    if kind == "ok":
        return "250 2.0.0 processed"
    if kind == "quarantined":
        return f"250 2.0.0 kept in the quarantine as {detail}"
    if kind == "too-big":
        return f"552 5.3.4 {detail}"
    return "451 4.3.0 " + " ".join(detail.split())[:300]


class Handler:
    """aiosmtpd handler: one pipeline run per message, its status repeated for each recipient (RFC 2033)."""

    def __init__(self, service: Service, max_bytes: int) -> None:
        self.service, self.max_bytes = service, max_bytes
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # CRLF is LMTP's wire form; a message is kept in the local form, as procmail and a .forward pipe
        # hand it to ``abuso run`` (and as Dovecot's LMTP stores it): the same message makes the same bytes,
        # the same store digest, however it came (abuso run --lmtp falls back in-process when no server runs).
        data: bytes = (envelope.original_content or b"").replace(b"\r\n", b"\n")
        n = max(1, len(envelope.rcpt_tos))
        if len(data) > self.max_bytes:
            return "\r\n".join([_reply(("too-big", f"message over defaults.max_bytes ({self.max_bytes} bytes)"))] * n)
        if self.service.stopping.is_set():
            return "\r\n".join(["451 4.3.2 abuso is stopping; try again later"] * n)
        self.count += 1
        peer = session.peer[0] if isinstance(session.peer, tuple) else "local"
        origin = f"lmtp:{peer}#{self.count}"
        status = await asyncio.wrap_future(self.service.submit(data, origin))
        return "\r\n".join([_reply(status)] * n)


def _lmtp_class(max_bytes: int) -> Any:
    from aiosmtpd.lmtp import LMTP

    class AbusoLMTP(LMTP):
        # A line of the message may be as long as the message (HTML notices, base64 without folding): abuso
        # reads it as ``abuso run`` does. Command lines keep aiosmtpd's own command_size_limit (512).
        line_length_limit = max_bytes + 65536

        async def push(self, status: Any) -> None:
            # aiosmtpd answers an oversized DATA once; LMTP owes one reply per recipient.
            text = status.decode() if isinstance(status, bytes) else status
            if text.startswith("552 Error: Too much mail data") and self.envelope is not None:
                n = max(1, len(self.envelope.rcpt_tos))
                text = "\r\n".join([f"552 5.3.4 message over defaults.max_bytes ({max_bytes} bytes)"] * n)
            await super().push(text)

    return AbusoLMTP


def serve(config_path: str | None, listen: str, jobs: int, fmt: str = "json", ready: Any = None,
          socket_mode: int = 0o660) -> int:
    """Run until SIGTERM; returns the exit status."""
    config = load(config_path)
    kind, address = parse_listen(listen)
    max_bytes = int(config.default("max_bytes"))
    service = Service(config, config_path, jobs, fmt)
    service.start()
    handler = Handler(service, max_bytes)
    lmtp = _lmtp_class(max_bytes)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    # The name in the greeting, looked up once: without it aiosmtpd calls socket.getfqdn() for every connection
    # (a DNS query each time, per message with abuso run --lmtp; seconds each when the resolver is down).
    hostname = socket.getfqdn()

    def factory() -> Any:
        # data_size_limit: a little over max_bytes, so the check above can say it; beyond, aiosmtpd drops it.
        return lmtp(handler, data_size_limit=max_bytes + 65536, enable_SMTPUTF8=True, ident="abuso LMTP",
                    hostname=hostname)

    if kind == "unix":
        path = Path(address)
        if path.is_socket():
            path.unlink()          # a stale socket of an earlier run
        server = loop.run_until_complete(loop.create_unix_server(factory, str(path)))
        os.chmod(path, socket_mode)     # the MTA's user (postfix) must be able to connect
    elif kind == "fd":
        sock = socket.socket(fileno=address)
        server = loop.run_until_complete(loop.create_unix_server(factory, sock=sock) if sock.family == socket.AF_UNIX
                                         else loop.create_server(factory, sock=sock))
    else:
        server = loop.run_until_complete(loop.create_server(factory, address[0], address[1]))
    stopped = asyncio.Event()

    def on_term() -> None:
        log.warning("SIGTERM: no new mail; finishing what is in flight")
        server.close()
        stopped.set()

    service.on_fail = lambda: loop.call_soon_threadsafe(on_term)
    loop.add_signal_handler(signal.SIGTERM, on_term)
    loop.add_signal_handler(signal.SIGINT, on_term)
    loop.add_signal_handler(signal.SIGHUP, service.reload)
    where = address if kind != "tcp" else f"{address[0]}:{server.sockets[0].getsockname()[1]}"
    log.warning("serving LMTP on %s with %d workers", where, jobs)
    if ready is not None:
        ready(server)
    try:
        loop.run_until_complete(stopped.wait())
        # Sessions in flight wait for their futures; let them finish (or give up after STOP_GRACE).
        service.stop()
        loop.run_until_complete(loop.run_in_executor(None, service.thread.join, STOP_GRACE))
        loop.run_until_complete(asyncio.sleep(0.2))      # the last replies go out
    finally:
        loop.close()
        if kind == "unix":
            try:
                Path(address).unlink()
            except OSError:
                pass
    return 75 if service.failed is not None else 0
