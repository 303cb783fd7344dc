"""The claim protocol (readers/imap_claims.py) against a real Dovecot, with the interleavings of two workers that
a loaded machine produces now and then forced by hooks: every message is processed, by exactly one worker.

What Dovecot does that they rest on (seen in a loop of tests/test_imap.py's two-worker test under load, where a
message was processed by both workers, and once two messages by neither): a session's FETCH may answer from the
latest index - a message already claimed by another session, at that session's MODSEQ - before the session is
told of the change; the notice, UID included, then arrives with the session's next UID command. A conditional
STORE of a flag the message already has, UNCHANGEDSINCE that MODSEQ, changes nothing and is answered OK.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from abuso.readers.imap import CLAIMED, ImapReader
from abuso.readers.imap_claims import mark
from abuso.readers.imap_session import quoted
from tests.dovecot import Dovecot, User, server
from tests.test_imap import drive, msg


@pytest.fixture
def user() -> User:
    dovecot: Dovecot = server()
    return dovecot.new_user()


def connected(user: User, tmp_path: Path, name: str) -> ImapReader:
    """A claiming reader, logged in (its claim folder made), INBOX selected; each with a state file of its own."""
    reader = ImapReader(user.options(state=str(tmp_path / f"state-{name}"), claim=True, worker=name))
    reader._connect()
    reader.session.select("INBOX")
    return reader


def latest(reader: ImapReader, uids: list[int]) -> list[tuple[int, int, bool]]:
    """(uid, MODSEQ, claimed) as a fresh SELECT sees them now: what another session's FETCH may be answered."""
    reader.session.reselect("INBOX")
    return reader.session.modseqs(uids, CLAIMED)


def test_a_conditional_store_that_changes_nothing_is_not_a_claim(user: User, tmp_path: Path) -> None:
    user.append(msg(1))
    a, b, c = (connected(user, tmp_path, name) for name in "abc")
    [(uid, modseq, claimed)] = a.session.modseqs([1], CLAIMED)
    assert not claimed
    assert a.session.store_unchanged(uid, modseq, True, CLAIMED)  # A claims it
    [(_, now, claimed)] = latest(c, [uid])
    assert claimed and now > modseq
    # B, not yet told of A's claim, stores the flag UNCHANGEDSINCE the MODSEQ A's claim gave: OK, and the FETCH
    # that comes with it is the notice of A's change. That is A's claim, not B's.
    assert not b.session.store_unchanged(uid, now, True, CLAIMED)
    # and a worker that releases (recover, release_orphans) wins only by its own change too
    [(_, now, _)] = latest(c, [uid])
    assert a.session.store_unchanged(uid, now, False, CLAIMED)
    [(_, released, claimed)] = latest(c, [uid])
    assert not claimed and released > now
    assert not b.session.store_unchanged(uid, released, False, CLAIMED)
    for r in (a, b, c):
        r.close()


def test_a_message_both_workers_tried_to_claim_is_processed_once_and_its_batch_by_the_other(
        user: User, tmp_path: Path) -> None:
    """B's claim round: SEARCH finds UIDs 1-6 unclaimed; A claims UID 1; B's FETCH of MODSEQs is answered from the
    latest index (UID 1 claimed, at A's MODSEQ) before B hears of it; A moves UID 1 away before B's MOVE. Unless B
    knows UID 1 is not its own, its MOVE of 1-3 fails as a whole (EXPUNGEISSUED) and 2 and 3 stay claimed in the
    inbox, processed by nobody (or, had B's MOVE come first, UID 1 is processed twice)."""
    messages = [msg(i) for i in range(6)]
    user.append(*messages)
    a, b, c = (connected(user, tmp_path, name) for name in "abc")
    b.claims.batch = 3
    modseqs, move = b.session.modseqs, b.session.move
    hooks = {"fetch": True, "move": True}

    def racing_modseqs(uids: list[int], flag: str) -> list[tuple[int, int, bool]]:
        if not uids or not hooks.pop("fetch", False):
            return modseqs(uids, flag)
        [(uid, modseq, _)] = a.session.modseqs([1], CLAIMED)
        assert a.claims.take("INBOX", uid, modseq, claim=True, move=False)
        return latest(c, uids)

    def racing_move(uid: Any, target: str) -> bool:
        if hooks.pop("move", False):
            assert a.session.move(1, a.claim_folder or "")
        return move(uid, target)

    b.session.modseqs = racing_modseqs  # type: ignore[method-assign]
    b.session.move = racing_move  # type: ignore[method-assign]
    got_b = drive(b)
    got_a = drive(a)
    c.close()
    assert not hooks  # the interleaving happened
    assert got_a == [messages[0]]
    assert sorted(got_a + got_b) == sorted(messages)  # each exactly once
    assert user.folder("INBOX") == []
    assert sorted(user.folder("Processed")) == sorted(messages)


