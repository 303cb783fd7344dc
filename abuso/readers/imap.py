"""Read an IMAP folder, and move (or flag) each message only once its processors finished.

Guarantees, and how:

- *At-least-once.* A message leaves ``folder`` (UID MOVE to ``done``/``failed``, or a flag) only after
  ``done()``, once the runner finished with it. Killed at any point, the next run finds every unfinished message
  where it was. Fetching uses ``BODY.PEEK[]`` so reading never sets ``\\Seen``. Moves are sent in batches
  (one UID MOVE costs Dovecot ~8 ms whether it moves one message or ten); until sent they are recorded in the
  state file, and a UID is never reused within a UIDVALIDITY, so after a crash exactly the finished messages are
  moved without being processed again.
- *No poison loop.* A failed message goes to ``failed`` with its reason logged. A message that kills the worker
  (no ``done()`` ever comes) is counted in the state file; after ``max_attempts`` started attempts it is moved to
  ``failed`` without being processed again.
- *UID spaces change.* UIDs are only trusted together with the UIDVALIDITY they came with. If a folder's
  UIDVALIDITY changed while a message was being processed, ``done()`` finds it again by Message-ID, size and
  bytes rather than touching whatever now has that UID. In flag mode, where processed messages stay in the
  folder, the state file remembers processed Message-IDs so a recreated folder (flags lost) is not reprocessed.
- *Several workers* (``claim``): a worker claims a message with a conditional STORE of ``$AbusoClaimed``
  (``UNCHANGEDSINCE`` its MODSEQ: of racing workers exactly one succeeds), then UID MOVEs it into its own folder
  ``abuso-claim<sep><host>-<pid>`` (``<sep>``: the server's hierarchy separator) and processes it from there.
  Messages left in a claim folder by a dead worker of this host are taken over at start-up and then every
  ``claim_timeout`` (``recover``), by the same conditional STORE; a message claimed but never moved (the worker
  died in between) is released at the next start on the same host, or by any worker once it has sat unchanged
  for ``claim_timeout``.
- *Watch.* After draining, wait with IDLE (RFC 2177; imaplib of Python 3.11 has none, so the IDLE/DONE exchange
  is done here on a reader that keeps its own buffer, which is what lets it wait with ``select`` without
  blocking on a half-read line), re-issued every ``idle`` (default 25 min, under the 29-min server limit);
  servers without IDLE are polled every ``poll``. SIGTERM stops the wait, or ends the run after the current
  message.
"""

from __future__ import annotations

import base64
import hashlib
import imaplib
import logging
import os
import re
import select
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from ..durations import parse_duration
from ..errors import ConfigError, TransientError
from ..lazy import lazy_compile
from ..options import Option
from .base import Item
from .mailbox import ACCOUNT_OPTIONS, MailboxReader
from .mailbox_state import password_key, read_password, redact, tls_context

log = logging.getLogger("abuso.reader.imap")

#: System flags and the SEARCH key that finds messages *without* them.
_UNFLAGGED = {"\\SEEN": "UNSEEN", "\\FLAGGED": "UNFLAGGED", "\\ANSWERED": "UNANSWERED", "\\DRAFT": "UNDRAFT",
              "\\DELETED": "UNDELETED"}
_MESSAGE_ID = lazy_compile(rb"^Message-ID:[ \t]*(?:\r?\n[ \t]+)?(<[^>\s]{1,500}>)", re.I | re.M)
_NEW_MAIL = lazy_compile(rb"^\* \d+ (?:EXISTS|RECENT)\b", re.I)
_KEYWORD = lazy_compile(r"^\$?[A-Za-z0-9_.-]+$")
#: Set by a conditional STORE (CONDSTORE, RFC 7162) to claim a message: the server applies one of two racing
#: STOREs with the same UNCHANGEDSINCE and answers MODIFIED to the other. (Dovecot's MOVE alone is *not* a claim:
#: on Maildir two sessions racing UID MOVE on one message both get a copy, measured: ~60% of 200 contested.)
CLAIMED = "$AbusoClaimed"


def _check_folder(value: str) -> None:
    if is_flag(value):
        raise ValueError("must be a folder name")


def _check_target(value: str) -> None:
    if is_flag(value) and value.upper() not in _UNFLAGGED and not _KEYWORD.match(value):
        raise ValueError(f"not a valid flag: {value!r}")


def _check_recover(value: Any) -> None:
    if isinstance(value, str) and value != "all":
        raise ValueError("true (dead workers of this host), false, all, or a list of worker names")


def _check_idle(value: Any) -> None:
    if value is True:
        raise ValueError("a duration, or false to poll instead")


def is_flag(target: str) -> bool:
    """``\\Seen`` (a system flag) or ``$AbusoDone`` (a keyword) mean flag in place; anything else is a folder."""
    return target.startswith("\\") or target.startswith("$")


