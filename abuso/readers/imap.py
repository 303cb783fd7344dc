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
- *Several workers* (``claim``): each message is claimed by exactly one worker and processed from that worker's
  own folder; what a dead worker left is taken over (``imap_claims.py``).
- *Watch.* After draining, wait with IDLE (RFC 2177, ``imap_wire.py``), re-issued every ``idle`` (default 25 min,
  under the 29-min server limit); servers without IDLE are polled every ``poll``. SIGTERM stops the wait, or ends
  the run after the current message.

The parts, one job each: ``imap_wire.py`` the connection (imaplib and its private parts, IDLE),
``imap_session.py`` login and folder operations, ``imap_claims.py`` the claim protocol, ``imap_moves.py`` the
move/flag queue, and this file the reader that drives them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import time
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from ..durations import parse_duration
from ..errors import ConfigError, TransientError
from ..lazy import lazy_compile
from ..options import Option
from .base import Item
from .imap_claims import CLAIMED, Claims
from .imap_moves import Move, MoveQueue
from .imap_session import ImapSession, is_flag, mutf7
from .imap_wire import Lost
from .mailbox import ACCOUNT_OPTIONS, MailboxReader

__all__ = ["CLAIMED", "ImapKey", "ImapReader", "is_flag", "message_key", "mutf7"]

log = logging.getLogger("abuso.reader.imap")

#: System flags and the SEARCH key that finds messages *without* them.
_UNFLAGGED = {"\\SEEN": "UNSEEN", "\\FLAGGED": "UNFLAGGED", "\\ANSWERED": "UNANSWERED", "\\DRAFT": "UNDRAFT",
              "\\DELETED": "UNDELETED"}
_MESSAGE_ID = lazy_compile(rb"^Message-ID:[ \t]*(?:\r?\n[ \t]+)?(<[^>\s]{1,500}>)", re.I | re.M)
_KEYWORD = lazy_compile(r"^\$?[A-Za-z0-9_.-]+$")


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


