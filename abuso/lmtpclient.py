"""``abuso run -c CONFIG --lmtp unix:PATH|HOST:PORT``: a piped message handed to a running ``abuso serve``.

The spamc/clamdscan form for procmail and ``.forward``: instead of building the pipeline in a fresh
interpreter for every message, the message goes over LMTP (RFC 2033) to ``abuso serve``, whose workers
have it built already; the reply comes after the processors finished. This module imports only what the
interpreter has loaded anyway (no email, no yaml, no config): its start-up is the whole cost of a message.

Exit status, as ``abuso run`` in-process gives it for the same message:

- ``250`` → 0; ``250 … kept in the quarantine`` → 65 (in-process, a quarantined message exits 65 too).
- ``4xx`` after the message → 75 (EX_TEMPFAIL): the server did not finish it, the MTA retries.
- ``5xx`` after the message (over ``defaults.max_bytes``: 552) → the message is processed here, which
  quarantines it and exits 65 exactly as ``abuso run`` does: a refusal is never the message's end.
- No server (no socket, refused, a timeout while connecting, or anything failing before the message was
  handed over): processed here, as ``abuso run -c CONFIG`` does, after one line on stderr.
- No reply after the whole message was sent (a timeout, the connection broken): the server may have it,
  so 75. A retry is safe: the store keeps a re-delivered message once (same bytes, same digest).

The server writes the output (in its own ``-f`` format, to its own stdout) and the log: the client prints
nothing on success. ``-v`` prints the server's reply on stderr, ``-q`` hides the one-line notice that the
message is processed here; ``-f``, ``--log`` and ``--log-level`` apply to processing here only.
"""

import _socket  # not socket.py: its enums and selectors cost a piped message start-up
import sys
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import IO, Any

EX_OK, EX_USAGE, EX_DATAERR, EX_TEMPFAIL = 0, 64, 65, 75

#: Seconds for the whole exchange (``--lmtp-timeout``): the server answers after processing, and a message
#: may wait behind others for a worker; each takes at most ``defaults.timeout`` (60 s by default).
TIMEOUT = 300.0
#: Seconds to connect (at most the whole timeout): a server that does not take the connection by then is
#: as good as absent, and the message is processed here.
CONNECT_TIMEOUT = 10.0
#: How much of stdin is read when the server advertises no SIZE.
MAX_READ = 64 * 1024 * 1024


class NotHandedOver(Exception):
    """The server does not have the message: process it here."""


class UsageError(Exception):
    """A bad ``--lmtp`` address (exit 64)."""


def address(spec: str) -> "tuple[int, Any]":
    """``unix:PATH``, ``HOST:PORT`` or ``[V6]:PORT`` as (family, address); the form ``abuso serve --lmtp`` takes."""
    if spec.startswith("unix:") and len(spec) > 5:
        return _socket.AF_UNIX, spec[5:]
    host, sep, port = spec.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--lmtp {spec!r}: give unix:PATH or HOST:PORT (where abuso serve --lmtp listens)")
    return -1, (host.strip("[]"), int(port))


