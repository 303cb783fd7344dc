"""The imap reader against a real Dovecot: TLS, moving and flagging, UIDVALIDITY, poison, claims, kill -9, IDLE."""

from __future__ import annotations

import hashlib
import imaplib
import io
import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from abuso.config import load
from abuso.errors import ConfigError
from abuso.readers.imap import ImapReader
from abuso.runner import Runner
from tests.conftest import NO_CORPUS
from tests.dovecot import Dovecot, User, recorded, recorders, server, stored, worker

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"


@pytest.fixture
def dovecot() -> Dovecot:
    return server()


@pytest.fixture
def user(dovecot: Dovecot) -> User:
    """A fresh account: every test has a mailbox of its own."""
    return dovecot.new_user()


def msg(i: int, body: str = "", mid: bool = True) -> bytes:
    head = f"Message-ID: <t{i}.{time.time_ns()}@test.invalid>\r\n" if mid else ""
    return (f"{head}From: reporter@example.org\r\nTo: abuse@example.net\r\nSubject: report {i}\r\n"
            f"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\n"
            f"Nov 24 09:59:01 host sshd[1]: Failed password for root from 192.0.2.{i % 250} port 22 ssh2\r\n"
            f"{body}").encode()


def sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def drive(reader: ImapReader, fail_on: bytes | None = None) -> list[bytes]:
    """The runner's contract, by hand: process, then done(item, None) or done(item, reason)."""
    seen = []
    try:
        for item in reader:
            seen.append(item.data)
            reader.done(item, "test failure" if fail_on and fail_on in item.data else None)
    finally:
        reader.close()
    return seen


def test_message_key_is_the_message_id_even_folded_else_the_hash() -> None:
    from abuso.readers.imap import message_key

    assert message_key(b"Subject: x\r\nMessage-Id: <a.1@example.org>\r\n\r\nbody") == "mid:<a.1@example.org>"
    assert message_key(b"Message-ID:\r\n <b.2@example.org>\r\n\r\nbody") == "mid:<b.2@example.org>"
    # only the header counts: a Message-ID line in the body (a quoted report) is not this message's
    raw = b"Subject: x\r\n\r\nMessage-ID: <quoted@example.org>\r\n"
    assert message_key(raw) == "sha256:" + sha(raw)


# -- with the real runner -------------------------------------------------------------------------------------


def test_runner_moves_done_and_quarantined_messages_and_never_sets_seen(user: User, tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    messages = [msg(i) for i in range(4)]
    big = msg(9, body="x" * 5000)
    user.append(*messages[:2], big, *messages[2:])
    config = load({"parsers": [], "defaults": {"max_bytes": 4000}, "quarantine": str(tmp_path / "q")})
    reader = ImapReader(user.options(state=str(tmp_path / "state")))
    with caplog.at_level(logging.WARNING, logger="abuso.reader.imap"):
        summary = Runner(config, reader, out=io.StringIO(), err=io.StringIO(), progress=False).run()
    assert (summary.total, summary.quarantined) == (5, 1)
    assert user.folder("INBOX") == []
    assert user.folder("Processed") == messages
    assert user.folder("Failed") == [big]
    assert not any("Seen" in f for f in user.flags("Processed") + user.flags("Failed"))
    assert any("to Failed" in r.message and "max_bytes=4000" in r.message for r in caplog.records)
    assert list((tmp_path / "q").iterdir())  # the runner kept a copy too


def test_a_second_run_finds_nothing_and_new_mail_is_read(user: User, tmp_path: Path) -> None:
    first = [msg(i) for i in range(3)]
    user.append(*first)
    assert drive(ImapReader(user.options(state=str(tmp_path / "s")))) == first
    assert drive(ImapReader(user.options(state=str(tmp_path / "s")))) == []
    later = msg(7)
    user.append(later)
    assert drive(ImapReader(user.options(state=str(tmp_path / "s")))) == [later]


def test_corpus_messages_arrive_byte_for_byte(user: User, tmp_path: Path) -> None:
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix not in (".md", ".py"))[:15]
    if not files:
        pytest.skip(NO_CORPUS)
    raws = [p.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for p in files]
    user.append(*raws)
    assert drive(ImapReader(user.options(state=str(tmp_path / "s")))) == raws


