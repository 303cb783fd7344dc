"""Several workers on one mailbox (``claim``): who takes which message, and what happens when one dies.

A worker claims a message with a conditional STORE of ``$AbusoClaimed`` (``UNCHANGEDSINCE`` its MODSEQ: of
racing workers exactly one succeeds), then UID MOVEs it into its own folder ``abuso-claim<sep><host>-<pid>``
(``<sep>``: the server's hierarchy separator) and processes it from there. A message claimed but never moved
(the worker died in between) is released at the next start on the same host, or by any worker once it has sat
unchanged for ``claim_timeout``.

Messages left in a claim folder by a dead worker of this host are taken over (rescued) at start-up and then
every ``claim_timeout`` (``recover``), by a conditional STORE too: it replaces the message's flags by its own
plus ``$AbusoClaimed`` and the rescuer's mark ``$AbusoBy-<worker>`` (:func:`mark`); the winner moves it into
its own folder. A rescuer that reads a message after another's STORE and before its MOVE finds it marked by a
worker that is not stopped (it has a claim folder, and is not of this host with its process gone, nor named in
``recover``) and leaves it to that worker: each message is rescued by exactly one worker. Every other mark
counts as none: the dead folder's owner's own (it rescued the message into its folder), or a worker's that
died between its STORE and its MOVE, which the next rescuer takes over. A message's mark is cleared with
``$AbusoClaimed`` when it leaves a claim folder for ``done`` or ``failed``. The rescuer that finds the folder
empty deletes it; another still in it then loses its session (Dovecot), logs in again and goes on.
"""
from __future__ import annotations

import hashlib
import imaplib
import logging
import os
import re
import socket
import time
from typing import Any, Callable

from ..errors import ConfigError, TransientError
from .imap_session import ImapSession
from .imap_wire import Lost
from .mailbox_state import MailboxState

log = logging.getLogger("abuso.reader.imap")

#: Set by a conditional STORE (CONDSTORE, RFC 7162) to claim a message: the server applies one of two racing
#: STOREs with the same UNCHANGEDSINCE and answers MODIFIED to the other. (Dovecot's MOVE alone is *not* a claim:
#: on Maildir two sessions racing UID MOVE on one message both get a copy, measured: ~60% of 200 contested.)
CLAIMED = "$AbusoClaimed"
#: A rescued message's mark (a keyword): ``$AbusoBy-`` and the rescuer's name.
MARK = "$AbusoBy-"


def mark(name: str) -> str:
    """The keyword a rescue by the worker ``name`` (its folder level, :func:`safe`) sets: Dovecot takes
    keywords of up to 50 characters, so a long name is cut and made unique again by a hash."""
    name = safe(name)
    if len(MARK) + len(name) > 50:
        name = name[:28] + "-" + hashlib.sha256(name.encode()).hexdigest()[:12]
    return MARK + name


def marks(flags: list[str]) -> list[str]:
    """The rescue marks among a message's flags."""
    return [f for f in flags if f.lower().startswith(MARK.lower())]