def test_a_claimed_message_that_left_before_the_move_does_not_strand_the_rest_of_the_batch(
        user: User, tmp_path: Path) -> None:
    """Between the claim and its MOVE one message of the batch is moved away by someone else (a person, another
    client): Dovecot refuses the whole MOVE (EXPUNGEISSUED). The others must still be moved and processed, not
    left claimed in the inbox until some watching worker's claim_timeout."""
    messages = [msg(i) for i in range(5)]
    user.append(*messages)
    b = connected(user, tmp_path, "b")
    b.claims.batch = 3
    move = b.session.move
    hooks = {"move": True}

    def racing_move(uid: Any, target: str) -> bool:
        if hooks.pop("move", False):
            other = user.imap()
            other.create("Elsewhere")
            other.select("INBOX")
            assert other.uid("MOVE", "2", "Elsewhere")[0] == "OK"
            other.logout()
        return move(uid, target)

    b.session.move = racing_move  # type: ignore[method-assign]
    got = drive(b)
    assert not hooks
    assert sorted(got) == sorted(messages[:1] + messages[2:])
    assert user.folder("Elsewhere") == [messages[1]]
    assert user.folder("INBOX") == []


def dead_folder(user: User, messages: list[bytes], flagged: list[bool]) -> str:
    """A claim folder of a dead worker of this host holding ``messages``, each with CLAIMED or not: claim()
    leaves it set, a rescue of an older release may have left it cleared."""
    host = "".join(c if c.isalnum() or c in "_-" else "-" for c in socket.gethostname())
    folder = f"abuso-claim.{host}-999999999"  # no such pid
    conn = user.imap()
    conn.create(folder)
    conn.logout()
    user.append(*messages, folder=folder)
    conn = user.imap()
    conn.select(folder)
    for uid, flag in enumerate(flagged, 1):
        if flag:
            assert conn.uid("STORE", str(uid), "+FLAGS", f"({CLAIMED})")[0] == "OK"
    conn.logout()
    return folder


@pytest.mark.parametrize("flagged", [[True, True, True], [False, True, False]])
def test_two_workers_rescuing_one_dead_workers_folder_at_once_process_each_message_once(
        user: User, tmp_path: Path, flagged: list[bool]) -> None:
    """A and B start together and both take over the claim folder of a dead worker of their host (recover).
    A wins UID 1 (its conditional STORE) and moves it; Dovecot's MOVE copies the message into A's folder, then
    expunges it, and B's whole start runs in between: B reads UID 1 as A's STORE left it, and must not take it
    (on Maildir, B's MOVE of a message not yet expunged gives B a copy too: processed twice)."""
    messages = [msg(i) for i in range(3)]
    dead = dead_folder(user, messages, flagged)
    a, b = (connected(user, tmp_path, name) for name in "ab")
    move = a.session.move
    hooks = {"move": True}
    got_b: list[bytes] = []

    def racing_move(uid: Any, target: str) -> bool:
        if a.session.selected != dead or not hooks.pop("move", False):
            return move(uid, target)
        # Dovecot's MOVE: the copy ...
        typ, data = a.session.tagged("UID", "COPY", str(uid), quoted(target))
        assert typ == "OK" and b"COPYUID" in (data[0] or b"").upper()
        # ... B rescues the same folder meanwhile (its DELETE of the folder, once it looks empty, would come
        # after its MOVEs, not inside A's one MOVE: A deletes it when done) ...
        delete = b.session.delete_if_empty
        b.session.delete_if_empty = lambda folder: None if folder == dead else delete(folder)  # type: ignore
        got_b.extend(drive(b))
        # ... then the expunge of the source
        a.session.cmd("uid", "STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)")
        a.session.cmd("uid", "EXPUNGE", str(uid))
        return True

    a.session.move = racing_move  # type: ignore[method-assign]
    got_a = drive(a)
    assert not hooks  # the interleaving happened
    assert sorted(got_a + got_b) == sorted(messages)  # each exactly once
    assert messages[0] in got_a  # A won UID 1: B left it alone
    assert sorted(user.folder("Processed")) == sorted(messages)
    assert user.folder("INBOX") == []
    assert [f for f in user.folders() if f.startswith("abuso-claim")] == []  # none stranded


