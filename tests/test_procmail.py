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


def readme_recipe() -> str:
    """The ~/.procmailrc block of README.rst, as written."""
    text = (ROOT / "README.rst").read_text()
    m = re.search(r"\n    # ~/\.procmailrc.*?\n((?:    .*\n)+?)\n", text)
    assert m, "README.rst shows no ~/.procmailrc recipe"
    return "\n".join(line[4:] for line in m.group(0).strip("\n").splitlines()) + "\n"


def deliver(tmp_path: Path, config: str, message: bytes) -> tuple[int, Path]:
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
                  + readme_recipe() + f":0\n{inbox}\n")
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
