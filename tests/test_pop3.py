"""The pop3 reader against a real Dovecot: TLS, UIDL bookkeeping, delete after success, kill -9, poison."""

from __future__ import annotations

import hashlib
import logging
import signal
import time
from pathlib import Path

import pytest

from abuso.errors import ConfigError
from abuso.readers.pop3 import Pop3Reader
from tests.conftest import wait_until
from tests.dovecot import Dovecot, User, recorded, server, stored, worker


@pytest.fixture
def dovecot() -> Dovecot:
    return server()


@pytest.fixture
def user(dovecot: Dovecot) -> User:
    """A fresh account: every test has a mailbox of its own."""
    return dovecot.new_user()


def opts(user: User, tmp_path: Path, **extra: object) -> dict:
    o = user.options(port=user.server.ports["pop3s"], state=str(tmp_path / "state"))
    o.update(extra)
    return o


def msg(i: int, body: str = "") -> bytes:
    """Ending in CRLF: POP3 cannot tell a message without a final line end from one with it."""
    return (f"Message-ID: <p{i}.{time.time_ns()}@test.invalid>\r\nFrom: reporter@example.org\r\n"
            f"Subject: report {i}\r\n\r\nspam from 198.51.100.{i}\r\n{body}\r\n").encode()


def sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def drive(reader: Pop3Reader, fail_on: bytes | None = None, skip: bytes | None = None) -> list[bytes]:
    """The runner's contract by hand; ``skip``: no done() at all, as on a transient failure."""
    seen = []
    try:
        for item in reader:
            seen.append(item.data)
            if skip and skip in item.data:
                continue
            reader.done(item, "test failure" if fail_on and fail_on in item.data else None)
    finally:
        reader.close()
    return seen


def test_uidl_bookkeeping_never_hands_out_a_message_twice(user: User, tmp_path: Path) -> None:
    first = [msg(i) for i in range(3)]
    user.append(*first)
    assert drive(Pop3Reader(opts(user, tmp_path))) == first
    assert drive(Pop3Reader(opts(user, tmp_path))) == []
    new = msg(9)
    user.append(new)
    # the same mailbox over STARTTLS on the plain port shares the state
    assert drive(Pop3Reader(opts(user, tmp_path, port=user.server.ports["pop3"], ssl="starttls"))) == [new]
    assert user.folder("INBOX") == first + [new]  # delete is off: all still there