class _Session:
    """One LMTP connection under one deadline."""

    def __init__(self, spec: str, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout
        self.buf = b""
        family, where = address(spec)
        if family == _socket.AF_UNIX:
            self.sock = self._connect(family, where)
        else:
            host, port = where
            last: OSError = OSError("no address")
            for fam, kind, proto, _, sockaddr in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
                try:
                    self.sock = self._connect(fam, sockaddr, kind, proto)
                    break
                except OSError as e:
                    last = e
            else:
                raise last

    def _connect(self, family: int, where: "Any", kind: int = _socket.SOCK_STREAM, proto: int = 0) -> _socket.socket:
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(min(CONNECT_TIMEOUT, self._left()))
            sock.connect(where)
        except BaseException:
            sock.close()
            raise
        return sock

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        return left

    def send(self, data: bytes) -> None:
        self.sock.settimeout(self._left())
        self.sock.sendall(data)

    def reply(self) -> tuple[int, str]:
        """The next reply: its code and its text (the lines of a multi-line reply joined by a space)."""
        lines = []
        while True:
            end = self.buf.find(b"\n")
            while end < 0:
                self.sock.settimeout(self._left())
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("the server closed the connection")
                self.buf += chunk
                end = self.buf.find(b"\n")
            line, self.buf = self.buf[:end].rstrip(b"\r").decode("utf-8", "replace"), self.buf[end + 1:]
            if len(line) < 3 or not line[:3].isdigit():
                raise ConnectionError(f"not an LMTP reply: {line[:200]!r}")
            lines.append(line)
            if line[3:4] != "-":
                return int(line[:3]), " ".join(part[4:] for part in lines).strip()

    def command(self, line: str, expect: int) -> tuple[int, str]:
        """Send a command; a reply of another class than ``expect`` (2, 3) means the server will not take it."""
        self.send(line.encode("utf-8", "surrogateescape") + b"\r\n")
        code, text = self.reply()
        if code // 100 != expect:
            raise NotHandedOver(f"{line.split(' ')[0]}: {code} {text}")
        return code, text

    def close(self) -> None:
        try:
            self.sock.settimeout(0.5)
            self.sock.sendall(b"QUIT\r\n")
        except OSError:
            pass
        self.sock.close()


def wire(data: bytes) -> bytes:
    """The message as DATA carries it: CRLF line ends, a leading dot doubled, the final ``.`` line."""
    if not data:
        return b".\r\n"
    data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def _size(features: str) -> int:
    for word in features.upper().split(" SIZE ")[1:2]:
        first = word.split(" ", 1)[0]
        if first.isdigit() and int(first) > 0:
            return int(first)
    return MAX_READ


def deliver(spec: str, timeout: float | None = None, stdin: "IO[bytes] | None" = None,
            err: "IO[str] | None" = None, verbose: int = 0, quiet: bool = False) -> tuple[int | None, bytes | None]:
    """Hand the message on ``stdin`` to the LMTP server at ``spec``.

    Returns ``(status, None)`` when the server took it (or may have: 75), else ``(None, data)``: process
    it here, ``data`` being what was read from stdin already (None: nothing), which comes before the rest
    of stdin. Raises :class:`UsageError` for a bad ``spec``.
    """
    stdin = stdin if stdin is not None else sys.stdin.buffer
    err = err if err is not None else sys.stderr
    timeout = TIMEOUT if timeout is None else timeout
    data: bytes | None = None
    sent = False
    session: _Session | None = None
    try:
        session = _Session(spec, timeout)
        code, text = session.reply()
        if code // 100 != 2:
            raise NotHandedOver(f"greeting: {code} {text}")
        _, features = session.command("LHLO localhost", 2)
        limit = _size(" " + features + " ")
        if stdin is sys.stdin.buffer and sys.stdin.isatty():
            err.write("abuso: reading one message from stdin (end it with Ctrl-D)\n")
        data = stdin.read(limit + 1)
        if len(data) > limit:
            raise NotHandedOver(f"the message is over the server's SIZE {limit}")
        session.command("MAIL FROM:<>", 2)
        session.command("RCPT TO:<abuse@localhost>", 2)
        session.command("DATA", 3)
        # Until the last byte of the final "." line is out, the server cannot have the message.
        session.send(wire(data))
        sent = True
        code, text = session.reply()
    except UsageError:
        raise
    except (OSError, NotHandedOver) as e:  # OSError: TimeoutError, ConnectionError, socket.gaierror
        problem = str(e) if isinstance(e, NotHandedOver) else f"{type(e).__name__}: {e}"
        if sent:
            err.write(f"abuso: -: no reply from the LMTP server at {spec} after the message was sent "
                      f"({problem}); exit 75: the MTA retries, and the store keeps a message once\n")
            return EX_TEMPFAIL, None
        if not quiet:
            err.write(f"abuso: the LMTP server at {spec} did not take the message ({problem}); "
                      "processing it here instead (slower)\n")
        return None, data
    finally:
        if session is not None:
            session.close()
    reply = f"{code} {text}"
    if code // 100 == 2:
        if "kept in the quarantine" in text:
            err.write(f"abuso: -: {reply} (why: in abuso serve's log)\n")
            return EX_DATAERR, None
        if verbose:
            err.write(f"abuso: -: {reply}\n")
        return EX_OK, None
    if code // 100 == 5:
        if not quiet:
            err.write(f"abuso: the LMTP server at {spec} refused the message ({reply}); processing it here\n")
        return None, data
    err.write(f"abuso: -: temporary failure, will retry: {reply}\n")
    return EX_TEMPFAIL, None


class Prefixed:
    """Standard input with its first bytes already read by :func:`deliver`: what the in-process path reads."""

    def __init__(self, head: bytes, rest: "IO[bytes]") -> None:
        self.head, self.rest = head, rest

    def read(self) -> bytes:
        return self.head + self.rest.read()
