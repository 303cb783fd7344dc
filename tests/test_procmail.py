"""README's procmail recipe, run by a real procmail: 75 reaches the MTA, other failures reach the mailbox."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROCMAIL = shutil.which("procmail")
pytestmark = pytest.mark.skipif(PROCMAIL is None, reason="needs procmail (apt-get install procmail)")

REPORT = (b"From: Alice <alice@reporter.example>\nTo: abuse@example.net\nSubject: ssh\n"
          b"Date: Sat, 28 Nov 2026 10:00:00 +0000\nMessage-ID: <a1@reporter.example>\n\n"
          b"Nov 28 09:59:01 h sshd[1]: Failed password for root from 192.0.2.7 port 4242 ssh2\n")


def readme_recipe(which: int = 0) -> str:
    """A ~/.procmailrc block of README.rst, as written: the first (in-process), the second (--lmtp)."""
    text = (ROOT / "README.rst").read_text()
    found = list(re.finditer(r"\n    # ~/\.procmailrc.*?\n((?:    .*\n)+?)\n", text))
    assert len(found) > which, "README.rst shows no such ~/.procmailrc recipe"
    return "\n".join(line[4:] for line in found[which].group(0).strip("\n").splitlines()) + "\n"


def deliver(tmp_path: Path, config: str, message: bytes, recipe: str | None = None) -> tuple[int, Path]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / ".abuso.yaml").write_text(config)
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    wrapper = bindir / "abuso"                    # the recipe says "abuso": this checkout's abuso
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -m abuso \"$@\"\n")
    wrapper.chmod(0o755)
    inbox = tmp_path / "inbox"
    rc = home / ".procmailrc"
    rc.write_text(f"SHELL=/bin/sh\nHOME={home}\nPATH={bindir}:/usr/bin:/bin\nDEFAULT={inbox}\nMAILDIR={home}\n"
                  + (recipe or readme_recipe()) + f":0\n{inbox}\n")
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT)}
    r = subprocess.run([PROCMAIL, "-m", str(rc)], input=message, env=env, capture_output=True, timeout=120)
    return r.returncode, inbox


def config(tmp_path: Path, smtp_port: int | None = None) -> str:
    lines = ["parsers: [log]", f"quarantine: {tmp_path / 'quarantine'}"]
    if smtp_port is not None:
        etc = ROOT / "etc"
        lines += ["processors:",
                  f"  - mailer: {{from: abuse@example.net, good: {etc / 'good-response.txt'}, "
                  f"bad: {etc / 'bad-response.txt'}, smtp: '127.0.0.1:{smtp_port}', state: {tmp_path / 'st.sqlite'}}}"]
    return "\n".join(lines) + "\n"


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_done_message_is_taken_by_abuso(tmp_path: Path) -> None:
    status, inbox = deliver(tmp_path, config(tmp_path), REPORT)
    assert status == 0
    assert not inbox.exists()


def test_transient_failure_reaches_the_mta_as_75(tmp_path: Path) -> None:
    status, inbox = deliver(tmp_path, config(tmp_path, smtp_port=closed_port()), REPORT)
    assert status == 75                           # the MTA keeps the message and retries
    assert not inbox.exists()


def test_other_failures_fall_through_to_the_mailbox(tmp_path: Path) -> None:
    status, inbox = deliver(tmp_path, "parsers: [no-such-parser]\n", REPORT)   # 78: bad config
    assert status == 0
    assert b"192.0.2.7" in inbox.read_bytes()


def test_the_lmtp_recipe_hands_the_message_to_abuso_serve_or_processes_it_here(tmp_path: Path) -> None:
    pytest.importorskip("aiosmtpd")
    from tests.test_serve import Server, no_server_left_behind, store_config, stored  # noqa: F401

    recipe = readme_recipe(1)
    assert "--lmtp unix:$HOME/.abuso-lmtp.sock" in recipe
    cfg = store_config(tmp_path)
    srv = Server(tmp_path, cfg)
    srv.sock = tmp_path / "home" / ".abuso-lmtp.sock"
    srv.sock.parent.mkdir()
    srv.start()
    try:
        status, inbox = deliver(tmp_path, cfg, REPORT, recipe)
        assert (status, inbox.exists(), stored(tmp_path)) == (0, False, 1)
        status, inbox = deliver(tmp_path, cfg, b"", recipe)        # quarantined by the server: 65, to the mailbox
        assert status == 0 and inbox.exists()
        inbox.unlink()
    finally:
        assert srv.stop() == 0
    assert "192.0.2.7" in srv.out.read_text()                     # the server processed it
    status, inbox = deliver(tmp_path, cfg, REPORT.replace(b"<a1@", b"<a2@"), recipe)    # no server: here
    assert (status, inbox.exists(), stored(tmp_path)) == (0, False, 2)
    status, inbox = deliver(tmp_path, cfg, b"", recipe)            # quarantined here: 65, to the mailbox
    assert status == 0 and inbox.exists()