def message_key(raw: bytes) -> str:
    """The identity a message keeps when its UID changes: its Message-ID, else the hash of its bytes."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    m = _MESSAGE_ID.search(head)
    if m:
        return "mid:" + m.group(1).decode("ascii", "replace")
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def mutf7(name: str) -> str:
    """A folder name as IMAP spells it on the wire: modified UTF-7 (RFC 3501 5.1.3), ``Prüfung`` -> ``Pr&APw-fung``."""
    out: list[str] = []
    wide: list[str] = []

    def shift() -> None:
        if wide:
            b64 = base64.b64encode("".join(wide).encode("utf-16-be")).decode().rstrip("=").replace("/", ",")
            out.append(f"&{b64}-")
            wide.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            shift()
            out.append("&-" if ch == "&" else ch)
        else:
            wide.append(ch)
    shift()
    return "".join(out)


def _q(name: str) -> str:
    """A quoted IMAP string (folder names may hold spaces)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class ImapKey:
    folder: str
    uidvalidity: int
    uid: int
    #: ``message_key()`` of the bytes: finds the message again if the UID space changed.
    msgkey: str


@dataclass(frozen=True)
class _Move:
    folder: str
    uidvalidity: int
    uid: int
    target: str
    msgkey: str
    sha256: str
    size: int


class _Buffered:
    """imaplib reads through a BufferedReader whose buffer cannot be inspected, so it cannot tell whether a line
    is waiting without blocking; IDLE needs exactly that. This keeps the read buffer in our hands."""

    sock: Any
    _rbuf: bytearray

    def open(self, host: str = "", port: int = 143, timeout: float | None = None) -> None:
        self._rbuf = bytearray()
        super().open(host, port, timeout)  # type: ignore[misc]

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
            if len(self._rbuf) > imaplib._MAXLINE:
                raise imaplib.IMAP4.error(f"got more than {imaplib._MAXLINE} bytes")
            start = len(self._rbuf)
            if not self._fill():
                line = bytes(self._rbuf)
                self._rbuf.clear()
                return line

    def buffered(self) -> bool:
        """Is something already read and waiting (here or inside the TLS layer)?"""
        return bool(self._rbuf) or (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0)


class _IMAP4(_Buffered, imaplib.IMAP4):
    pass


class _IMAP4_SSL(_Buffered, imaplib.IMAP4_SSL):
    pass


class _Lost(Exception):
    """The connection broke: reconnect (watch) or give up with a TransientError (batch)."""


