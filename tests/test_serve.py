"""`abuso serve`: LMTP delivery by a real client (smtplib.LMTP), replies after processing, nothing lost."""

from __future__ import annotations

import json
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("aiosmtpd")
from abuso.storage import Store  # noqa: E402
from tests.pg import pg_server, pg_url  # noqa: E402,F401  (fixtures)

ABUSO = [sys.executable, "-m", "abuso"]


def report(n: int, ip: str = "192.0.2.7") -> bytes:
    """A report with CRLF line ends, as an MTA sends it over LMTP."""
    return (f"From: Alice <alice@reporter.example>\nTo: abuse@example.net\nSubject: ssh {n}\n"
            f"Date: Sat, 28 Nov 2026 10:00:00 +0000\nMessage-ID: <s{n}@reporter.example>\n\n"
            f"Nov 28 09:59:01 h sshd[{n}]: Failed password for root from {ip} port {1024 + n} ssh2\n"
            ).replace("\n", "\r\n").encode()


class Server:
    #: Every server a test started: the autouse fixture below kills what a failed test left running.
    started: list[Server] = []

    def __init__(self, tmp_path: Path, config: str, name: str = "lmtp", jobs: int = 2) -> None:
        self.cfg = tmp_path / f"{name}.yaml"
        self.cfg.write_text(config)
        self.sock = tmp_path / f"{name}.sock"
        self.out = tmp_path / f"{name}.out"
        self.err = tmp_path / f"{name}.err"
        self.jobs = jobs
        self.extra: list[str] = []
        self.command = ABUSO
        self.proc: subprocess.Popen | None = None

    def start(self) -> Server:
        self.proc = subprocess.Popen(self.command + ["serve", "-c", str(self.cfg), "--lmtp", f"unix:{self.sock}",
                                              "-j", str(self.jobs), "-v", *self.extra],
                                     stdout=self.out.open("ab"), stderr=self.err.open("ab"))
        Server.started.append(self)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:           # ready when it accepts a connection
            assert self.proc.poll() is None, self.err.read_text()
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(self.sock))
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("abuso serve did not start listening")

    def client(self) -> smtplib.LMTP:
        return smtplib.LMTP(str(self.sock))

    def deliver(self, data: bytes) -> tuple[int, str]:
        with self.client() as c:
            try:
                c.sendmail("reporter@example.org", ["abuse@example.net"], data)
                return 250, ""
            except smtplib.SMTPDataError as e:
                return e.smtp_code, e.smtp_error.decode()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=120)


def store_config(tmp_path: Path, url: str | None = None, extra: str = "") -> str:
    store = {"path": str(tmp_path / "store")}
    if url:
        store["url"] = url
    return (f"parsers: [log]\nquarantine: {tmp_path / 'q'}\ndefaults: {{max_bytes: 20000}}\n"
            f"processors:\n  - store: {json.dumps(store)}\n{extra}")


def stored(tmp_path: Path, url: str | None = None) -> int:
    with Store.open(tmp_path / "store", url, create=False) as s:
        return s.index.count()[0]


@pytest.fixture(autouse=True)
def no_server_left_behind():
    yield
    while Server.started:
        srv = Server.started.pop()
        if srv.proc is not None and srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path, store_config(tmp_path)).start()
    yield srv
    if srv.proc and srv.proc.poll() is None:
        srv.proc.kill()
        srv.proc.wait()


def test_each_message_is_answered_after_it_is_stored(server: Server, tmp_path: Path) -> None:
    for n in range(3):
        assert server.deliver(report(n)) == (250, "")
        assert stored(tmp_path) == n + 1                 # 250 came after the store had it
    assert server.deliver(report(0)) == (250, "")        # re-delivered: stored once
    assert stored(tmp_path) == 3
    assert server.stop() == 0
    lines = [json.loads(line) for line in server.out.read_text().splitlines()]
    assert [len(r["incidents"]) for r in lines] == [1, 1, 1, 1]
    assert "message-id <s1@reporter.example>; 1 incident (192.0.2.7)" in server.err.read_text()
    assert not server.sock.exists()


def test_one_reply_per_recipient(server: Server) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(server.sock))
        f = s.makefile("rwb")

        def say(line: bytes) -> bytes:
            f.write(line + b"\r\n")
            f.flush()
            reply = f.readline()
            while reply[3:4] == b"-":
                reply = f.readline()
            return reply

        assert f.readline().startswith(b"220")
        assert say(b"LHLO client.example").startswith(b"250")
        assert say(b"MAIL FROM:<r@example.org>").startswith(b"250")
        assert say(b"RCPT TO:<abuse@example.net>").startswith(b"250")
        assert say(b"RCPT TO:<security@example.net>").startswith(b"250")
        assert say(b"DATA").startswith(b"354")
        f.write(report(9) + b".\r\n")
        f.flush()
        replies = [f.readline(), f.readline()]
        assert all(r.startswith(b"250 2.0.0") for r in replies), replies
        assert say(b"QUIT").startswith(b"221")


def test_over_max_bytes_is_552_and_transient_failures_451(tmp_path: Path, server: Server) -> None:
    code, text = server.deliver(report(1) + (b"x" * 70 + b"\r\n") * 500)
    assert code == 552 and "max_bytes" in text, (code, text)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    etc = Path(__file__).resolve().parent.parent / "etc"
    mailer = (f"  - mailer: {{from: abuse@example.net, good: {etc / 'good-response.txt'}, "
              f"bad: {etc / 'bad-response.txt'}, smtp: '127.0.0.1:{port}', state: {tmp_path / 'm.sqlite'}}}\n")
    down = Server(tmp_path, store_config(tmp_path, extra=mailer), name="down").start()
    try:
        code, text = down.deliver(report(2))
        assert code == 451 and text.startswith("4.3.0") and "127.0.0.1" in text
    finally:
        down.stop()


