"""What the IMAP and POP3 readers share: the account, the state file, the watch loop's timing, SIGTERM."""

from __future__ import annotations

import signal
import time
from typing import Any, ClassVar, Iterator, Mapping

from ..durations import parse_duration
from ..options import Option
from .base import Reader
from .mailbox_state import MailboxState, default_path

LOOPBACK = {"localhost", "127.0.0.1", "::1"}

#: The account and watch options of both mailbox readers (each adds its own).
ACCOUNT_OPTIONS = (
    Option("host", "str", required=True, help="the server's host name"),
    Option("port", "int", min=1, max=65535, help="default 993/995 with ssl: true, else 143/110"),
    Option("ssl", "choice", True, choices=(True, "starttls", False),
           help="true (implicit TLS), starttls, or false (a server on this host only)"),
    Option("ca_file", "file", help="trust this CA instead of the system's"),
    Option("user", "str", required=True, help="the login"),
    Option("password_file", "file", help="the password (first line)"),
    Option("password_env", "str", help="the environment variable holding the password"),
    Option("password", "refused", help="a password is never written in the config: use password_file or "
                                       "password_env"),
    Option("timeout", "duration", "60s", help="per network operation"),
    Option("state", "output", help="the state file (default under ~/.local/state/abuso)"),
    Option("max_attempts", "int", 3, min=1, help="a message that crashed abuso this often goes to failed"),
    Option("max_bytes", "int", 32 * 1024 * 1024, min=1, help="larger messages go to failed unfetched"),
    Option("watch", "bool", False),
    Option("poll", "duration", "60s", help="--watch: how often to look for new mail"),
    Option("retry", "duration", "10m", help="--watch: retry a message that failed transiently"),
)


class MailboxReader(Reader):
    """Base of the mailbox readers; subclasses name their ports and add their own options."""

    tls_port: ClassVar[int]
    plain_port: ClassVar[int]
    OPTIONS: ClassVar[tuple[Option, ...] | None] = ACCOUNT_OPTIONS

    @classmethod
    def check_rules(cls, options: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        if len([k for k in ("password_file", "password_env") if options.get(k)]) != 1:
            yield "password_file", "give exactly one of password_file or password_env"
        if options.get("ssl", True) is False and options.get("host") not in LOOPBACK:
            yield "ssl", ("ssl: false would send the password in clear over the network: use ssl: true or "
                          "starttls (false is for a server on this host only)")

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        o = self.options
        self.check_options(o)
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
