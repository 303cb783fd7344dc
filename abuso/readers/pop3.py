"""Read a POP3 mailbox; remember by UIDL what was processed, and delete only what was.

POP3 has no folders and no flags, so the state file is the only memory: each UIDL is recorded ``pending`` before
the message is handed out and ``done`` or ``failed`` after. A message already done or failed is never retrieved
again; one that was being processed when abuso died is retried, up to ``max_attempts`` started attempts, then
recorded as failed (it stays on the server for a human). With ``delete: true`` a message is deleted (DELE) only
after ``done(item, None)``; POP3 applies deletions at QUIT, and a done message that is still on the server (QUIT
never came) is deleted at the next session, so a kill at any point neither loses nor repeats mail.
"""

from __future__ import annotations

import logging
import poplib
import ssl
import time
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from ..errors import ConfigError, TransientError
from ..options import Option
from .base import Item
from .mailbox import ACCOUNT_OPTIONS, MailboxReader
from .mailbox_state import password_key, read_password, redact, tls_context

log = logging.getLogger("abuso.reader.pop3")


#: poplib refuses lines over 2048 bytes; real mail has longer ones (HTML, unwrapped base64).
_MAXLINE = 64 * 1024 * 1024


class _Lines:
    def _getline(self) -> tuple[bytes, int]:
        line = self.file.readline(_MAXLINE + 1)  # type: ignore[attr-defined]
        if not line:
            raise poplib.error_proto("-ERR EOF")
        if len(line) > _MAXLINE:
            raise poplib.error_proto("line too long")
        octets = len(line)
        if line.endswith(b"\r\n"):
            return line[:-2], octets
        return line.rstrip(b"\n"), octets


class _POP3(_Lines, poplib.POP3):
    pass


class _POP3_SSL(_Lines, poplib.POP3_SSL):
    pass


@dataclass(frozen=True)
class Pop3Key:
    """A message of a POP3 session."""

    uidl: str
    #: Which connection the message number belongs to (numbers are per session).
    session: int
    number: int


