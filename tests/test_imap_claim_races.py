"""The claim protocol (readers/imap_claims.py) against a real Dovecot, with the interleavings of two workers that
a loaded machine produces now and then forced by hooks: every message is processed, by exactly one worker.

What Dovecot does that they rest on (seen in a loop of tests/test_imap.py's two-worker test under load, where a
message was processed by both workers, and once two messages by neither): a session's FETCH may answer from the
latest index - a message already claimed by another session, at that session's MODSEQ - before the session is
told of the change; the notice, UID included, then arrives with the session's next UID command. A conditional
STORE of a flag the message already has, UNCHANGEDSINCE that MODSEQ, changes nothing and is answered OK.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from abuso.readers.imap import CLAIMED, ImapReader
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
