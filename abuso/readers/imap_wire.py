"""The IMAP connection: imaplib, plus what it lacks (IDLE, tagged response codes), behind one small class.

imaplib of Python 3.11 has no IDLE (RFC 2177), and it reads through a BufferedReader whose buffer cannot be
inspected, so it cannot tell whether a line is waiting without blocking. :class:`Connection` keeps the read
buffer in our hands, which is what lets IDLE wait with ``select`` without blocking on a half-read line, and does
the IDLE/DONE exchange itself. This file is the only one in abuso that touches imaplib's private parts
(``_new_tag``, ``tagged_commands``, ``_simple_command``, ``_MAXLINE``): a change of imaplib is its business alone.
"""

from __future__ import annotations

import imaplib
import re
import select
import ssl
import time
from typing import Any, Callable

from ..lazy import lazy_compile

_NEW_MAIL = lazy_compile(rb"^\* \d+ (?:EXISTS|RECENT)\b", re.I)


class Lost(Exception):
    """The connection broke: reconnect (watch) or give up with a TransientError (batch)."""


class Connection(imaplib.IMAP4):
    """An ``imaplib.IMAP4`` that can IDLE and send a command whose tagged response text matters."""

    sock: Any
    _rbuf: bytearray

    def open(self, *args: Any, **kwargs: Any) -> None:
        self._rbuf = bytearray()
        super().open(*args, **kwargs)

    # -- reading, with the buffer in our hands --------------------------------------------------------------

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self._rbuf += data
        return True

    def read(self, size: int) -> bytes:
        while len(self._rbuf) < size:
            if not self._fill():
                raise imaplib.IMAP4.abort("socket error: EOF in the middle of a literal")
        data = bytes(self._rbuf[:size])
        del self._rbuf[:size]
        return data

    def readline(self) -> bytes:
        start = 0
        while True:
            end = self._rbuf.find(b"\n", start)
            if end >= 0:
                line = bytes(self._rbuf[:end + 1])
                del self._rbuf[:end + 1]
                return line
            if len(self._rbuf) > imaplib._MAXLINE:  # type: ignore[attr-defined]
                raise imaplib.IMAP4.error(f"got more than {imaplib._MAXLINE} bytes")  # type: ignore[attr-defined]
            start = len(self._rbuf)
            if not self._fill():
                line = bytes(self._rbuf)
                self._rbuf.clear()
                return line

    def buffered(self) -> bool:
        """Is something already read and waiting (here or inside the TLS layer)?"""
        return bool(self._rbuf) or (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0)

    # -- what imaplib has no public call for ----------------------------------------------------------------

    def tagged(self, *words: str) -> tuple[str, list[Any]]:
        """A command whose *tagged* response matters (``COPYUID``, ``MODIFIED``): ``uid()`` would return the
        untagged data instead and drop it."""
        return self._simple_command(*words)

    def idle(self, seconds: float, stopped: Callable[[], bool]) -> bool:
        """One IDLE, ended by new mail, ``seconds`` or ``stopped()``; False if the server refused it.

        Raises :class:`Lost` when the connection breaks."""
        try:
            tag = self._new_tag()
            self.send(tag + b" IDLE\r\n")
            while True:
                line = self.readline()
                if not line:
                    raise Lost("connection closed at IDLE")
                if line.startswith(b"+"):
                    break
                if line.startswith(tag + b" "):
                    self.tagged_commands.pop(tag, None)
                    return False
            deadline = time.monotonic() + seconds
            while not stopped():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if not self.buffered() and not select.select([self.sock], [], [], min(left, 1.0))[0]:
                    continue
                line = self.readline()
                if not line or line.startswith(b"* BYE"):
                    raise Lost("the server ended the IDLE session")
                if _NEW_MAIL.match(line):
                    break
            self.send(b"DONE\r\n")
            while True:
                line = self.readline()
                if not line:
                    raise Lost("connection closed after IDLE")
                if line.startswith(tag + b" "):
                    self.tagged_commands.pop(tag, None)
                    return True
        except (OSError, imaplib.IMAP4.abort, InterruptedError) as e:
            raise Lost(str(e))


class TlsConnection(Connection, imaplib.IMAP4_SSL):
    """The same over implicit TLS (port 993)."""


def open_connection(host: str, port: int, tls: bool, context: ssl.SSLContext | None, timeout: float) -> Connection:
    """A connected (not yet logged in) :class:`Connection`; OSError and imaplib errors pass through."""
    if tls:
        return TlsConnection(host, port, ssl_context=context, timeout=timeout)
    return Connection(host, port, timeout=timeout)