def message_key(raw: bytes) -> str:
    """The identity a message keeps when its UID changes: its Message-ID, else the hash of its bytes."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    m = _MESSAGE_ID.search(head)
    if m:
        return "mid:" + m.group(1).decode("ascii", "replace")
    return "sha256:" + hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class ImapKey:
    """Where a message is on the IMAP server."""

    folder: str
    uidvalidity: int
    uid: int
    #: ``message_key()`` of the bytes: finds the message again if the UID space changed.
    msgkey: str


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
        self.worker = str(o.get("worker") or f"{socket.gethostname()}-{os.getpid()}")
        self.idle = None if o.get("idle") is False else parse_duration(o.get("idle", "25m")).total_seconds()
        self.state.prune(parse_duration(o.get("keep", "90d")).total_seconds())
        self.session = ImapSession(o, self.host, self.port, self.tls, self.user, self.timeout, self.account,
                                   self.state)
        claim = o.get("claim", False)
        self.claims: Claims | None = None
        if claim:
            prefix = mutf7(claim if isinstance(claim, str) else "abuso-claim")
            self.claims = Claims(self.session, self.state, self.folder, prefix, self.worker,
                                 int(o.get("claim_batch", 10)),
                                 parse_duration(o.get("claim_timeout", "5m")).total_seconds(),
                                 o.get("recover", True), lambda: self._stop, self._connect)
        self.moves = MoveQueue(self.session, self.state, int(o.get("move_batch", 20)),
                               parse_duration(o.get("move_delay", "2s")).total_seconds(), self._connect,
                               lambda folder: self.claims.unclaim(folder) if self.claims else "")
        self._pending: dict[tuple[str, int, int], tuple[Item, float]] = {}

    @property
    def claim_folder(self) -> str | None:
        """This worker's claim folder (None without ``claim``, or before the first login)."""
        return self.claims.mine if self.claims else None

    # -- connection --------------------------------------------------------

    def _connect(self) -> None:
        """Log in; the done and failed folders and (with claim) this worker's claim folder exist afterwards."""
        self.session.connect()
        for target in (self.done_target, self.failed_target):
            if not is_flag(target):
                self.session.create(target)
        if self.claims:
            self.claims.setup()

    def _open(self) -> None:
        self._connect()
        self.moves.replay()
        if self.claims:
            self.claims.recover()

    def _reopen(self) -> None:
        delay = 1.0
        while not self._stop:
            try:
                self._open()
                return
            except (TransientError, Lost) as e:
                log.warning("imap %s: %s; retrying in %.0fs", self.account, e, delay)
                self._sleep(delay)
                delay = min(delay * 2, 300)

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
                self.moves.flush()
                if not self.watch or self._stop:
                    return
                self._wait()
                if self.claims and self.claims.due():
                    self.claims.recover()  # a worker that died while we watch: do not wait for our restart
            except Lost as e:
                self.session.drop()
                if not self.watch:
                    raise TransientError(f"imap {self.account}: connection lost: {e}")
                log.warning("imap %s: connection lost (%s); reconnecting", self.account, e)
                self._reopen()

    def _drain(self) -> Iterator[Item]:
        if not self.claims:
            self.session.select(self.folder)
            for uid, size in self.session.sizes(self._unprocessed()):
                if self._stop:
                    return
                yield from self._offer(self.folder, uid, size)
            return
        mine = self.claims.mine
        assert mine
        while not self._stop:
            self.session.select(mine)
            for uid, size in self.session.sizes(["UNDELETED"]):
                if self._stop:
                    return
                yield from self._offer(mine, uid, size)
            if self.claims.claim() == 0:
                return

    def _offer(self, folder: str, uid: int, size: int) -> Iterator[Item]:
        """Yield one message unless it is in progress, oversized, already done or a known poison."""
        self.moves.maybe_flush()
        uv = self.session.select(folder)
        slot = (folder, uv, uid)
        if self.moves.holds(folder, uv, uid):
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
        raw = self.session.fetch(uid)
        if raw is None:  # expunged meanwhile
            return
        key = message_key(raw)
        seen = self.state.get(key)
        if seen and seen[0] == "done" and is_flag(self.done_target):
            log.info("imap %s: %s %s was already processed (UID space changed?): flagging it again",
                     self.account, origin, key)
            self.session.flag(uid, self.done_target)
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
        self.session.select(folder)
        if is_flag(self.failed_target):
            self.session.flag(uid, self.failed_target)
        else:
            if self.claims and self.claims.holds(folder):
                self.session.unflag(uid, self.claims.unclaim(folder))
            self.session.move(uid, self.failed_target)

    def done(self, item: Item, error: str | None = None) -> None:
        """Move (or flag) the message to ``done``, or to ``failed`` with the reason logged.

        Moves are sent in batches (``move_batch``, at most ``move_delay`` late); until sent they are recorded in
        the state file, so that after a crash exactly these messages are moved, not processed again."""
        key: ImapKey = item.key
        self._pending.pop((key.folder, key.uidvalidity, key.uid), None)
        target = self.done_target if error is None else self.failed_target
        if error is not None:
            log.warning("imap %s: %s failed, to %s: %s", self.account, item.origin, target, error)
        move = Move(key.folder, key.uidvalidity, key.uid, target, key.msgkey, hashlib.sha256(item.data).hexdigest(),
                    len(item.data))
        self.moves.add(move, "done" if error is None else "failed", error)

    # -- waiting -----------------------------------------------------------

    def _wait(self) -> None:
        """Until new mail may be there: IDLE if the server can, else sleep ``poll``."""
        self.session.select(self.folder)
        # imaplib keeps every unsolicited response until asked for it: a months-long watch must not pile them up
        self.session.untagged.clear()
        if self.idle and "IDLE" in self.session.caps and self.session.idle(self.idle, lambda: self._stop):
            return
        self._sleep(self.poll)
        self.session.cmd("noop")

    def close(self) -> None:
        """Log out; attempts that got no outcome (transient failure, stop) were not crashes: undo them."""
        for item, _ in self._pending.values():
            self.state.release(item.key.msgkey)
        self._pending.clear()
        if len(self.moves):
            try:
                self.moves.flush()
            except (TransientError, ConfigError) as e:
                log.warning("imap %s: %s", self.account, e)
        if self.session.conn is not None:
            try:
                if self.claims:
                    self.claims.drop_folder()
            except (Lost, TransientError):
                pass
            self.session.logout()
        self.state.close()
        self._restore_sigterm()