def test_a_long_line_is_read_and_the_message_kept_in_its_local_form(server: Server, tmp_path: Path) -> None:
    """Over LMTP lines end in CRLF; the store keeps the message as a pipe hands it to abuso run (LF), and a
    line longer than SMTP's 1000 is not refused (abuso reads it in-process too)."""
    long = b"<p>" + b"x" * 5000 + b"</p>\r\n"
    assert server.deliver(report(4) + long) == (250, "")
    kept = [p.read_bytes() for p in (tmp_path / "store").rglob("*.eml")]
    assert kept == [(report(4) + long).replace(b"\r\n", b"\n")]
    assert server.stop() == 0


def test_sighup_reloads_and_a_broken_config_keeps_the_old_one(server: Server, tmp_path: Path) -> None:
    good = server.cfg.read_text()
    server.cfg.write_text("parsers: [log\n")                 # broken YAML
    server.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert server.deliver(report(1)) == (250, "")
    assert "the config does not load, the old one stays" in server.err.read_text()
    server.cfg.write_text(good.replace("parsers: [log]", "parsers: []"))
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while "reloaded" not in server.err.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.deliver(report(2)) == (250, "")
    last = json.loads(server.out.read_text().splitlines()[-1])
    assert last["incidents"] == []                          # the new config: no parser
    assert server.stop() == 0


def test_bad_config_at_start_is_78(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("parsers: [nope]\n")
    r = subprocess.run(ABUSO + ["serve", "-c", str(cfg), "--lmtp", f"unix:{tmp_path / 's'}"], capture_output=True,
                       timeout=60)
    assert r.returncode == 78 and r.stderr.decode().count("\n") == 1


def _deliver_all(srv: Server, messages: dict[int, bytes], acked: set[int], kill_after: int | None = None,
                 retries: int = 0) -> list[str]:
    """Like an MTA: one connection, each message until it is answered 250; a 4xx is tried again later
    (``retries`` times), a dead connection ends the attempt. Returns what went wrong."""
    problems: list[str] = []
    for _ in range(retries + 1):
        try:
            with srv.client() as c:
                for n, data in messages.items():
                    if n in acked:
                        continue
                    try:
                        c.sendmail("reporter@example.org", ["abuse@example.net"], data)
                    except smtplib.SMTPDataError as e:
                        problems.append(f"{n}: {e.smtp_code} {e.smtp_error!r}")
                        continue
                    acked.add(n)
                    if kill_after is not None and len(acked) == kill_after:
                        srv.proc.kill()                             # kill -9 mid-way
        except (smtplib.SMTPException, OSError) as e:
            problems.append(f"{type(e).__name__}: {e}")
        if len(acked) == len(messages):
            break
        time.sleep(0.2)
    return problems


def test_a_killed_server_loses_nothing_and_stores_each_report_once(tmp_path: Path) -> None:
    messages = {n: report(n, f"192.0.2.{n % 250 + 1}") for n in range(1000)}
    srv = Server(tmp_path, store_config(tmp_path)).start()
    acked: set[int] = set()
    _deliver_all(srv, messages, acked, kill_after=300)
    srv.proc.wait(timeout=60)
    assert 300 <= len(acked) < 1000
    srv.start()                                                     # restarted: the MTA retries the rest
    problems = _deliver_all(srv, messages, acked, retries=3)
    assert len(acked) == 1000, (problems[:5], srv.err.read_text()[-2000:])
    assert srv.stop() == 0
    assert stored(tmp_path) == 1000


def test_two_servers_share_one_postgresql_store(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    config = store_config(tmp_path, url=pg_url)
    one = Server(tmp_path, config, name="one").start()
    two = Server(tmp_path, config, name="two").start()
    try:
        for n in range(40):                              # each message delivered to both (an MTA retry)
            assert one.deliver(report(n)) == (250, "")
            assert two.deliver(report(n)) == (250, "")
    finally:
        assert one.stop() == 0 and two.stop() == 0
    assert stored(tmp_path, pg_url) == 40



def test_the_host_name_is_looked_up_once_not_per_connection(tmp_path: Path) -> None:
    """aiosmtpd calls socket.getfqdn() (DNS) for every connection unless given the name: abuso serve gives it,
    so abuso run --lmtp, a connection per message, does not wait on the resolver each time."""
    probe = ("import atexit, socket, sys\ncalls = []\nreal = socket.getfqdn\n"
             "socket.getfqdn = lambda *a: calls.append(1) or real(*a)\n"
             "atexit.register(lambda: sys.stderr.write(f'GETFQDN {len(calls)}\\n'))\n"
             "sys.argv = ['abuso', *sys.argv[1:]]\nfrom abuso.cli import main\nmain()\n")
    srv = Server(tmp_path, store_config(tmp_path), jobs=1)
    srv.command = [sys.executable, "-c", probe]
    srv.start()
    for n in range(3):
        assert srv.deliver(report(n)) == (250, "")
    assert srv.stop() == 0
    assert "GETFQDN 1\n" in srv.err.read_text()