def test_delete_only_after_success_and_failures_are_not_reread(user: User, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    ok1, bad, later, ok2 = msg(1), msg(2, "BAD"), msg(3, "LATER"), msg(4)
    user.append(ok1, bad, later, ok2)
    with caplog.at_level(logging.WARNING, logger="abuso.reader.pop3"):
        assert drive(Pop3Reader(opts(user, tmp_path, delete=True)), fail_on=b"BAD", skip=b"LATER") == \
            [ok1, bad, later, ok2]
    assert "test failure" in caplog.text
    assert user.folder("INBOX") == [bad, later]  # the failed one stays for a human, the transient one for a retry
    assert drive(Pop3Reader(opts(user, tmp_path, delete=True))) == [later]
    assert user.folder("INBOX") == [bad]


def test_processed_but_not_quit_is_deleted_next_time_not_reprocessed(user: User, tmp_path: Path) -> None:
    a, b = msg(1), msg(2)
    user.append(a, b)
    reader = Pop3Reader(opts(user, tmp_path, delete=True))
    for item in reader:
        reader.done(item, None)
        if item.data == b:
            break
    reader.conn.sock.close()  # dies before QUIT: POP3 rolls the DELEs back
    assert user.folder("INBOX") == [a, b]
    assert drive(Pop3Reader(opts(user, tmp_path, delete=True))) == []
    assert user.folder("INBOX") == []


def test_long_lines_and_bytes_survive(user: User, tmp_path: Path) -> None:
    raw = msg(1, "<p>" + "x" * 20000 + "</p>\r\n.leading dot\r\n..two dots\r\n.")
    user.append(raw)
    assert drive(Pop3Reader(opts(user, tmp_path))) == [raw]


@pytest.mark.parametrize("port, tls, ca, why", [
    ("pop3s", True, None, "unable to get local issuer certificate"),
    ("pop3", "starttls", "other", "unable to get local issuer certificate"),
])
def test_untrusted_certificate_is_refused(dovecot: Dovecot, user: User, tmp_path: Path, port: str, tls: object,
                                          ca: str | None, why: str) -> None:
    ca_file = str(dovecot.other_ca) if ca else None
    with pytest.raises(ConfigError, match=why):
        next(iter(Pop3Reader(opts(user, tmp_path, port=dovecot.ports[port], ssl=tls, ca_file=ca_file))))


def test_wrong_password_refused_and_not_shown(user: User, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABUSO_WRONG_PW", "wrong-" + user.password)
    with pytest.raises(ConfigError, match="refused") as e:
        next(iter(Pop3Reader(opts(user, tmp_path, password_env="ABUSO_WRONG_PW"))))
    assert user.password not in str(e.value)
    assert e.value.key == "password_env"                    # where the wrong password came from
    assert "b'" not in str(e.value) and 'b"' not in str(e.value)   # the server's words, not a bytes repr


def test_kill_9_mid_batch_with_delete_loses_nothing(user: User, tmp_path: Path) -> None:
    messages = [msg(i) for i in range(25)]
    user.append(*messages)
    log = tmp_path / "log"
    o = opts(user, tmp_path, delete=True)
    store = tmp_path / "store"
    p = worker(tmp_path, {"pop3": o}, {"log": str(log), "delay": 0.03}, store=store)
    deadline = time.monotonic() + 30
    while len(recorded(log)) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    p.kill()
    p.wait()
    assert 8 <= len(recorded(log)) < 25
    assert len(user.folder("INBOX")) == 25  # killed before QUIT: no deletion happened
    assert worker(tmp_path, {"pop3": o}, {"log": str(log)}, store=store).wait(60) == 0
    got = recorded(log)
    assert sorted(set(got)) == sorted(sha(m) for m in messages)
    assert len(got) - len(set(got)) <= 1  # at most the message in flight at the kill
    assert stored(store) == sorted(sha(m) for m in messages)  # exactly once in the store
    assert user.folder("INBOX") == []


def test_parallel_runner_deletes_what_finished_after_the_session(user: User, tmp_path: Path) -> None:
    messages = [msg(i) for i in range(12)]
    user.append(*messages)
    log = tmp_path / "log"
    assert worker(tmp_path, {"pop3": opts(user, tmp_path, delete=True)}, {"log": str(log)}, jobs=2).wait(60) == 0
    assert sorted(recorded(log)) == sorted(sha(m) for m in messages)
    assert user.folder("INBOX") == []


def test_message_that_kills_the_worker_is_given_up_after_max_attempts(user: User, tmp_path: Path) -> None:
    good, poison = msg(1), msg(2, "POISON")
    user.append(poison, good)
    log = tmp_path / "log"
    o = opts(user, tmp_path, delete=True, max_attempts=2)
    for _ in range(2):
        assert worker(tmp_path, {"pop3": o}, {"log": str(log), "die_on": "POISON"}).wait(60) == -signal.SIGKILL
    assert worker(tmp_path, {"pop3": o}, {"log": str(log), "die_on": "POISON"}).wait(60) == 0
    assert recorded(log) == [sha(good)]
    assert user.folder("INBOX") == [poison]  # left for a human, and not read again:
    assert drive(Pop3Reader(o)) == []


def test_watch_polls_and_sigterm_ends_it_cleanly(user: User, tmp_path: Path) -> None:
    log = tmp_path / "log"
    p = worker(tmp_path, {"pop3": opts(user, tmp_path, delete=True, watch=True, poll="1s")}, {"log": str(log)})
    wait_until(lambda: user.logouts("pop3") >= 1, what="the first poll of an empty mailbox")
    m = msg(1)
    user.append(m)
    deadline = time.monotonic() + 15
    while not recorded(log) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert recorded(log) == [sha(m)]
    deadline = time.monotonic() + 5
    while user.folder("INBOX") and time.monotonic() < deadline:  # deleted at the QUIT ending that poll's session
        time.sleep(0.05)
    assert user.folder("INBOX") == []
    p.send_signal(signal.SIGTERM)
    assert p.wait(10) == 0


def test_watch_retries_a_transient_failure_after_retry(user: User, tmp_path: Path) -> None:
    import threading

    m = msg(1)
    user.append(m)
    reader = Pop3Reader(opts(user, tmp_path, delete=True, watch=True, poll="0.2s", retry="1s"))
    seen: list[float] = []

    def run() -> None:
        for item in reader:
            seen.append(time.monotonic())
            if len(seen) > 1:  # the first attempt failed transiently: no done()
                reader.done(item, None)
                reader.stop()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(15)
    reader.close()
    assert len(seen) == 2 and seen[1] - seen[0] >= 1
    assert user.folder("INBOX") == []