class ImapReader(MailboxReader):
    """Options: ``host``, ``port``, ``ssl`` (true | starttls | false), ``ca_file``, ``user``, ``password_file`` |
    ``password_env``, ``folder`` (INBOX), ``done`` (Processed) and ``failed`` (Failed): a folder, or a flag such
    as ``\\Seen`` / ``$AbusoDone``; ``claim`` (false; true or a folder prefix, default ``abuso-claim``),
    ``claim_batch`` (10), ``claim_timeout`` (5m), ``worker`` (``<host>-<pid>``), ``recover`` (true: dead workers
    of this host; ``all``; or a list of worker names), ``move_batch`` (20), ``move_delay`` (2s),
    ``max_attempts`` (3), ``max_bytes`` (32 MiB), ``poll`` (60s), ``idle`` (25m;
    false: poll), ``retry`` (10m: watch mode retries a message that failed transiently), ``state`` (file),
    ``keep`` (90d of finished records), ``timeout`` (60s per network operation), ``watch``."""

    name = "imap"
    tls_port, plain_port = 993, 143

    OPTIONS = ACCOUNT_OPTIONS + (
        Option("folder", "str", "INBOX", check=_check_folder, help="the folder to read"),
        Option("done", "str", "Processed", check=_check_target,
               help="a folder (UID MOVE) or a flag (\\Seen, $AbusoDone) for finished messages"),
        Option("failed", "str", "Failed", check=_check_target,
               help="a folder or a flag for quarantined messages"),
        Option("claim", "bool|str", False, help="true or a folder prefix: several workers share the mailbox"),
        Option("claim_batch", "int", 10, min=1),
        Option("claim_timeout", "duration", "5m"),
        Option("worker", "str", help="this worker's name (default <host>-<pid>)"),
        Option("recover", "bool|str|strings", True, check=_check_recover,
               help="true (dead workers of this host), false, all, or a list of worker names"),
        Option("move_batch", "int", 20, min=1),
        Option("move_delay", "duration", "2s"),
        Option("idle", "duration|bool", "25m", check=_check_idle, help="--watch: IDLE renewal; false: poll"),
        Option("keep", "duration", "90d", help="how long finished records are kept"),
    )

    @classmethod
    def check_rules(cls, options: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        yield from super().check_rules(options)
        if options.get("claim") and (is_flag(str(options.get("done", "Processed")))
                                     or is_flag(str(options.get("failed", "Failed")))):
            yield "claim", ("claiming moves messages into a worker's folder: done and failed must be folders "
                            "then, not flags")

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        o = self.options
        # Folder names are kept as the server spells them (modified UTF-7); flags are ASCII already.
        self.folder: str = mutf7(o.get("folder", "INBOX"))
        self.done_target: str = mutf7(o.get("done", "Processed"))
        self.failed_target: str = mutf7(o.get("failed", "Failed"))
        claim = o.get("claim", False)
        self.claim_prefix = mutf7(claim if isinstance(claim, str) else "abuso-claim") if claim else None
        self.claim_batch = int(o.get("claim_batch", 10))
        self.claim_timeout = parse_duration(o.get("claim_timeout", "5m")).total_seconds()
        self.move_batch = int(o.get("move_batch", 20))
        self.move_delay = parse_duration(o.get("move_delay", "2s")).total_seconds()
        self.worker = str(o.get("worker") or f"{socket.gethostname()}-{os.getpid()}")
        self.recover = o.get("recover", True)
        self.idle = None if o.get("idle") is False else parse_duration(o.get("idle", "25m")).total_seconds()
        self.state.prune(parse_duration(o.get("keep", "90d")).total_seconds())
        self.conn: _IMAP4 | None = None
        self.caps: set[str] = set()
        self.sep = "/"
        self.claim_folder: str | None = None
        self._selected: str | None = None
        self._uidvalidity = 0
        self._pending: dict[tuple[str, int, int], tuple[Item, float]] = {}
        #: Claimed messages seen still in ``folder``: (uidvalidity, uid) -> (modseq, first seen).
        self._orphans: dict[tuple[int, int], tuple[int, float]] = {}
        #: Finished, not yet moved (one UID MOVE per batch costs what one per message does: ~8 ms on Dovecot).
        self._moves: list[_Move] = []
        self._moves_since = 0.0
        self._recovered = 0.0

    # -- connection --------------------------------------------------------

    def _connect(self) -> None:
        self._password = read_password(self.options)
        ctx = tls_context(self.options) if self.tls else None
        where = f"imap {self.host}:{self.port}"
        try:
            if self.tls is True:
                conn: _IMAP4 = _IMAP4_SSL(self.host, self.port, ssl_context=ctx, timeout=self.timeout)
            else:
                conn = _IMAP4(self.host, self.port, timeout=self.timeout)
                if self.tls == "starttls":
                    if "STARTTLS" not in conn.capabilities:
                        conn.shutdown()
                        raise ConfigError(f"{where}: the server offers no STARTTLS", key="ssl")
                    conn.starttls(ctx)
        except ssl.SSLCertVerificationError as e:
            raise ConfigError(f"{where}: TLS certificate refused: {e.verify_message}; to trust a private CA set "
                              "ca_file", key="ca_file")
        except (OSError, imaplib.IMAP4.error) as e:
            raise TransientError(f"{where}: cannot connect: {e}")
        try:
            if self._password.isascii() and self.user.isascii():
                conn.login(self.user, self._password)
            else:  # LOGIN is ASCII-only; SASL PLAIN carries UTF-8 (RFC 4616)
                secret = f"\0{self.user}\0{self._password}".encode()
                conn.authenticate("PLAIN", lambda _: secret)
        except imaplib.IMAP4.abort as e:
            raise TransientError(f"{where}: connection lost at login: {redact(str(e), self._password)}")
        except imaplib.IMAP4.error as e:
            said = redact(str(e), self._password)
            conn.shutdown()
            if "UNAVAILABLE" in said or "INUSE" in said:
                raise TransientError(f"{where}: login of {self.user} failed for now: {said}")
            raise ConfigError(f"{where}: login of {self.user} refused: {said}", key=password_key(self.options))
        except OSError as e:
            raise TransientError(f"{where}: connection lost at login: {e}")
        self.conn = conn
        self._selected = None
        typ, data = conn.capability()
        self.caps = set(data[0].decode().upper().split()) if typ == "OK" and data and data[0] else set()
        typ, data = conn.list('""', '""')
        m = re.match(rb'\(.*?\) (?:"((?:[^"\\]|\\.)*)"|NIL)', data[0] or b"") if typ == "OK" and data else None
        self.sep = m.group(1).decode() if m and m.group(1) else "/"
        for target in (self.done_target, self.failed_target):
            if not is_flag(target):
                self._create(target)
        if self.claim_prefix:
            missing = {"MOVE", "CONDSTORE", "UIDPLUS"} - self.caps
            if missing:
                raise ConfigError(f"{where}: claim needs an IMAP server with {', '.join(sorted(missing))}",
                                  key="claim")
            self._cmd("enable", "CONDSTORE")
            self.claim_folder = self.claim_prefix + self.sep + self._safe(self.worker)
            self._create(self.claim_folder)

    def _safe(self, name: str) -> str:
        """A worker name usable as one folder level (host names hold dots, a common separator)."""
        return re.sub(r"[^A-Za-z0-9_-]", "-", name)

    def _create(self, folder: str) -> None:
        typ, data = self._cmd("create", _q(folder))
        if typ != "OK" and b"ALREADYEXISTS" not in (data[0] or b"").upper() and folder not in self._list(folder):
            raise ConfigError(f"cannot create folder {folder!r}: {data[0]!r}")

    def _list(self, pattern: str) -> list[str]:
        typ, data = self._cmd("list", '""', _q(pattern))
        names = []
        for line in data or []:
            if not line:
                continue
            if isinstance(line, tuple):  # name sent as a literal
                names.append(line[1].decode("utf-8", "replace"))
                continue
            m = re.match(rb'\((.*?)\) (?:"(?:[^"\\]|\\.)*"|NIL) (.*)$', line)
            if m and b"\\NOSELECT" not in m.group(1).upper():
                name = m.group(2).decode("utf-8", "replace")
                if name.startswith('"'):
                    name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
                names.append(name)
        return names

    def _cmd(self, name: str, *args: Any) -> tuple[str, list[Any]]:
        """One imaplib call; a broken connection becomes _Lost."""
        assert self.conn is not None
        try:
            return getattr(self.conn, name)(*args)
        except (imaplib.IMAP4.abort, OSError) as e:
            raise _Lost(redact(str(e), self._password))

    def _select(self, folder: str) -> int:
        """Select ``folder`` (if not selected) and return its UIDVALIDITY, noting any change."""
        if self._selected == folder:
            return self._uidvalidity
        self._selected = None
        typ, data = self._cmd("select", _q(folder))
        if typ != "OK":
            raise TransientError(f"imap {self.account}: cannot select {folder!r}: {data[0]!r}")
        assert self.conn is not None
        uv = int(self.conn.untagged_responses.get("UIDVALIDITY", [b"0"])[-1])
        before = self.state.uidvalidity(folder)
        if before is not None and before != uv:
            log.warning("imap %s: UIDVALIDITY of %s changed from %d to %d: the folder was recreated or its UIDs "
                        "reset; messages are matched by Message-ID and content from now on",
                        self.account, folder, before, uv)
        if before != uv:
            self.state.set_uidvalidity(folder, uv)
        self._selected, self._uidvalidity = folder, uv
        return uv

    def _sizes(self, criteria: list[str]) -> list[tuple[int, int]]:
        """(uid, size) of the selected folder's messages matching ``criteria``, in UID order."""
        typ, data = self._cmd("uid", "SEARCH", *criteria)
        uids = sorted(int(x) for x in (data[0] or b"").split()) if typ == "OK" else []
        if not uids:
            return []
        sizes: dict[int, int] = {}
        for start in range(0, len(uids), 500):
            chunk = ",".join(str(u) for u in uids[start:start + 500])
            typ, data = self._cmd("uid", "FETCH", chunk, "(RFC822.SIZE)")
            for line in data or []:
                text = line[0] if isinstance(line, tuple) else line
                m = re.search(rb"UID (\d+)", text or b"")
                s = re.search(rb"RFC822\.SIZE (\d+)", text or b"")
                if m and s:
                    sizes[int(m.group(1))] = int(s.group(1))
        return [(u, sizes[u]) for u in uids if u in sizes]

    def _fetch(self, uid: int) -> bytes | None:
        typ, data = self._cmd("uid", "FETCH", str(uid), "(BODY.PEEK[])")
        for part in data or []:
            if isinstance(part, tuple) and b"BODY[]" in part[0].upper():
                return part[1]
        return None

    def _move(self, uid: int | str, target: str) -> bool:
        """Move messages (a UID or a UID set) of the selected folder; False when none was there any more."""
        assert self.conn is not None
        untagged = self.conn.untagged_responses
        for code in ("COPYUID", "EXPUNGE"):
            untagged.pop(code, None)
        if "MOVE" in self.caps:
            typ, data = self._cmd("uid", "MOVE", str(uid), _q(target))
            if typ == "NO" and b"EXPUNGEISSUED" in (data[0] or b"").upper():  # another session took it first
                return False
            if typ != "OK":
                raise TransientError(f"imap {self.account}: cannot move UID {uid} to {target!r}: {data[0]!r}")
            moved = bool(untagged.pop("COPYUID", None) or untagged.pop("EXPUNGE", None))
            untagged.pop("EXPUNGE", None)
            return moved
        # not conn.uid(): it returns untagged FETCH data and drops the tagged OK, where COPYUID is
        typ, data = self._cmd("_simple_command", "UID", "COPY", str(uid), _q(target))
        if typ == "NO" and b"EXPUNGEISSUED" in (data[0] or b"").upper():
            return False
        if typ != "OK":
            raise TransientError(f"imap {self.account}: cannot copy UID {uid} to {target!r}: {data[0]!r}")
        if "UIDPLUS" in self.caps and b"COPYUID" not in (data[0] or b"").upper():
            return False
        self._cmd("uid", "STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)")
        if "UIDPLUS" in self.caps:
            self._cmd("uid", "EXPUNGE", str(uid))
        else:  # no way to expunge just this one: removes every message flagged \Deleted in the folder
            self._cmd("expunge")
        untagged.pop("EXPUNGE", None)
        return True

    def _flag(self, uid: int | str, flag: str) -> None:
        self._cmd("uid", "STORE", str(uid), "+FLAGS.SILENT", f"({flag})")
        if flag.upper() == "\\DELETED":
            self._cmd("uid", "EXPUNGE", str(uid)) if "UIDPLUS" in self.caps else self._cmd("expunge")

    def _unprocessed(self) -> list[str]:
        """SEARCH criteria for what still needs processing in ``folder``."""
        criteria = ["UNDELETED"]
        for target in (self.done_target, self.failed_target):
            if is_flag(target):
                criteria += _UNFLAGGED[target.upper()].split() if target.upper() in _UNFLAGGED \
                    else ["UNKEYWORD", target]
        return criteria

    # -- iteration ---------------------------------------------------------

    def __iter__(self) -> Iterator[Item]:
        if self.watch:
            self._catch_sigterm()
        self._open()
        while not self._stop:
            try:
                yield from self._drain()
                self._flush()
                if not self.watch or self._stop:
                    return
                self._wait()
                if self.claim_folder and time.monotonic() - self._recovered >= self.claim_timeout:
                    self._recover()  # a worker that died while we watch: do not wait for our restart
            except _Lost as e:
                self.conn = None
                if not self.watch:
                    raise TransientError(f"imap {self.account}: connection lost: {e}")
                log.warning("imap %s: connection lost (%s); reconnecting", self.account, e)
                self._reopen()

    def _open(self) -> None:
        self._connect()
        self._replay_moves()
        if self.claim_folder:
            self._recover()

    def _reopen(self) -> None:
        delay = 1.0
        while not self._stop:
            try:
                self._open()
                return
            except (TransientError, _Lost) as e:
                log.warning("imap %s: %s; retrying in %.0fs", self.account, e, delay)
                self._sleep(delay)
                delay = min(delay * 2, 300)

    def _drain(self) -> Iterator[Item]:
        if not self.claim_folder:
            self._select(self.folder)
            for uid, size in self._sizes(self._unprocessed()):
                if self._stop:
                    return
                yield from self._offer(self.folder, uid, size)
            return
        while not self._stop:
            self._select(self.claim_folder)
            for uid, size in self._sizes(["UNDELETED"]):
                if self._stop:
                    return
                yield from self._offer(self.claim_folder, uid, size)
            if self._claim() == 0:
                return

    def _claim(self) -> int:
        """Claim up to ``claim_batch`` messages of ``folder`` and move them into this worker's claim folder."""
        assert self.claim_folder
        self._select(self.folder)
        self._release_orphans()
        typ, data = self._cmd("uid", "SEARCH", "UNDELETED", "UNKEYWORD", CLAIMED)
        uids = sorted(int(x) for x in (data[0] or b"").split()) if typ == "OK" else []
        won: list[int] = []
        for start in range(0, len(uids), 50):
            if self._stop or len(won) >= self.claim_batch:
                break
            for uid, modseq, _ in self._modseqs(uids[start:start + 50]):
                if len(won) >= self.claim_batch:
                    break
                if self._take(self.folder, uid, modseq, claim=True, move=False):
                    won.append(uid)
        if not won:
            return 0
        # Claimed but not yet moved: recorded, so that if we die now the next start on this host releases them
        # (and any worker does after claim_timeout). One MOVE for the batch: Dovecot spends ~8 ms per MOVE.
        intents = [f"claim:{self._safe(self.worker)}:{self._uidvalidity}:{uid}:{self.folder}" for uid in won]
        self.state.begin_many(intents)
        assert self.claim_folder
        self._move(",".join(map(str, won)), self.claim_folder)
        self.state.forget_many(intents)
        return len(won)

    def _modseqs(self, uids: list[int]) -> list[tuple[int, int, bool]]:
        """(uid, MODSEQ, has CLAIMED) of messages in the selected folder."""
        if not uids:
            return []
        typ, data = self._cmd("uid", "FETCH", ",".join(map(str, uids)), "(MODSEQ FLAGS)")
        out = []
        for line in data or []:
            text = line[0] if isinstance(line, tuple) else line
            u, m = re.search(rb"UID (\d+)", text or b""), re.search(rb"MODSEQ \((\d+)\)", text or b"")
            if u and m:
                out.append((int(u.group(1)), int(m.group(1)), CLAIMED.encode().lower() in text.lower()))
        return sorted(out)

    def _take(self, folder: str, uid: int, modseq: int, claim: bool, move: bool = True) -> bool:
        """Flip CLAIMED on one message, on condition nobody changed it since ``modseq``; the winner moves it."""
        assert self.conn is not None
        untagged = self.conn.untagged_responses
        untagged.pop("FETCH", None)
        typ, data = self._cmd("_simple_command", "UID", "STORE", str(uid), f"(UNCHANGEDSINCE {modseq})",
                              "+FLAGS" if claim else "-FLAGS", f"({CLAIMED})")
        fetched = untagged.pop("FETCH", [])
        won = (typ == "OK" and b"MODIFIED" not in (data[0] or b"").upper()
               and any(re.search(rb"UID %d\b" % uid, f or b"") for f in fetched))
        if won and move:
            assert self.claim_folder
            won = self._move(uid, self.claim_folder)
        return won

    def _release_orphans(self) -> None:
        """Release claims in ``folder`` that nobody moved for ``claim_timeout`` (their worker died)."""
        typ, data = self._cmd("uid", "SEARCH", "UNDELETED", "KEYWORD", CLAIMED)
        uids = sorted(int(x) for x in (data[0] or b"").split()) if typ == "OK" else []
        now, seen = time.monotonic(), {}
        for uid, modseq, _ in self._modseqs(uids):
            slot = (self._uidvalidity, uid)
            first = self._orphans.get(slot)
            if first is None or first[0] != modseq:
                seen[slot] = (modseq, now)
            elif now - first[1] >= self.claim_timeout:
                if self._take(self.folder, uid, modseq, claim=False, move=False):
                    log.warning("imap %s: released UID %d of %s, claimed %.0fs ago by a worker that never moved "
                                "it", self.account, uid, self.folder, now - first[1])
            else:
                seen[slot] = first
        self._orphans = seen

    def _offer(self, folder: str, uid: int, size: int) -> Iterator[Item]:
        """Yield one message unless it is in progress, oversized, already done or a known poison."""
        self._maybe_flush()
        uv = self._select(folder)
        slot = (folder, uv, uid)
        if any(m.folder == folder and m.uidvalidity == uv and m.uid == uid for m in self._moves):
            return  # finished, its move not sent yet
        if slot in self._pending:
            item, since = self._pending[slot]
            if not self.watch or time.monotonic() - since < self.retry:
                return
            log.info("imap %s: retrying %s after a temporary failure", self.account, item.origin)
            self.state.release(item.key.msgkey)
        origin = f"imap://{self.user}@{self.host}/{folder};UIDVALIDITY={uv}/;UID={uid}"
        if size > self.max_bytes:
            reason = f"message of {size} bytes is larger than max_bytes={self.max_bytes}"
            self._dispose_failed(folder, uid, origin, reason)
            return
        raw = self._fetch(uid)
        if raw is None:  # expunged meanwhile
            return
        key = message_key(raw)
        seen = self.state.get(key)
        if seen and seen[0] == "done" and is_flag(self.done_target):
            log.info("imap %s: %s %s was already processed (UID space changed?): flagging it again",
                     self.account, origin, key)
            self._flag(uid, self.done_target)
            return
        if seen and seen[0] == "pending" and seen[1] >= self.max_attempts:
            reason = (f"abuso stopped {seen[1]} times while processing this message (crash, kill or out of "
                      "memory); not retried")
            self._dispose_failed(folder, uid, origin, reason)
            self.state.finish(key, "failed", reason)
            return
        self.state.begin(key)
        item = Item(raw, origin, ImapKey(folder, uv, uid, key))
        self._pending[slot] = (item, time.monotonic())
        yield item

    def _dispose_failed(self, folder: str, uid: int, origin: str, reason: str) -> None:
        log.error("imap %s: %s: %s; to %s", self.account, origin, reason, self.failed_target)
        self._select(folder)
        if is_flag(self.failed_target):
            self._flag(uid, self.failed_target)
        else:
            if folder == self.claim_folder:
                self._cmd("uid", "STORE", str(uid), "-FLAGS.SILENT", f"({CLAIMED})")
            self._move(uid, self.failed_target)

    def done(self, item: Item, error: str | None = None) -> None:
        """Move (or flag) the message to ``done``, or to ``failed`` with the reason logged.

        Moves are sent in batches (``move_batch``, at most ``move_delay`` late); until sent they are recorded in
        the state file, so that after a crash exactly these messages are moved, not processed again."""
        key: ImapKey = item.key
        self._pending.pop((key.folder, key.uidvalidity, key.uid), None)
        target = self.done_target if error is None else self.failed_target
        if error is not None:
            log.warning("imap %s: %s failed, to %s: %s", self.account, item.origin, target, error)
        move = _Move(key.folder, key.uidvalidity, key.uid, target, key.msgkey, hashlib.sha256(item.data).hexdigest(),
                     len(item.data))
        self.state.finish_and_move(key.msgkey, "done" if error is None else "failed", error,
                                   (move.folder, move.uidvalidity, move.uid, move.target, move.msgkey,
                                    move.sha256, move.size))
        if not self._moves:
            self._moves_since = time.monotonic()
        self._moves.append(move)
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if self._moves and (len(self._moves) >= self.move_batch
                            or time.monotonic() - self._moves_since >= self.move_delay):
            self._flush()

    def _flush(self) -> None:
        """Send the queued moves; on a broken connection reconnect once, else leave them to the next start."""
        if not self._moves:
            return
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self._connect()
                self._apply(self._moves)
                break
            except _Lost as e:
                self.conn = None
                if attempt == 2:
                    raise TransientError(f"imap {self.account}: cannot move {len(self._moves)} finished "
                                         f"message(s): {e}; they are moved at the next start")
        self.state.moved([(m.folder, m.uidvalidity, m.uid) for m in self._moves])
        self._moves = []

    def _apply(self, moves: list[_Move]) -> None:
        """One STORE or MOVE per (folder, target), after checking the UIDs still mean the same messages."""
        groups: dict[tuple[str, str], list[_Move]] = {}
        for m in moves:
            groups.setdefault((m.folder, m.target), []).append(m)
        for (folder, target), group in groups.items():
            # Selected long ago, the folder may have been recreated by another session meanwhile (and Dovecot
            # keeps answering for UIDs of the new one): SELECT afresh for the UIDVALIDITY the UIDs belong to.
            self._selected = None
            try:
                uv = self._select(folder)
            except TransientError:  # the folder is gone: nothing left to move
                log.warning("imap %s: folder %s is gone; %d finished message(s) not moved", self.account, folder,
                            len(group))
                continue
            uids = [m.uid for m in group if m.uidvalidity == uv]
            for m in group:
                if m.uidvalidity != uv:
                    found = self._find(m.msgkey, m.sha256, m.size)
                    if found is None:
                        log.warning("imap %s: UIDVALIDITY of %s changed and the message %s is no longer there: "
                                    "nothing to move", self.account, folder, m.msgkey)
                    else:
                        uids.append(found)
            if not uids:
                continue
            uidset = ",".join(str(u) for u in sorted(set(uids)))
            if is_flag(target):
                self._flag(uidset, target)
                continue
            if self.claim_prefix and folder.startswith(self.claim_prefix + self.sep):
                # leaving a claim folder: a human may move it back to the inbox, where it must look unclaimed
                self._cmd("uid", "STORE", uidset, "-FLAGS.SILENT", f"({CLAIMED})")
            if not self._move(uidset, target):
                log.warning("imap %s: UID(s) %s of %s were gone when moving them to %s", self.account, uidset,
                            folder, target)

    def _find(self, msgkey: str, sha256: str, size: int) -> int | None:
        """The UID, in the selected folder, of the message with exactly these bytes."""
        criteria = ["LARGER", str(size - 1), "SMALLER", str(size + 1)]
        if msgkey.startswith("mid:"):
            criteria += ["HEADER", "Message-ID", _q(msgkey[4:])]
        typ, data = self._cmd("uid", "SEARCH", *criteria)
        for uid in (data[0] or b"").split() if typ == "OK" else []:
            raw = self._fetch(int(uid))
            if raw is not None and hashlib.sha256(raw).hexdigest() == sha256:
                return int(uid)
        return None

    def _replay_moves(self) -> None:
        """Moves recorded before a crash: exactly those messages were finished."""
        moves = [_Move(*row) for row in self.state.moves()]
        if moves:
            log.warning("imap %s: moving %d message(s) finished before abuso stopped", self.account, len(moves))
            self._apply(moves)
            self.state.moved([(m.folder, m.uidvalidity, m.uid) for m in moves])

    def _recover(self) -> None:
        """Take over what dead workers of this host left: claims never moved, and their claim folders."""
        assert self.claim_prefix and self.claim_folder
        self._recovered = time.monotonic()
        if self.recover is False:
            return
        me = socket.gethostname()
        for intent in self.state.claims():
            _, worker, uv, uid, folder = intent.split(":", 4)
            if not self._recoverable(worker, me):
                continue
            if folder == self.folder and self._select(folder) == int(uv):
                self._cmd("uid", "STORE", uid, "-FLAGS.SILENT", f"({CLAIMED})")
                log.warning("imap %s: released UID %s of %s, claimed by %s which died before moving it",
                            self.account, uid, folder, worker)
            self.state.forget(intent)
        for folder in self._list(self.claim_prefix + self.sep + "%"):
            name = folder[len(self.claim_prefix) + len(self.sep):]
            if folder == self.claim_folder or not self._recoverable(name, me):
                continue
            self._select(folder)
            typ, data = self._cmd("uid", "SEARCH", "ALL")
            uids = sorted(int(x) for x in (data[0] or b"").split()) if typ == "OK" else []
            # Another worker may be recovering the same folder: flip the flag conditionally, the winner moves.
            moved = sum(self._take(folder, uid, modseq, claim=not has) for uid, modseq, has in self._modseqs(uids))
            self._delete_if_empty(folder)
            log.warning("imap %s: took over %d message(s) from the claim folder %s of a stopped worker",
                        self.account, moved, folder)

    def _recoverable(self, name: str, me: str) -> bool:
        if self.recover == "all" or (isinstance(self.recover, list) and name in self.recover):
            return True
        host, _, pid = name.rpartition("-")
        if host != self._safe(me) or not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except OSError:  # EPERM: alive, someone else's
            return False
        return False

    def _drop_claim_folder(self) -> None:
        """An empty claim folder is removed at a clean stop (every worker pid would leave one behind)."""
        if self.claim_folder:
            self._delete_if_empty(self.claim_folder)

    def _delete_if_empty(self, folder: str) -> None:
        """DELETE takes a folder's messages with it: only ever delete one that holds none."""
        if self._selected is not None:
            self._cmd("close")
            self._selected = None
        typ, data = self._cmd("status", _q(folder), "(MESSAGES)")
        m = re.search(rb"MESSAGES (\d+)", data[0] or b"") if typ == "OK" and data else None
        if m and int(m.group(1)) == 0:
            self._cmd("delete", _q(folder))

    # -- waiting -----------------------------------------------------------

    def _wait(self) -> None:
        """Until new mail may be there: IDLE if the server can, else sleep ``poll``."""
        self._select(self.folder)
        assert self.conn is not None
        # imaplib keeps every unsolicited response until asked for it: a months-long watch must not pile them up
        self.conn.untagged_responses.clear()
        if self.idle and "IDLE" in self.caps and self._idle(self.idle):
            return
        self._sleep(self.poll)
        self._cmd("noop")

    def _idle(self, seconds: float) -> bool:
        """One IDLE, ended by new mail, ``seconds``, or SIGTERM; False if the server refused it."""
        conn = self.conn
        assert conn is not None
        try:
            tag = conn._new_tag()
            conn.send(tag + b" IDLE\r\n")
            while True:
                line = conn.readline()
                if not line:
                    raise _Lost("connection closed at IDLE")
                if line.startswith(b"+"):
                    break
                if line.startswith(tag + b" "):
                    conn.tagged_commands.pop(tag, None)
                    return False
            deadline = time.monotonic() + seconds
            while not self._stop:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if not conn.buffered() and not select.select([conn.sock], [], [], min(left, 1.0))[0]:
                    continue
                line = conn.readline()
                if not line or line.startswith(b"* BYE"):
                    raise _Lost("the server ended the IDLE session")
                if _NEW_MAIL.match(line):
                    break
            conn.send(b"DONE\r\n")
            while True:
                line = conn.readline()
                if not line:
                    raise _Lost("connection closed after IDLE")
                if line.startswith(tag + b" "):
                    conn.tagged_commands.pop(tag, None)
                    return True
        except (OSError, imaplib.IMAP4.abort, InterruptedError) as e:
            raise _Lost(str(e))

    def close(self) -> None:
        """Log out; attempts that got no outcome (transient failure, stop) were not crashes: undo them."""
        for item, _ in self._pending.values():
            self.state.release(item.key.msgkey)
        self._pending.clear()
        if self._moves:
            try:
                self._flush()
            except (TransientError, ConfigError) as e:
                log.warning("imap %s: %s", self.account, e)
        if self.conn is not None:
            try:
                self._drop_claim_folder()
                self.conn.logout()
            except (imaplib.IMAP4.error, OSError, _Lost, TransientError):
                pass
            self.conn = None
        self.state.close()
        self._restore_sigterm()