# -- TLS and credentials ----------------------------------------------------------------------------------------


def test_starttls_and_plain(dovecot: Dovecot, user: User, tmp_path: Path) -> None:
    user.append(msg(1))
    got = drive(ImapReader(user.options(port=dovecot.ports["imap"], ssl="starttls", state=str(tmp_path / "s"),
                                        done="$Done1")))
    assert len(got) == 1
    got = drive(ImapReader(user.options(port=dovecot.ports["imap"], ssl=False, ca_file=None,
                                        state=str(tmp_path / "s2"), done="$Done2")))
    assert len(got) == 1


@pytest.mark.parametrize("port, tls, host, ca, why", [
    ("imaps", True, "127.0.0.1", None, "unable to get local issuer certificate"),
    ("imaps", True, "127.0.0.1", "other", "unable to get local issuer certificate"),
    ("imap", "starttls", "127.0.0.1", "other", "unable to get local issuer certificate"),
    ("imaps", True, "localhost", "ca", "Hostname mismatch"),
])
def test_untrusted_certificate_is_refused(dovecot: Dovecot, user: User, tmp_path: Path, port: str, tls: object,
                                          host: str, ca: str | None, why: str) -> None:
    user.append(msg(1))
    ca_file = {None: None, "ca": str(dovecot.ca), "other": str(dovecot.other_ca)}[ca]
    reader = ImapReader(user.options(host=host, port=dovecot.ports[port], ssl=tls, ca_file=ca_file,
                                     state=str(tmp_path / "s")))
    with pytest.raises(ConfigError, match=why) as e:
        next(iter(reader))
    assert e.value.key == "ca_file"
    assert len(user.folder("INBOX")) == 1