def safe(name: str) -> str:
    """A worker name usable as one folder level (host names hold dots, a common separator)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)


class Claims:
    """The claim protocol of one worker: ``prefix`` is the claim folders' parent (modified UTF-7)."""

    def __init__(self, session: ImapSession, state: MailboxState, folder: str, prefix: str, worker: str,
                 batch: int, timeout: float, recover: Any, stopped: Callable[[], bool],
                 reconnect: Callable[[], None]) -> None:
        self.session, self.state, self.folder, self.prefix = session, state, folder, prefix
        self.worker, self.batch, self.timeout, self.recover_which = worker, batch, timeout, recover
        self.stopped, self.reconnect = stopped, reconnect
        #: This worker's claim folder, known once connected (it needs the server's separator).
        self.mine: str | None = None
        #: Claimed messages seen still in ``folder``: (uidvalidity, uid) -> (modseq, first seen).
        self._orphans: dict[tuple[int, int], tuple[int, float]] = {}
        self._recovered = 0.0

    @property
    def account(self) -> str:
        return self.session.account

    def setup(self) -> None:
        """After each login: the server must be able to claim; this worker's folder exists."""
        s = self.session
        missing = {"MOVE", "CONDSTORE", "UIDPLUS"} - s.caps
        if missing:
            raise ConfigError(f"imap {s.host}:{s.port}: claim needs an IMAP server with {', '.join(sorted(missing))}",
                              key="claim")
        s.cmd("enable", "CONDSTORE")
        self.mine = self.prefix + s.sep + safe(self.worker)
        s.create(self.mine)

    def holds(self, folder: str) -> bool:
        """Is ``folder`` a claim folder (of any worker)? A message leaving one loses its CLAIMED flag."""
        return folder.startswith(self.prefix + self.session.sep)

    def due(self) -> bool:
        """Time to look for dead workers again (a watching worker must not wait for its own restart)."""
        return time.monotonic() - self._recovered >= self.timeout

    # -- claiming ----------------------------------------------------------------------------------------------

    def claim(self) -> int:
        """Claim up to ``batch`` messages of ``folder`` and move them into this worker's claim folder."""
        assert self.mine
        s = self.session
        s.select(self.folder)
        self.release_orphans()
        uids = s.search("UNDELETED", "UNKEYWORD", CLAIMED)
        won: list[int] = []
        for start in range(0, len(uids), 50):
            if self.stopped() or len(won) >= self.batch:
                break
            for uid, modseq, claimed in s.modseqs(uids[start:start + 50], CLAIMED):
                if len(won) >= self.batch:
                    break
                # claimed already: by another worker since our SEARCH, not ours to take
                if not claimed and s.store_unchanged(uid, modseq, True, CLAIMED):
                    won.append(uid)
        if not won:
            return 0
        # Claimed but not yet moved: recorded, so that if we die now the next start on this host releases them
        # (and any worker does after claim_timeout). One MOVE for the batch: Dovecot spends ~8 ms per MOVE.
        intents = [f"claim:{safe(self.worker)}:{s.uidvalidity}:{uid}:{self.folder}" for uid in won]
        self.state.begin_many(intents)
        if not s.move(",".join(map(str, won)), self.mine):
            # One of them left the folder meanwhile (someone moved it away) and Dovecot moved none of them
            # (EXPUNGEISSUED): each on its own, or the rest would stay claimed here, processed by nobody.
            for uid in won:
                s.move(uid, self.mine)
        self.state.forget_many(intents)
        return len(won)

    def take(self, folder: str, uid: int, modseq: int, claim: bool, move: bool = True, *more: str) -> bool:
        """Set (or clear) CLAIMED (and ``more``) on one message, on condition nobody changed it since
        ``modseq``; the winner moves it."""
        won = self.session.store_unchanged(uid, modseq, claim, CLAIMED, *more)
        if won and move:
            assert self.mine
            won = self.session.move(uid, self.mine)
        return won

    def unclaim(self, folder: str) -> str:
        """The flags a message loses when it leaves ``folder`` for good: none unless a claim folder, whose
        owner's mark the message may carry (a human may move it back to the inbox: it must look unclaimed)."""
        return f"{CLAIMED} {mark(folder[len(self.prefix) + len(self.session.sep):])}" if self.holds(folder) else ""

    def release_orphans(self) -> None:
        """Release claims in ``folder`` that nobody moved for ``timeout`` (their worker died)."""
        s = self.session
        uids = s.search("UNDELETED", "KEYWORD", CLAIMED)
        now, seen = time.monotonic(), {}
        for uid, modseq, flags in s.flagsets(uids):
            slot = (s.uidvalidity, uid)
            first = self._orphans.get(slot)
            if first is None or first[0] != modseq:
                seen[slot] = (modseq, now)
            elif now - first[1] >= self.timeout:
                # a rescue's mark too (a message a human moved back from a claim folder): it means nothing here,
                # and once the message is claimed again and rescued it would stand for a rescue in progress
                if self.take(self.folder, uid, modseq, False, False, *marks(flags)):
                    log.warning("imap %s: released UID %d of %s, claimed %.0fs ago by a worker that never moved "
                                "it", self.account, uid, self.folder, now - first[1])
            else:
                seen[slot] = first
        self._orphans = seen

    # -- dead workers ------------------------------------------------------------------------------------------

    def recover(self) -> None:
        """Take over what dead workers of this host left: claims never moved, and their claim folders."""
        assert self.mine
        s = self.session
        self._recovered = time.monotonic()
        if self.recover_which is False:
            return
        me = socket.gethostname()
        for intent in self.state.claims():
            _, worker, uv, uid, folder = intent.split(":", 4)
            if not self.recoverable(worker, me):
                continue
            if folder == self.folder and s.select(folder) == int(uv):
                s.unflag(uid, CLAIMED)
                log.warning("imap %s: released UID %s of %s, claimed by %s which died before moving it",
                            self.account, uid, folder, worker)
            self.state.forget(intent)
        folders = s.folders(self.prefix + s.sep + "%")
        names = [folder[len(self.prefix) + len(s.sep):] for folder in folders]
        workers = {mark(name).lower(): name for name in names}  # the workers a mark may name
        for folder, name in zip(folders, names, strict=True):
            if folder == self.mine or not self.recoverable(name, me):
                continue
            moved = 0
            try:
                s.select(folder)
                for number, modseq, flags in s.flagsets(s.search("ALL")):
                    moved += self.rescue(name, number, modseq, flags, workers, me)
                s.delete_if_empty(folder)
            except (Lost, TransientError, imaplib.IMAP4.error):
                # Another worker rescuing it too found it empty and deleted it under us (each message went to
                # one of us): Dovecot ends this session, or refuses its commands. Log in again and go on.
                s.logout()
                self.reconnect()
                if s.folders(folder):
                    raise
            log.warning("imap %s: took over %d message(s) from the claim folder %s of a stopped worker",
                        self.account, moved, folder)

    def rescue(self, owner: str, uid: int, modseq: int, flags: list[str], workers: dict[str, str],
               me: str) -> bool:
        """Take over one message of the claim folder of the stopped worker ``owner`` (selected), unless another
        rescuer that is not stopped won it already (its mark); ``workers``: the worker of each claim folder's
        mark, lowercase."""
        assert self.mine
        mine = mark(self.worker)
        found = marks(flags)
        if any(m.lower() == mine.lower() for m in found):
            won = True  # won by this worker already (a connection lost before its MOVE): worker names are unique
        else:
            for m in found:
                rescuer = workers.get(m.lower())
                if rescuer is not None and rescuer != owner and not self.dead(rescuer, me):
                    return False  # another worker's, about to move it
            # Racing rescuers read one MODSEQ: exactly one STORE changes the message. One that reads it after
            # that change sees the winner's mark.
            kept = [f for f in flags if f not in found and f.lower() != CLAIMED.lower()]
            won = self.session.replace_unchanged(uid, modseq, kept + [CLAIMED, mine], mine)
        return won and self.session.move(uid, self.mine)

    def recoverable(self, name: str, me: str) -> bool:
        """May this worker take over from the worker ``name``? Named in ``recover``, or of this host and dead."""
        return self.recover_which == "all" or self.dead(name, me)

    def dead(self, name: str, me: str) -> bool:
        """Is the worker ``name`` known to be stopped: named in ``recover``, or of this host and its process
        gone? (``all`` takes over every worker's folder, but says nothing of which are still running.)"""
        which = self.recover_which
        if isinstance(which, list) and name in which:
            return True
        host, _, pid = name.rpartition("-")
        if host != safe(me) or not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except OSError:  # EPERM: alive, someone else's
            return False
        return False

    def drop_folder(self) -> None:
        """An empty claim folder is removed at a clean stop (every worker pid would leave one behind)."""
        if self.mine:
            self.session.delete_if_empty(self.mine)