class Pop3Reader(MailboxReader):
    """Options: ``host``, ``port``, ``ssl`` (true | starttls | false), ``ca_file``, ``user``, ``password_file`` |
    ``password_env``, ``delete`` (false), ``state`` (file), ``max_attempts`` (3), ``max_bytes`` (32 MiB),
    ``poll`` (60s, watch mode), ``retry`` (10m: watch mode retries a message that failed transiently),
    ``timeout`` (60s per network operation), ``watch``."""

    name = "pop3"
    tls_port, plain_port = 995, 110

    OPTIONS = ACCOUNT_OPTIONS + (Option("delete", "bool", False, help="DELE each message after success"),)

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.delete = bool(self.options.get("delete", False))
        self.conn: poplib.POP3 | None = None
        self.session = 0
        #: Handed out, no outcome yet: uidl -> (item, when).
        self._pending: dict[str, tuple[Item, float]] = {}
        #: Done after their session's QUIT (a parallel runner finishes late): deleted by close().
        self._late = 0

    def _connect(self) -> poplib.POP3:
        self._password = read_password(self.options)
        where = f"pop3 {self.host}:{self.port}"
        try:
            if self.tls is True:
                conn: poplib.POP3 = _POP3_SSL(self.host, self.port, context=tls_context(self.options),
                                              timeout=self.timeout)
            else:
                conn = _POP3(self.host, self.port, timeout=self.timeout)
                if self.tls == "starttls":
                    if "STLS" not in conn.capa():
                        conn.close()
                        raise ConfigError(f"{where}: the server offers no STLS", key="ssl")
                    conn.stls(tls_context(self.options))
        except ssl.SSLCertVerificationError as e:
            raise ConfigError(f"{where}: TLS certificate refused: {e.verify_message}; to trust a private CA set "
                              "ca_file", key="ca_file")
        except (OSError, poplib.error_proto) as e:
            raise TransientError(f"{where}: cannot connect: {e}")
        try:
            conn.user(self.user)
            conn.pass_(self._password)
        except poplib.error_proto as e:
            said = redact(str(e), self._password)
            conn.close()
            if "[IN-USE]" in said or "[SYS/TEMP]" in said:
                raise TransientError(f"{where}: login of {self.user} failed for now: {said}")
            raise ConfigError(f"{where}: login of {self.user} refused: {said}", key=password_key(self.options))
        except OSError as e:
            raise TransientError(f"{where}: connection lost at login: {e}")
        self.session += 1
        return conn

    def __iter__(self) -> Iterator[Item]:
        if self.watch:  # SIGTERM: end the poll wait, or the run after the current message
            self._catch_sigterm()
        while not self._stop:
            try:
                yield from self._session()
            except (OSError, poplib.error_proto) as e:
                self._drop()
                if not self.watch:
                    raise TransientError(f"pop3 {self.account}: {redact(str(e), self._password)}")
                log.warning("pop3 %s: %s; retrying in %.0fs", self.account, e, self.poll)
            if not self.watch:
                return
            self._sleep(self.poll)

    def _session(self) -> Iterator[Item]:
        """One POP3 session: the maildrop is a snapshot, so watch mode opens a new one per poll."""
        self.conn = conn = self._connect()
        session = self.session
        listing = self._uidls(conn)
        sizes = {}
        for line in conn.list()[1]:
            num, size = line.split()[:2]
            sizes[int(num)] = int(size)
        on_server = {uidl for _, uidl in listing}
        for status in ("done", "failed", "pending"):
            for key in self.state.keys(status) - on_server - set(self._pending):
                self.state.forget(key)  # gone from the server: no need to remember it
        for number, uidl in listing:
            if self._stop:
                break
            yield from self._offer(conn, session, number, uidl, sizes.get(number, 0))
        self._quit()

    def _uidls(self, conn: poplib.POP3) -> list[tuple[int, str]]:
        try:
            lines = conn.uidl()[1]
        except poplib.error_proto:
            raise ConfigError(f"pop3 {self.account}: the server has no UIDL; abuso cannot tell processed "
                              "messages from new ones")
        out = []
        for line in lines:
            num, uidl = line.decode("ascii", "replace").split()[:2]
            out.append((int(num), "uidl:" + uidl))
        return out

    def _offer(self, conn: poplib.POP3, session: int, number: int, uidl: str, size: int) -> Iterator[Item]:
        seen = self.state.get(uidl)
        origin = f"pop3://{self.user}@{self.host}:{self.port}/;UIDL={uidl[5:]}"
        if seen and seen[0] == "done":
            if self.delete:  # processed, but the deletion never reached QUIT
                conn.dele(number)
            return
        if seen and seen[0] == "failed":
            return
        if uidl in self._pending:  # in progress; or failed transiently, retried after ``retry`` in watch mode
            if not self.watch or time.monotonic() - self._pending[uidl][1] < self.retry:
                return
            self.state.release(uidl)
        if seen and seen[0] == "pending" and seen[1] >= self.max_attempts:
            reason = (f"abuso stopped {seen[1]} times while processing this message (crash, kill or out of "
                      "memory); not retried, left on the server")
            log.error("pop3 %s: %s: %s", self.account, origin, reason)
            self.state.finish(uidl, "failed", reason)
            return
        if size > self.max_bytes:
            reason = f"message of {size} bytes is larger than max_bytes={self.max_bytes}; left on the server"
            log.error("pop3 %s: %s: %s", self.account, origin, reason)
            self.state.finish(uidl, "failed", reason)
            return
        self.state.begin(uidl)
        lines = conn.retr(number)[1]
        raw = b"\r\n".join(lines) + b"\r\n"
        item = Item(raw, origin, Pop3Key(uidl, session, number))
        self._pending[uidl] = (item, time.monotonic())
        yield item

    def done(self, item: Item, error: str | None = None) -> None:
        """Record the outcome; with ``delete``, DELE a message that succeeded (applied at QUIT)."""
        key: Pop3Key = item.key
        self._pending.pop(key.uidl, None)
        if error is not None:
            log.warning("pop3 %s: %s failed, left on the server and not read again: %s", self.account,
                        item.origin, error)
        self.state.finish(key.uidl, "done" if error is None else "failed", error)
        if error is not None or not self.delete:
            return
        if self.conn is None or key.session != self.session:
            self._late += 1
        else:
            try:
                self.conn.dele(key.number)
            except (OSError, poplib.error_proto) as e:  # recorded as done: deleted at the next session
                log.warning("pop3 %s: cannot delete %s now (%s); next time", self.account, item.origin, e)
                self._drop()

    def _quit(self) -> None:
        if self.conn is not None:
            try:
                self.conn.quit()  # deletions take effect here
            except (OSError, poplib.error_proto) as e:
                log.warning("pop3 %s: QUIT failed (%s): deletions happen next time", self.account, e)
            self.conn = None

    def _drop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
            self.conn = None

    def close(self) -> None:
        """Undo attempts that got no outcome (not crashes), apply late deletions, QUIT."""
        for item, _ in self._pending.values():
            self.state.release(item.key.uidl)
        self._pending.clear()
        self._quit()
        if self._late:
            try:
                self.conn = conn = self._connect()
                for number, uidl in self._uidls(conn):
                    if (self.state.get(uidl) or ("",))[0] == "done":
                        conn.dele(number)
                self._quit()
            except (OSError, poplib.error_proto, TransientError) as e:
                log.warning("pop3 %s: cannot delete processed messages now (%s); next time", self.account, e)
                self._drop()
        self.state.close()
        self._restore_sigterm()
