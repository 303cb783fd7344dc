"""Finished messages leave the folder in batches: the move (or flag) queue of the imap reader.

One UID MOVE costs Dovecot ~8 ms whether it moves one message or ten, so finished messages are queued and sent
together (``move_batch``, at most ``move_delay`` late). Until sent they are recorded in the state file, and a
UID is never reused within a UIDVALIDITY, so after a crash exactly the finished messages are moved without being
processed again (:meth:`MoveQueue.replay`). If a folder's UIDVALIDITY changed meanwhile, each message is found
again by Message-ID, size and bytes rather than touching whatever now has its UID.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from ..errors import TransientError
from .imap_session import ImapSession, is_flag
from .imap_wire import Lost
from .mailbox_state import MailboxState

log = logging.getLogger("abuso.reader.imap")


@dataclass(frozen=True)
class Move:
    """A message to move or flag once its analysis is done."""

    folder: str
    uidvalidity: int
    uid: int
    target: str
    msgkey: str
    sha256: str
    size: int


class MoveQueue:
    """``reconnect`` logs in again (and makes the folders the reader needs) when the connection broke;
    ``unclaim(folder)`` names the flags a message loses when it leaves ``folder`` (a claim folder: CLAIMED and
    the mark of a rescue), space-separated; empty for others."""

    def __init__(self, session: ImapSession, state: MailboxState, batch: int, delay: float,
                 reconnect: Callable[[], None], unclaim: Callable[[str], str]) -> None:
        self.session, self.state, self.batch, self.delay = session, state, batch, delay
        self.reconnect, self.unclaim = reconnect, unclaim
        self.moves: list[Move] = []
        self._since = 0.0

    def __len__(self) -> int:
        return len(self.moves)

    def holds(self, folder: str, uidvalidity: int, uid: int) -> bool:
        """Is this message finished, its move not sent yet?"""
        return any(m.folder == folder and m.uidvalidity == uidvalidity and m.uid == uid for m in self.moves)

    def add(self, move: Move, status: str, reason: str | None) -> None:
        """Record the outcome and the move in the state file (one transaction), then queue it."""
        self.state.finish_and_move(move.msgkey, status, reason, (move.folder, move.uidvalidity, move.uid,
                                                                 move.target, move.msgkey, move.sha256, move.size))
        if not self.moves:
            self._since = time.monotonic()
        self.moves.append(move)
        self.maybe_flush()

    def maybe_flush(self) -> None:
        if self.moves and (len(self.moves) >= self.batch or time.monotonic() - self._since >= self.delay):
            self.flush()

    def flush(self) -> None:
        """Send the queued moves; on a broken connection reconnect once, else leave them to the next start."""
        if not self.moves:
            return
        for attempt in (1, 2):
            try:
                if self.session.conn is None:
                    self.reconnect()
                self.apply(self.moves)
                break
            except Lost as e:
                self.session.drop()
                if attempt == 2:
                    raise TransientError(f"imap {self.session.account}: cannot move {len(self.moves)} finished "
                                         f"message(s): {e}; they are moved at the next start")
        self.state.moved([(m.folder, m.uidvalidity, m.uid) for m in self.moves])
        self.moves = []

    def replay(self) -> None:
        """Moves recorded before a crash: exactly those messages were finished."""
        moves = [Move(*row) for row in self.state.moves()]
        if moves:
            log.warning("imap %s: moving %d message(s) finished before abuso stopped", self.session.account,
                        len(moves))
            self.apply(moves)
            self.state.moved([(m.folder, m.uidvalidity, m.uid) for m in moves])

    def apply(self, moves: list[Move]) -> None:
        """One STORE or MOVE per (folder, target), after checking the UIDs still mean the same messages."""
        s = self.session
        groups: dict[tuple[str, str], list[Move]] = {}
        for m in moves:
            groups.setdefault((m.folder, m.target), []).append(m)
        for (folder, target), group in groups.items():
            try:
                uv = s.reselect(folder)
            except TransientError:  # the folder is gone: nothing left to move
                log.warning("imap %s: folder %s is gone; %d finished message(s) not moved", s.account, folder,
                            len(group))
                continue
            uids = [m.uid for m in group if m.uidvalidity == uv]
            for m in group:
                if m.uidvalidity != uv:
                    found = s.find(m.msgkey, m.sha256, m.size)
                    if found is None:
                        log.warning("imap %s: UIDVALIDITY of %s changed and the message %s is no longer there: "
                                    "nothing to move", s.account, folder, m.msgkey)
                    else:
                        uids.append(found)
            if not uids:
                continue
            uidset = ",".join(str(u) for u in sorted(set(uids)))
            if is_flag(target):
                s.flag(uidset, target)
                continue
            flags = self.unclaim(folder)
            if flags:
                # leaving a claim folder: a human may move it back to the inbox, where it must look unclaimed
                s.unflag(uidset, flags)
            if not s.move(uidset, target):
                log.warning("imap %s: UID(s) %s of %s were gone when moving them to %s", s.account, uidset,
                            folder, target)