def test_a_rescue_leaves_what_a_running_worker_won_and_takes_over_every_other_mark(user: User,
                                                                                 tmp_path: Path) -> None:
    """The marks a dead worker's folder may hold: none; the owner's own (it had rescued the message into its
    folder); a rescuer's of this host that died between its STORE and its MOVE (its folder left behind); a
    worker's that has no claim folder any more; this worker's own (its connection was lost before its MOVE);
    and a running worker's on another host (it won the message and is about to move it: left to it)."""
    host = "".join(c if c.isalnum() or c in "_-" else "-" for c in socket.gethostname())
    messages = [msg(i) for i in range(6)]
    dead = dead_folder(user, messages, [True, True, False, True, True, False])
    rescuers = [f"{host}-999999999", f"{host}-999999998", "gone-7", "a", "elsewhere-1"]
    conn = user.imap()
    for name in (f"{host}-999999998", "elsewhere-1"):
        conn.create(f"abuso-claim.{name}")
    conn.select(dead)
    for uid, name in enumerate(rescuers, 2):
        assert conn.uid("STORE", str(uid), "+FLAGS", f"({mark(name)})")[0] == "OK"
    conn.logout()
    got = drive(connected(user, tmp_path, "a"))
    assert sorted(got) == sorted(messages[:5])
    assert user.folder(dead) == [messages[5]]  # still the running worker's
    assert sorted(user.folder("Processed")) == sorted(messages[:5])
    # leaving the claim folder, a message is no longer claimed nor marked
    flags = " ".join(user.flags("Processed")).lower()
    assert "processed" not in flags and CLAIMED.lower() not in flags and "$abusoby" not in flags
    assert [f for f in user.folders() if f.startswith("abuso-claim")] == sorted(["abuso-claim", dead,
                                                                                 "abuso-claim.elsewhere-1"])


def test_of_rescuers_replacing_flags_from_one_modseq_exactly_one_wins(user: User, tmp_path: Path) -> None:
    user.append(msg(1))
    a, b, c = (connected(user, tmp_path, name) for name in "abc")
    # a long worker name (a host's full name) makes a mark Dovecot still takes (keywords: 50 characters)
    long_a, long_b = "mx1-" + "x" * 60 + "-4242", "mx1-" + "x" * 60 + "-4243"
    assert len(mark(long_a)) == len(mark(long_b)) == 50 and mark(long_a) != mark(long_b)
    [(uid, modseq, flags)] = a.session.flagsets([1])
    assert a.session.replace_unchanged(uid, modseq, [*flags, CLAIMED, mark(long_a)], mark(long_a))
    assert not b.session.replace_unchanged(uid, modseq, [*flags, CLAIMED, mark(long_b)], mark(long_b))
    c.session.reselect("INBOX")
    [(_, now, flags)] = c.session.flagsets([uid])
    assert now > modseq and sorted(f.lower() for f in flags) == sorted([CLAIMED.lower(), mark(long_a).lower()])
    # a replace that changes nothing (B, told late, asks for exactly what A set) is no win
    assert not b.session.replace_unchanged(uid, now, flags, mark(long_a))
    for r in (a, b, c):
        r.close()


def test_a_rescuer_whose_folder_another_rescuer_emptied_and_deleted_goes_on(user: User, tmp_path: Path) -> None:
    """A and B rescue one dead worker's folder at once. A moves UID 1; before A's STORE on UID 2, B's whole
    start runs: B takes UIDs 2 and 3, finds the folder empty and deletes it. Dovecot then ends A's session (the
    mailbox A has selected is gone): A must log in again and go on, not fail its start with its messages left
    unprocessed in its folder."""
    messages = [msg(i) for i in range(3)]
    dead = dead_folder(user, messages, [True, True, True])
    a, b = (connected(user, tmp_path, name) for name in "ab")
    replace = a.session.replace_unchanged
    hooks = {"store": True}
    got_b: list[bytes] = []

    def racing_replace(uid: int, *args: Any) -> bool:
        if uid == 2 and hooks.pop("store", False):
            got_b.extend(drive(b))
            assert dead not in user.folders()
        return replace(uid, *args)

    a.session.replace_unchanged = racing_replace  # type: ignore[method-assign]
    got_a = drive(a)
    assert not hooks
    assert got_a == [messages[0]] and sorted(got_b) == sorted(messages[1:])
    assert sorted(user.folder("Processed")) == sorted(messages)
    assert [f for f in user.folders() if f.startswith("abuso-claim")] == []
