"""``abuso run -c CONFIG --lmtp unix:PATH``: a piped message handed to a real ``abuso serve`` (abuso/lmtpclient.py)."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from abuso.cli import piped_args
from abuso.lmtpclient import wire

pytest.importorskip("aiosmtpd")
from tests.test_serve import Server, no_server_left_behind, report, store_config, stored  # noqa: E402,F401

ABUSO = [sys.executable, "-m", "abuso"]
ROOT = Path(__file__).resolve().parent.parent
ETC = ROOT / "etc"


def lf(data: bytes) -> bytes:
    """A message as procmail pipes it: LF line ends."""
    return data.replace(b"\r\n", b"\n")


def run(args: list[str], message: bytes, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(ABUSO + ["run", *args], input=message, capture_output=True, timeout=timeout)


def client(srv: Server, message: bytes, *extra: str) -> subprocess.CompletedProcess:
    return run(["-c", str(srv.cfg), "--lmtp", f"unix:{srv.sock}", *extra], message)


def mailer(tmp_path: Path, port: int) -> str:
    return (f"  - mailer: {{from: abuse@example.net, good: {ETC / 'good-response.txt'}, "
            f"bad: {ETC / 'bad-response.txt'}, smtp: '127.0.0.1:{port}', state: {tmp_path / 'm.sqlite'}}}\n")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    return Server(tmp_path, store_config(tmp_path)).start()


def test_250_is_exit_0_the_message_stored_and_nothing_printed(server: Server, tmp_path: Path) -> None:
    r = client(server, lf(report(1)))
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")
    assert stored(tmp_path) == 1                             # stored before the reply
    r = run(["-c", str(server.cfg)], lf(report(1)))          # the same message in-process: the same digest
    assert r.returncode == 0 and stored(tmp_path) == 1
    r = client(server, lf(report(2)), "-v")                  # -v: the server's reply on stderr
    assert r.returncode == 0 and r.stderr.decode() == "abuso: -: 250 2.0.0 processed\n"
    assert server.stop() == 0
    lines = [json.loads(line) for line in server.out.read_text().splitlines()]   # the server writes the output
    assert [r["incidents"][0]["ip"] for r in lines] == ["192.0.2.7", "192.0.2.7"]


def test_a_transient_failure_is_75(tmp_path: Path) -> None:
    srv = Server(tmp_path, store_config(tmp_path, extra=mailer(tmp_path, closed_port()))).start()
    r = client(srv, lf(report(1)))
    assert r.returncode == 75
    assert r.stderr.decode().startswith("abuso: -: temporary failure, will retry: 451 4.3.0 ")
    assert r.stderr.decode().count("\n") == 1
    assert srv.stop() == 0


def test_a_message_quarantined_by_the_server_is_65_as_in_process(server: Server, tmp_path: Path) -> None:
    r = client(server, b"")                                  # empty: quarantined with its reason
    assert r.returncode == 65 and "kept in the quarantine as" in r.stderr.decode()
    assert len(list((tmp_path / "q").glob("*.eml"))) == 1
    assert run(["-c", str(server.cfg)], b"").returncode == 65


@pytest.mark.parametrize("size", [30_000, 100_000], ids=["552", "over-SIZE"])
def test_over_max_bytes_is_quarantined_here_and_65(server: Server, tmp_path: Path, size: int) -> None:
    """552 (or bigger than the SIZE the server advertises, so not even sent): the message is processed here,
    as abuso run does: quarantined, exit 65."""
    big = lf(report(1)) + (b"x" * 70 + b"\n") * (size // 71)
    r = client(server, big)
    assert r.returncode == 65, r.stderr
    err = r.stderr.decode()
    assert ("refused the message (552 5.3.4" if size < 85_000 else "over the server's SIZE") in err
    assert "quarantined as" in err and "max_bytes=20000" in err
    [kept] = (tmp_path / "q").glob("*.eml")
    assert kept.read_bytes() == big                          # all of it, though it was read in two parts
    assert stored(tmp_path) == 0


@pytest.mark.parametrize("where", ["unix", "tcp"])
def test_no_server_means_processed_here_as_abuso_run_does(tmp_path: Path, where: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"parsers: [log]\nquarantine: {tmp_path / 'q'}\n")
    spec = f"unix:{tmp_path / 'none.sock'}" if where == "unix" else f"127.0.0.1:{closed_port()}"
    for message in (lf(report(1)), b"not mail at all\n"):
        plain = run(["-c", str(cfg), "-f", "json"], message)
        r = run(["-c", str(cfg), "-f", "json", "--lmtp", spec], message)
        assert (r.returncode, r.stdout) == (plain.returncode, plain.stdout)
        notice, *rest = r.stderr.decode().splitlines(keepends=True)
        assert notice.startswith(f"abuso: the LMTP server at {spec} did not take the message (")
        assert notice.endswith("processing it here instead (slower)\n")
        assert "".join(rest) == plain.stderr.decode()
    r = run(["-c", str(cfg), "-q", "--lmtp", spec], lf(report(1)))
    assert (r.returncode, r.stderr) == (0, b"")              # -q: not even the notice


def _stuck_server(tmp_path: Path) -> tuple[Server, socket.socket]:
    """A server whose mailer waits on an SMTP server that never answers: the message stays in processing."""
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(8)
    srv = Server(tmp_path, store_config(tmp_path, extra=mailer(tmp_path, blackhole.getsockname()[1])))
    return srv, blackhole


def test_a_server_killed_after_the_message_was_sent_is_75(tmp_path: Path) -> None:
    srv, blackhole = _stuck_server(tmp_path)
    with blackhole:
        srv.start()
        proc = subprocess.Popen(ABUSO + ["run", "-c", str(srv.cfg), "--lmtp", f"unix:{srv.sock}"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdin.write(lf(report(1)))
        proc.stdin.close()
        assert select.select([blackhole], [], [], 60)[0], "the mailer never connected"  # the message is in
        for pid in _children(srv.proc.pid) + [srv.proc.pid]:                            # processing: kill -9
            os.kill(pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == 75
        err = proc.stderr.read().decode()
        assert err.startswith(f"abuso: -: no reply from the LMTP server at unix:{srv.sock} after the message was sent")
        assert err.count("\n") == 1 and proc.stdout.read() == b""


def test_no_reply_within_the_timeout_is_75(tmp_path: Path) -> None:
    srv, blackhole = _stuck_server(tmp_path)
    with blackhole:
        srv.start()
        start = time.monotonic()
        r = client(srv, lf(report(1)), "--lmtp-timeout", "2")
        assert r.returncode == 75 and "(TimeoutError: timed out)" in r.stderr.decode()
        assert time.monotonic() - start < 30


def test_a_server_gone_while_the_message_is_sent_means_processed_here(tmp_path: Path) -> None:
    """The connection breaks before the final "." line is out: the server cannot have the message."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"parsers: [log]\nquarantine: {tmp_path / 'q'}\ndefaults: {{max_bytes: 1000000}}\n")
    path = tmp_path / "half.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(1)
    message = lf(report(1)) + (b"z" * 70 + b"\n") * 60_000       # 4 MB: more than the socket buffers hold
    proc = subprocess.Popen(ABUSO + ["run", "-c", str(cfg), "--lmtp", f"unix:{path}"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    feeding = threading.Thread(target=proc.communicate, args=(message,), kwargs={"timeout": 120})
    feeding.start()
    conn, _ = listener.accept()
    f = conn.makefile("rwb")
    for reply in (b"220 fake LMTP", b"250-fake\r\n250 SIZE 90000000", b"250 ok", b"250 ok", b"354 go on"):
        if not reply.startswith(b"220"):
            f.readline()                                        # LHLO, MAIL, RCPT, DATA
        f.write(reply + b"\r\n")
        f.flush()
    f.read(1000)                                                # part of the message, then hang up
    f.close()
    conn.close()
    listener.close()
    feeding.join(timeout=120)
    assert proc.returncode == 65                                # processed here: over its max_bytes
    [kept] = (tmp_path / "q").glob("*.eml")
    assert kept.read_bytes() == message


def _children(pid: int) -> list[int]:
    r = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(x) for x in r.stdout.split()]


def test_lines_starting_with_a_dot_arrive_as_written(server: Server, tmp_path: Path) -> None:
    message = lf(report(3)) + b".\n..\n.hidden\n. \n...\nend.\n.\n"
    assert client(server, message).returncode == 0
    assert [p.read_bytes() for p in (tmp_path / "store").rglob("*.eml")] == [message]


def test_wire_form() -> None:
    assert wire(b"") == b".\r\n"
    assert wire(b"a\n.b\n") == b"a\r\n..b\r\n.\r\n"
    assert wire(b".x\r\ny") == b"..x\r\ny\r\n.\r\n"          # CRLF kept, a last line ended


def test_the_client_imports_neither_config_nor_email_nor_yaml(server: Server, tmp_path: Path) -> None:
    # -S: nothing from site (an editable install's finder imports re and pathlib); abuso from this checkout.
    probe = ("import sys\nsys.path.insert(0, sys.argv[3])\n"
             "sys.argv = ['abuso', 'run', '-c', sys.argv[1], '--lmtp', sys.argv[2]]\n"
             "from abuso.cli import main\n"
             "try:\n    main()\nexcept SystemExit as e:\n    status = e.code\n"
             "bad = ('abuso.config', 'abuso.errors', 'abuso.runner', 'email', 'yaml', 're', 'socket', 'typing', "
             "'click', 'json', 'logging')\n"
             "print(status, sorted(m for m in bad if m in sys.modules))\n")
    for message, status in ((lf(report(5)), 0), (b"", 65)):
        r = subprocess.run([sys.executable, "-S", "-c", probe, str(server.cfg), f"unix:{server.sock}", str(ROOT)],
                           input=message, capture_output=True, timeout=120)
        assert r.stdout.decode() == f"{status} []\n", r.stderr


def test_piped_args_take_the_lmtp_options() -> None:
    assert piped_args(["run", "-c", "x.yaml", "--lmtp", "unix:/s", "--lmtp-timeout", "5"]) == {
        "config_path": "x.yaml", "lmtp": "unix:/s", "lmtp_timeout": 5.0}
    assert piped_args(["run", "-c", "x.yaml", "--lmtp=127.0.0.1:24", "-f", "json"]) == {
        "config_path": "x.yaml", "lmtp": "127.0.0.1:24", "fmt": "json"}
    for wrong in (["--lmtp-timeout", "5"], ["--lmtp", "unix:/s", "--lmtp-timeout", "x"],
                  ["--lmtp", "unix:/s", "--lmtp-timeout", "0"]):
        assert piped_args(["run", "-c", "x.yaml", *wrong]) is None      # click says what is wrong


@pytest.mark.parametrize("args, said", [
    (["--lmtp", "unix:/s", "a.eml"], "not with PATH"),
    (["--lmtp", "unix:/s", "-j", "2"], "not with -j"),
    (["--lmtp-timeout", "3"], "--lmtp-timeout is for --lmtp"),
    (["--lmtp", "systemd"], "give unix:PATH or HOST:PORT"),
])
def test_lmtp_usage_errors_are_64(tmp_path: Path, args: list[str], said: str) -> None:
    r = run(["-c", str(tmp_path / "c.yaml"), *args], b"")
    assert r.returncode == 64 and said in r.stderr.decode(), r.stderr


def test_the_installed_command_imports_only_what_the_client_needs(server: Server) -> None:
    """bin/abuso (the installed script; pip's generated one imports re) with the client: beyond what
    ``python -c pass`` imports, abuso's three modules and _socket (python -X importtime)."""
    def imported(*args: str, message: bytes = b"") -> set[str]:
        r = subprocess.run([sys.executable, "-S", "-X", "importtime", *args], input=message, capture_output=True,
                           timeout=120)
        return {line.rpartition("|")[2].strip() for line in r.stderr.decode().splitlines()
                if line.startswith("import time:")} - {"package"}

    new = imported(str(ROOT / "bin" / "abuso"), "run", "-c", str(server.cfg), "--lmtp", f"unix:{server.sock}",
                   message=lf(report(6))) - imported("-c", "import os.path")   # site imports it (-S: no site)
    assert new == {"_socket", "abuso", "abuso.cli", "abuso.lmtpclient"}