def test_wrong_password_from_the_environment_names_password_env(user: User, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABUSO_WRONG_IMAP_PW", user.password + "-not-it")
    reader = ImapReader(user.options(password_env="ABUSO_WRONG_IMAP_PW", password_file=None,
                                     state=str(tmp_path / "s")))
    with pytest.raises(ConfigError, match="refused") as e:
        next(iter(reader))
    assert e.value.key == "password_env"


def test_wrong_password_is_a_config_error_that_never_shows_the_password(user: User, tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    secret = user.password + "-not-it"
    pw = tmp_path / "pw"
    pw.write_text(secret + "\n")
    reader = ImapReader(user.options(password_env=None, password_file=str(pw), state=str(tmp_path / "s")))
    with caplog.at_level(logging.DEBUG), pytest.raises(ConfigError, match="refused") as e:
        next(iter(reader))
    assert secret not in str(e.value) and e.value.key == "password_file"
    assert "b'[" not in str(e.value)                        # the server's words, not a bytes repr
    assert secret not in caplog.text
    pw.write_text(user.password + "\n")
    user.append(msg(1))
    assert len(drive(ImapReader(user.options(password_env=None, password_file=str(pw),
                                             state=str(tmp_path / "s"))))) == 1


def test_non_ascii_password_from_a_group_readable_file(dovecot: Dovecot, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    user = dovecot.new_user(unicode=True)
    assert not user.password.isascii()
    pw = tmp_path / "pw"
    pw.write_text(user.password + "\n", encoding="utf-8")
    pw.chmod(0o640)
    m = msg(1)
    conn = imaplib.IMAP4("127.0.0.1", dovecot.ports["imap"])
    conn.authenticate("PLAIN", lambda _: f"\0{user.name}\0{user.password}".encode())
    conn.append("INBOX", None, None, m)
    conn.logout()
    with caplog.at_level(logging.WARNING):
        got = drive(ImapReader(user.options(password_env=None, password_file=str(pw), state=str(tmp_path / "s"))))
    assert got == [m]
    assert "chmod 600" in caplog.text and user.password not in caplog.text


def test_config_rejects_an_inline_password_with_file_line_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "abuso.yaml"
    cfg.write_text("parsers: []\nreader:\n  imap:\n    host: mail.example.net\n    user: abuse\n"
                   "    password: hunter2\n")
    with pytest.raises(ConfigError) as e:
        load(cfg)
    assert e.value.line == 6 and e.value.key == "reader.imap.password" and "hunter2" not in str(e.value)
    cfg.write_text("parsers: []\nreader:\n  imap: {host: h, user: u, password_env: X, claim: true, done: '\\Seen'}\n")
    with pytest.raises(ConfigError, match="must be folders"):
        load(cfg)
    cfg.write_text("parsers: []\nreader:\n  pop3: {host: pop.example.net, user: u, password_env: X, ssl: false}\n")
    with pytest.raises(ConfigError, match="in clear") as e:
        load(cfg)
    assert e.value.key == "reader.pop3.ssl"


# -- flags, UIDVALIDITY, MOVE-less servers ----------------------------------------------------------------------


def test_flag_mode_keeps_messages_in_place_and_skips_flagged_ones(user: User, tmp_path: Path) -> None:
    messages = [msg(i) for i in range(3)]
    user.append(*messages)
    opts = user.options(done="$AbusoDone", failed="$AbusoFailed", state=str(tmp_path / "s"))
    assert drive(ImapReader(opts), fail_on=b"report 1") == messages
    flags = user.flags()
    assert "$AbusoDone" in flags[0] and "$AbusoFailed" in flags[1] and "$AbusoDone" in flags[2]
    assert not any("Seen" in f for f in flags)
    assert drive(ImapReader(opts)) == []
    assert user.folders() == ["INBOX"]


def test_recreated_folder_neither_repeats_nor_skips_in_flag_mode(user: User, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """AbuseHelper #102: the folder comes back (restore, migration) with a new UIDVALIDITY and no flags."""
    old = [msg(i) for i in range(3)]
    user.append(*old, folder="INBOX")
    conn = user.imap()
    conn.create("abuse")
    conn.logout()
    user.append(*old, folder="abuse")
    opts = user.options(folder="abuse", done="\\Flagged", state=str(tmp_path / "s"))
    assert drive(ImapReader(opts)) == old
    conn = user.imap()
    conn.delete("abuse")
    conn.create("abuse")
    conn.logout()
    new = msg(5)
    user.append(old[1], new, old[0], old[2], folder="abuse")  # same UIDs 1..3 now hold other messages
    with caplog.at_level(logging.WARNING, logger="abuso.reader.imap"):
        assert drive(ImapReader(opts)) == [new]
    assert "UIDVALIDITY of abuse changed" in caplog.text
    assert all("Flagged" in f for f in user.flags("abuse"))


def test_uidvalidity_change_while_processing_moves_the_right_message(user: User, tmp_path: Path) -> None:
    a, b = msg(1), msg(2)
    conn = user.imap()
    conn.create("abuse")
    conn.logout()
    user.append(a, b, folder="abuse")
    reader = ImapReader(user.options(folder="abuse", state=str(tmp_path / "s")))
    it = iter(reader)
    item = next(it)
    assert item.data == a and item.key.uid == 1
    conn = user.imap()
    conn.delete("abuse")
    conn.create("abuse")
    conn.logout()
    user.append(b, a, folder="abuse")  # UID 1 is now b
    reader.done(item, None)
    reader.close()
    assert user.folder("Processed") == [a]
    assert user.folder("abuse") == [b]


def test_folder_names_beyond_ascii(user: User, tmp_path: Path) -> None:
    from abuso.readers.imap import mutf7

    assert mutf7("Bearbeitet & geprüft") == "Bearbeitet &- gepr&APw-ft"
    assert mutf7("日本語") == "&ZeVnLIqe-"
    m = msg(1)
    user.append(m)
    assert drive(ImapReader(user.options(state=str(tmp_path / "s"), done="Bearbeitet & geprüft"))) == [m]
    assert "Bearbeitet &- gepr&APw-ft" in user.folders()
    assert user.folder("Bearbeitet &- gepr&APw-ft") == [m]


def test_server_without_move_gets_copy_delete_expunge(user: User, tmp_path: Path) -> None:
    class NoMove(ImapReader):
        def _connect(self) -> None:
            super()._connect()
            self.session.caps.discard("MOVE")

    messages = [msg(i) for i in range(3)]
    user.append(*messages)
    assert drive(NoMove(user.options(state=str(tmp_path / "s"))), fail_on=b"report 2") == messages
    assert user.folder("INBOX") == []
    assert user.folder("Processed") == messages[:2] and user.folder("Failed") == messages[2:]


def test_oversized_message_goes_to_failed_without_being_fetched(user: User, tmp_path: Path) -> None:
    small, big = msg(1), msg(2, body="y" * 20000)
    user.append(big, small)
    assert drive(ImapReader(user.options(max_bytes=10000, state=str(tmp_path / "s")))) == [small]
    assert user.folder("Failed") == [big]


# -- never lose, never loop: kill -9, poison, claims ------------------------------------------------------------


def test_transient_failure_leaves_the_message_for_the_next_run(user: User, tmp_path: Path) -> None:
    messages = [msg(i) for i in range(3)]
    user.append(*messages)
    opts = user.options(state=str(tmp_path / "s"), max_attempts=1)
    reader = ImapReader(opts)
    for item in reader:
        if b"report 1" not in item.data:  # report 1: no done() at all, as the runner does on TransientError
            reader.done(item, None)
    reader.close()
    assert user.folder("INBOX") == [messages[1]]
    # a clean stop did not count the attempt as a crash, even with max_attempts: 1
    assert drive(ImapReader(opts)) == [messages[1]]
    assert user.folder("Processed") == [messages[0], messages[2], messages[1]]


def test_finished_messages_whose_move_was_not_sent_are_moved_not_reprocessed(user: User, tmp_path: Path) -> None:
    messages = [msg(i) for i in range(3)]
    user.append(*messages)
    reader = ImapReader(user.options(state=str(tmp_path / "s"), move_batch=100, move_delay="1h"))
    it = iter(reader)
    for _ in messages:
        reader.done(next(it), None)
    reader.session.conn.sock.close()  # dies before the batched MOVE was sent (no close())
    assert user.folder("INBOX") == messages
    fresh = [msg(9)]
    user.append(*fresh)
    assert drive(ImapReader(user.options(state=str(tmp_path / "s")))) == fresh
    assert user.folder("Processed") == messages + fresh


def test_message_that_kills_the_worker_goes_to_failed_after_max_attempts(user: User, tmp_path: Path) -> None:
    messages = [msg(i) for i in range(4)]
    poison = msg(2, body="POISON\r\n")
    user.append(messages[0], poison, *messages[1:])
    log = tmp_path / "log"
    opts = user.options(state=str(tmp_path / "s"), max_attempts=2)
    record = {"log": str(log), "die_on": "POISON"}
    for _ in range(2):
        assert worker(tmp_path, {"imap": opts}, record).wait(60) == -signal.SIGKILL
    p = worker(tmp_path, {"imap": opts}, record)
    assert p.wait(60) == 0
    assert sorted(set(recorded(log))) == sorted(sha(m) for m in messages)
    assert user.folder("Failed") == [poison]
    assert user.folder("INBOX") == []
    assert sorted(user.folder("Processed")) == sorted(messages)


@pytest.mark.parametrize("claim", [False, True])
def test_kill_9_mid_batch_then_rerun_loses_nothing(user: User, tmp_path: Path, claim: bool) -> None:
    messages = [msg(i) for i in range(30)]
    user.append(*messages)
    log = tmp_path / "log"
    opts = user.options(state=str(tmp_path / "s"), claim=claim, claim_batch=5)
    store = tmp_path / "store"
    p = worker(tmp_path, {"imap": opts}, {"log": str(log), "delay": 0.03}, store=store)
    deadline = time.monotonic() + 30
    while len(recorded(log)) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    p.kill()
    p.wait()
    done_before = recorded(log)
    assert 8 <= len(done_before) < 30
    if claim:  # the dead worker's claim folder holds what it had claimed
        assert any(f.startswith("abuso-claim") for f in user.folders())
    assert worker(tmp_path, {"imap": opts}, {"log": str(log)}, store=store).wait(60) == 0
    got = recorded(log)
    # at-least-once: every message recorded; at most the one in flight at the kill recorded twice
    assert sorted(set(got)) == sorted(sha(m) for m in messages)
    assert len(got) - len(set(got)) <= 1
    assert stored(store) == sorted(sha(m) for m in messages)  # exactly once in the store
    assert user.folder("INBOX") == []
    assert sorted(user.folder("Processed")) == sorted(messages)  # each exactly once
    assert not any(f.startswith("abuso-claim") for f in user.folders())


def test_two_workers_on_one_mailbox_process_every_message_exactly_once(user: User, tmp_path: Path) -> None:
    messages = [msg(i) for i in range(60)]
    user.append(*messages)
    log = tmp_path / "log"
    opts = user.options(state=str(tmp_path / "s"), claim=True, claim_batch=3)
    procs = [worker(tmp_path, {"imap": opts}, {"log": str(log), "delay": 0.04}) for _ in range(2)]
    assert [p.wait(120) for p in procs] == [0, 0]
    got = recorded(log)
    assert sorted(got) == sorted(sha(m) for m in messages)  # no message twice, none missing
    assert recorders(log) == {str(p.pid) for p in procs}  # both took part
    assert sorted(user.folder("Processed")) == sorted(messages)
    assert user.folder("INBOX") == []
    errs = [f.read_text() for f in tmp_path.glob("spec-*.err")]
    assert all("Traceback" not in e for e in errs), errs


@pytest.mark.parametrize("claim", [False, True])
def test_parallel_runner_processes_every_message_once(user: User, tmp_path: Path, claim: bool) -> None:
    """-j 2: done() comes late and out of step with the reader's own position in the mailbox."""
    messages = [msg(i) for i in range(40)]
    user.append(*messages)
    log = tmp_path / "log"
    p = worker(tmp_path, {"imap": user.options(state=str(tmp_path / "s"), claim=claim)}, {"log": str(log)}, jobs=2)
    assert p.wait(60) == 0
    assert sorted(recorded(log)) == sorted(sha(m) for m in messages)
    assert sorted(user.folder("Processed")) == sorted(messages)
    assert user.folder("INBOX") == []


def test_live_workers_claim_is_not_taken_but_a_dead_ones_is(user: User, tmp_path: Path) -> None:
    """recover: only claim folders of workers of this host whose process is gone."""
    a, b = msg(1), msg(2)
    conn = user.imap()
    import os
    import socket

    host = "".join(c if c.isalnum() or c in "_-" else "-" for c in socket.gethostname())
    conn.create(f"abuso-claim.{host}-{os.getpid()}")  # alive: this test process
    conn.create(f"abuso-claim.{host}-999999999")  # no such pid
    conn.logout()
    user.append(a, folder=f"abuso-claim.{host}-{os.getpid()}")
    user.append(b, folder=f"abuso-claim.{host}-999999999")
    got = drive(ImapReader(user.options(state=str(tmp_path / "s"), claim=True, worker="w1")))
    assert got == [b]
    assert user.folder(f"abuso-claim.{host}-{os.getpid()}") == [a]
    assert f"abuso-claim.{host}-999999999" not in user.folders()


def test_claim_left_between_claim_and_move_by_a_dead_worker_of_this_host_is_released(
        user: User, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import socket

    from abuso.readers.mailbox_state import MailboxState

    m = msg(1)
    user.append(m)
    conn = user.imap()
    conn.select("INBOX")
    uv = int(conn.untagged_responses["UIDVALIDITY"][-1])
    conn.uid("STORE", "1", "+FLAGS", "($AbusoClaimed)")  # what the dead worker did before it died
    conn.logout()
    host = "".join(c if c.isalnum() or c in "_-" else "-" for c in socket.gethostname())
    state = MailboxState(tmp_path / "s", f"imap://{user.name}@127.0.0.1")
    state.begin_many([f"claim:{host}-999999999:{uv}:1:INBOX"])
    state.close()
    opts = user.options(state=str(tmp_path / "s"), claim=True)
    with caplog.at_level(logging.WARNING, logger="abuso.reader.imap"):
        assert drive(ImapReader(opts)) == [m]
    assert "died before moving it" in caplog.text
    assert user.folder("Processed") == [m]
    assert "AbusoClaimed" not in " ".join(user.flags("Processed"))


def watching(reader: ImapReader) -> tuple[threading.Thread, list[bytes]]:
    """Run a watching reader in a thread that marks everything done; stop it with reader.stop()."""
    got: list[bytes] = []

    def run() -> None:
        for item in reader:
            got.append(item.data)
            reader.done(item, None)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, got


#: Waits stretch on a loaded machine (CI runs beside other work); a passing wait returns at once anyway.
SLACK = float(os.environ.get("ABUSO_TEST_SLACK", "4"))


def wait_for(cond, seconds: float = 10) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds * SLACK
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(cond())


@pytest.mark.parametrize("marked", [False, True])
def test_claim_of_a_worker_elsewhere_that_never_moved_it_is_released_after_claim_timeout(
        user: User, tmp_path: Path, marked: bool) -> None:
    """marked: a message a human moved back from a claim folder, with its claim and the mark of its rescue by a
    worker still running; released, the mark goes too (it would stand for a rescue in progress)."""
    m = msg(1)
    user.append(m)
    conn = user.imap()
    conn.select("INBOX")
    conn.uid("STORE", "1", "+FLAGS", "($AbusoClaimed)")  # claimed by a worker on another host that then died
    if marked:
        conn.create("abuso-claim.elsewhere-1")
        conn.uid("STORE", "1", "+FLAGS", "($AbusoBy-elsewhere-1)")
    conn.logout()
    reader = ImapReader(user.options(state=str(tmp_path / "s"), claim=True, claim_timeout="1s", idle="1s",
                                     watch=True))
    t, got = watching(reader)
    assert wait_for(lambda: got == [m], 15)
    reader.stop()
    t.join(5)
    reader.close()
    assert user.folder("Processed") == [m]
    flags = " ".join(user.flags("Processed")).lower()
    assert "$abusoclaimed" not in flags and "$abusoby" not in flags


def test_watch_reconnects_when_the_server_drops_the_connection(dovecot: Dovecot, user: User, tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    import subprocess

    reader = ImapReader(user.options(state=str(tmp_path / "s"), watch=True, idle="60s"))
    with caplog.at_level(logging.WARNING, logger="abuso.reader.imap"):
        before = user.logins("imap")
        t, got = watching(reader)
        assert wait_for(lambda: user.logins("imap") > before)  # connected: there is a session to drop
        subprocess.run(["doveadm", "-c", str(dovecot.root / "dovecot.conf"), "kick", user.name], check=True,
                       capture_output=True)
        assert wait_for(lambda: "reconnecting" in caplog.text)
        m = msg(1)
        user.append(m)
        assert wait_for(lambda: got == [m], 15)
        reader.stop()
        t.join(5)
    reader.close()
    assert user.folder("Processed") == [m]


def test_recover_named_workers_of_other_hosts(user: User, tmp_path: Path) -> None:
    a, b = msg(1), msg(2)
    conn = user.imap()
    for name in ("abuso-claim.mx2-example-net-4242", "abuso-claim.mx3-example-net-77"):
        conn.create(name)
    conn.logout()
    user.append(a, folder="abuso-claim.mx2-example-net-4242")
    user.append(b, folder="abuso-claim.mx3-example-net-77")
    got = drive(ImapReader(user.options(state=str(tmp_path / "s"), claim=True,
                                        recover=["mx2-example-net-4242"])))
    assert got == [a]  # mx3 is not ours to judge: it may be alive
    assert user.folder("abuso-claim.mx3-example-net-77") == [b]
    assert "abuso-claim.mx2-example-net-4242" not in user.folders()


# -- watch: IDLE and SIGTERM -------------------------------------------------------------------------------------


def test_watch_wakes_on_new_mail_with_idle_and_stops_on_request(user: User, tmp_path: Path) -> None:
    reader = ImapReader(user.options(state=str(tmp_path / "s"), watch=True, idle="60s", poll="60s"))
    got: list[tuple[float, bytes]] = []

    def run() -> None:
        for item in reader:
            got.append((time.monotonic(), item.data))
            reader.done(item, None)

    before = user.logins("imap")
    t = threading.Thread(target=run)
    t.start()
    assert wait_for(lambda: user.logins("imap") > before)  # connected, so new mail is pushed, not found
    sent = []
    for i in range(3):
        m = msg(i)
        sent.append((time.monotonic(), m))
        user.append(m)
        deadline = time.monotonic() + 10
        while len(got) <= i and time.monotonic() < deadline:
            time.sleep(0.01)
    reader.stop()
    t.join(5)
    assert not t.is_alive()
    reader.close()
    assert [m for _, m in got] == [m for _, m in sent]
    # pushed by IDLE, not found by a 60 s poll
    assert max(g - s for (g, _), (s, _) in zip(got, sent, strict=True)) < 5
    assert user.folder("Processed") == [m for _, m in sent]


def test_watch_polls_when_idle_is_off_and_sigterm_ends_it_cleanly(user: User, tmp_path: Path) -> None:
    log = tmp_path / "log"
    opts = user.options(state=str(tmp_path / "s"), watch=True, idle=False, poll="1s", claim=True)
    p = worker(tmp_path, {"imap": opts}, {"log": str(log)})
    m = msg(1)
    user.append(m)
    deadline = time.monotonic() + 15
    while not recorded(log) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert recorded(log) == [sha(m)]
    p.send_signal(signal.SIGTERM)
    assert p.wait(10) == 0
    assert user.folder("Processed") == [m]
    assert not any(f.startswith("abuso-claim") for f in user.folders())


def test_watch_retries_a_transient_failure_after_retry(user: User, tmp_path: Path) -> None:
    m = msg(1)
    user.append(m)
    reader = ImapReader(user.options(state=str(tmp_path / "s"), watch=True, idle="0.3s", retry="1s"))
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
    assert user.folder("Processed") == [m]


def test_a_watching_worker_takes_over_from_a_worker_killed_beside_it(user: User, tmp_path: Path) -> None:
    messages = [msg(i) for i in range(20)]
    user.append(*messages)
    log = tmp_path / "log"
    opts = user.options(state=str(tmp_path / "s"), claim=True, claim_batch=10)
    p = worker(tmp_path, {"imap": opts}, {"log": str(log), "delay": 5})  # claims 10, then is stuck on the first
    assert wait_for(lambda: any(f.startswith("abuso-claim") for f in user.folders()) and
                    len(user.folder("INBOX")) == 10, 15)
    reader = ImapReader(dict(opts, watch=True, idle="0.5s", claim_timeout="1s"))
    t, got = watching(reader)
    assert wait_for(lambda: len(got) == 10, 15)  # what the other worker had not claimed
    assert len(got) == 10 and p.poll() is None
    p.kill()  # dies with 10 claimed messages; the watcher is already running
    p.wait()
    assert wait_for(lambda: len(got) == 20, 20)
    reader.stop()
    t.join(5)
    reader.close()
    assert sorted(got) == sorted(messages)
    assert sorted(user.folder("Processed")) == sorted(messages)
    assert not any(f.startswith("abuso-claim") for f in user.folders())


def test_two_watching_workers_share_new_mail_exactly_once(user: User, tmp_path: Path) -> None:
    """The deployment shape: several `abuso run --watch` with claim: true, mail arriving while they IDLE."""
    log = tmp_path / "log"
    opts = user.options(state=str(tmp_path / "s"), claim=True, claim_batch=2, watch=True, idle="60s")
    procs = [worker(tmp_path, {"imap": opts}, {"log": str(log), "delay": 0.02}) for _ in range(2)]
    assert wait_for(lambda: len([f for f in user.folders() if f.startswith("abuso-claim.")]) == 2, 15)
    messages = [msg(i) for i in range(30)]
    for m in messages:
        user.append(m)
    assert wait_for(lambda: len(recorded(log)) >= 30, 30)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    assert [p.wait(15) for p in procs] == [0, 0]
    assert sorted(recorded(log)) == sorted(sha(m) for m in messages)
    assert sorted(user.folder("Processed")) == sorted(messages)
    assert user.folder("INBOX") == []
    assert not any(f.startswith("abuso-claim") for f in user.folders())
