"""A real Postfix in front of `abuso serve`: 1,000 reports through Postfix's LMTP client, abuso killed
mid-way and restarted, every report stored exactly once (Postfix keeps and retries what was not answered)."""

from __future__ import annotations

import os
import shutil
import signal
import smtplib
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from abuso.storage import Store
from tests.test_serve import Server, report

POSTFIX = shutil.which("postfix") or ("/usr/sbin/postfix" if Path("/usr/sbin/postfix").exists() else None)
pytestmark = [
    pytest.mark.skipif(POSTFIX is None, reason="needs Postfix (apt-get install postfix; .ci/install-postfix.sh)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="a private Postfix instance needs root to start its master"),
]

MASTER = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postfix:
    """A private instance: its own config, queue and log in a folder the postfix user can reach."""

    def __init__(self, root: Path, lmtp_socket: Path) -> None:
        self.root, self.port = root, free_port()
        self.etc = root / "etc"
        for d in (self.etc, root / "queue", root / "data"):
            d.mkdir(parents=True)
        shutil.chown(root / "data", "postfix")
        (self.etc / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.test.example
mydestination =
relay_domains = example.net
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject
transport_maps = inline:{{ example.net=lmtp:unix:{lmtp_socket} }}
lmtp_destination_recipient_limit = 1
minimal_backoff_time = 1s
maximal_backoff_time = 2s
queue_run_delay = 1s
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
biff = no
""")
        (self.etc / "master.cf").write_text(MASTER.format(port=self.port))

    def postfix(self, *args: str) -> None:
        r = subprocess.run([POSTFIX, "-c", str(self.etc), *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (args, r.stdout, r.stderr, self.log())

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text()[-3000:] if path.exists() else "(no maillog)"

    def queued(self) -> int:
        r = subprocess.run(["postqueue", "-c", str(self.etc), "-j"], capture_output=True, text=True, timeout=60)
        return len([line for line in r.stdout.splitlines() if line.strip()])


@pytest.fixture
def root():
    folder = Path(tempfile.mkdtemp(prefix="abuso-postfix-"))
    folder.chmod(0o755)                       # Postfix's daemons run as the postfix user
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_postfix_delivers_1000_reports_once_each_across_a_killed_server(root: Path) -> None:
    run = root / "run"
    run.mkdir()
    run.chmod(0o755)
    srv = Server(root, f"parsers: [log]\nquarantine: {root / 'q'}\n"
                       f"processors:\n  - store: {{path: {root / 'store'}}}\n")
    srv.sock = run / "lmtp.sock"
    srv.extra = ["--socket-mode", "0666"]
    postfix = Postfix(root, srv.sock)
    postfix.postfix("start")
    try:
        srv.start()
        with smtplib.SMTP("127.0.0.1", postfix.port, timeout=60) as smtp:
            for n in range(1000):
                smtp.sendmail("reporter@example.org", ["abuse@example.net"], report(n, f"192.0.2.{n % 250 + 1}"))

        def stored() -> int:
            try:
                with Store.open(root / "store", create=False) as s:
                    return s.index.count()[0]
            except Exception:  # kept broad: not created yet, or busy: ask again
                return 0

        deadline = time.monotonic() + 120
        while stored() < 300 and time.monotonic() < deadline:
            time.sleep(0.1)
        srv.proc.send_signal(signal.SIGKILL)                     # kill -9 mid-way
        srv.proc.wait(timeout=60)
        middle = stored()
        assert 300 <= middle < 1000, middle
        time.sleep(1)
        srv.start()
        postfix.postfix("flush")
        deadline = time.monotonic() + 240
        while (stored() < 1000 or postfix.queued()) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert stored() == 1000, postfix.log()
        assert postfix.queued() == 0
        assert srv.stop() == 0
    finally:
        if srv.proc and srv.proc.poll() is None:
            srv.proc.kill()
        subprocess.run([POSTFIX, "-c", str(postfix.etc), "stop"], capture_output=True, timeout=60)
