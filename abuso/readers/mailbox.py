"""What the IMAP and POP3 readers share: the account, the state file, the watch loop's timing, SIGTERM."""

from __future__ import annotations

import signal
import time
from typing import Any, ClassVar, Mapping

from ..durations import parse_duration
from .base import Reader
from .mailbox_state import MailboxState, default_path


class MailboxReader(Reader):
    """Base of the mailbox readers; subclasses name their ports and add their own options."""

    tls_port: ClassVar[int]
    plain_port: ClassVar[int]

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        o = self.options
        self.check_options(o)  # type: ignore[attr-defined]
        self.host: str = o["host"]
        self.tls = o.get("ssl", True)
        self.port = int(o.get("port") or (self.tls_port if self.tls is True else self.plain_port))
        self.user: str = o["user"]
        self.max_attempts = int(o.get("max_attempts", 3))
        self.max_bytes = int(o.get("max_bytes", 32 * 1024 * 1024))
        self.watch = bool(o.get("watch", False))
        self.poll = parse_duration(o.get("poll", "60s")).total_seconds()
        self.retry = parse_duration(o.get("retry", "10m")).total_seconds()
        self.timeout = parse_duration(o.get("timeout", "60s")).total_seconds()
        self.account = f"{self.user}@{self.host}:{self.port}"
        # The mailbox, not the way to it: the plain and the TLS port share one state.
        mailbox = f"{self.user}@{self.host}"
        self.state = MailboxState(o.get("state") or default_path(self.name, mailbox), f"{self.name}://{mailbox}")
        self._password: str | None = None
        self._stop = False
        self._old_sigterm: Any = None

    def stop(self) -> None:
        """End the iteration after the current message (also what SIGTERM does in watch mode)."""
        self._stop = True

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop and time.monotonic() < deadline:
            time.sleep(min(1.0, deadline - time.monotonic()))

    def _catch_sigterm(self) -> None:
        try:
            self._old_sigterm = signal.signal(signal.SIGTERM, lambda *_: self.stop())
        except ValueError:  # not the main thread: the caller handles signals
            self._old_sigterm = None

    def _restore_sigterm(self) -> None:
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
