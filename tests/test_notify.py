"""`abuso notify` against a real SMTP server (aiosmtpd on 127.0.0.1): digests per customer, never twice."""

from __future__ import annotations

import asyncio
import csv
import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("aiosmtpd")
from tests.test_mailer import Recorder, start  # noqa: E402

ABUSO = [sys.executable, "-m", "abuso"]
TABLE = """\
192.0.2.0/24      id=POOL;name=Our DSL pool
198.51.100.0/26   id=C1;name=ACME Ltd;contact.email=noc@acme.example
198.51.100.64/26  id=C2;name=Beta GmbH;abuse=abuse@beta.example, it@beta.example
198.51.100.128/26 id=C3;name=Gamma SA
"""
#: customer -> addresses accused in the reports (two reports each)
ADDRESSES = {"C1": ["198.51.100.5", "198.51.100.6"], "C2": ["198.51.100.70"], "C3": ["198.51.100.130"],
             "POOL": ["192.0.2.9"]}


class SlowRecipient(Recorder):
    """Holds the RCPT of one address until released: a notify run can be killed before that digest is sent."""

    def __init__(self, slow: str) -> None:
        super().__init__()
        self.slow, self.waiting, self.release = slow, False, False

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address == self.slow and not self.release:
            self.waiting = True
            while not self.release:
                await asyncio.sleep(0.05)
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


def setup(tmp_path: Path, port: int) -> Path:
    (tmp_path / "networks.txt").write_text(TABLE)
    mail = tmp_path / "mail"
    mail.mkdir()
    n = 0
    for ips in ADDRESSES.values():
        for ip in ips:
            for day in (24, 25):
                n += 1
                (mail / f"{n}.eml").write_text(
                    f"From: Reporter <sec@reporter.example>\nTo: abuse@example.net\nSubject: ssh attack\n"
                    f"Date: Tue, {day} Nov 2026 10:00:00 +0000\nMessage-ID: <r{n}@reporter.example>\n\n"
                    f"Nov {day} 09:5{n % 10}:01 h sshd[1]: Failed password for root from {ip} port 4242 ssh2\n")
    cfg = tmp_path / "abuso.yaml"
    cfg.write_text(f"""parsers: [log]
quarantine: q
processors:
  - table: {{file: networks.txt}}
  - store: {{path: store}}
notify:
  from: Abuse Desk <abuse@example.net>
  to: [abuse, contact.email]
  default: noc@example.net
  never: [POOL]
  smtp: 127.0.0.1:{port}
  timeout: 20
""")
    r = subprocess.run(ABUSO + ["run", "-c", str(cfg), str(mail)], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return cfg


def notify(cfg: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(ABUSO + ["notify", "-c", str(cfg), *args], capture_output=True, text=True, timeout=120)


def digests(server: Recorder) -> dict[tuple[str, ...], list[dict[str, str]]]:
    """recipients -> CSV rows of each received digest."""
    out = {}
    for received in server.messages:
        msg = received.message
        assert msg["Auto-Submitted"] == "auto-generated"
        (attachment,) = list(msg.iter_attachments())
        assert attachment.get_content_type() == "text/csv"
        rows = list(csv.DictReader(io.StringIO(attachment.get_content().decode("utf-8")
                                               if isinstance(attachment.get_content(), bytes)
                                               else attachment.get_content())))
        out[tuple(sorted(received.rcpt_tos))] = rows
    return out


def test_three_customers_one_digest_each_and_never_twice(tmp_path: Path) -> None:
    server = Recorder()
    controller = start(server)
    try:
        cfg = setup(tmp_path, server.port)
        dry = notify(cfg, "--dry-run")
        assert dry.returncode == 0 and "would send 4 incidents to noc@acme.example" in dry.stdout
        assert server.messages == []
        first = notify(cfg)
        assert first.returncode == 0, first.stderr
        got = digests(server)
        assert set(got) == {("noc@acme.example",), ("abuse@beta.example", "it@beta.example"),
                            ("noc@example.net",)}                   # Gamma has no field: the default
        assert sorted(r["source.ip"] for r in got[("noc@acme.example",)]) == ["198.51.100.5"] * 2 + [
            "198.51.100.6"] * 2
        assert {r["classification.type"] for rows in got.values() for r in rows} == {"brute-force"}
        assert all(r["time.source"].startswith("2026-11-2") for rows in got.values() for r in rows)
        body = server.messages[0].message.get_body(("plain",)).get_content()
        assert "incidents" in body and "198.51.100." in body
        assert "never notified (notify.never)" in first.stdout          # our own pool
        assert not any("192.0.2.9" in r["source.ip"] for rows in got.values() for r in rows)
        second = notify(cfg)
        assert second.returncode == 0
        assert len(server.messages) == 3                                 # nothing twice
        assert "0 digests sent" in second.stderr
    finally:
        controller.stop()


def test_a_run_killed_mid_way_then_run_again_sends_each_digest_once(tmp_path: Path) -> None:
    server = SlowRecipient("abuse@beta.example")            # customers go in id order: C1, then C2 (held), C3
    controller = start(server)
    try:
        cfg = setup(tmp_path, server.port)
        proc = subprocess.Popen(ABUSO + ["notify", "-c", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not server.waiting and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.waiting, "notify never reached the second customer"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert len(server.messages) == 1                    # C1 went out; C2 was not sent; C3 not started
        server.release = True
        again = notify(cfg)
        assert again.returncode == 0, again.stderr
        recipients = [tuple(sorted(m.rcpt_tos)) for m in server.messages]
        assert sorted(recipients) == sorted([("noc@acme.example",), ("abuse@beta.example", "it@beta.example"),
                                             ("noc@example.net",)])
        assert "sent again 2 incidents" in again.stdout     # the recorded digest, as it was
        assert len(server.messages) == 3 and notify(cfg).returncode == 0 and len(server.messages) == 3
    finally:
        server.release = True
        controller.stop()


def test_smtp_down_is_retried_next_run(tmp_path: Path) -> None:
    server = Recorder()
    controller = start(server)
    port = server.port
    cfg = setup(tmp_path, port)
    controller.stop()
    down = notify(cfg)
    assert down.returncode == 75
    assert down.stdout.count("not sent, will retry next run") == 3
    server = Recorder()
    from aiosmtpd.controller import Controller

    controller = Controller(server, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        up = notify(cfg)
        assert up.returncode == 0, up.stdout + up.stderr
        assert len(server.messages) == 3
    finally:
        controller.stop()


def test_notify_config_is_checked_with_file_line_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "abuso.yaml"
    cfg.write_text("parsers: [log]\nnotify:\n  form: abuse@example.net\n  period: soon\n  body: nope.txt\n")
    r = subprocess.run(ABUSO + ["check-config", "-c", str(cfg)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 78
    assert f"{cfg}:3: notify.form: unknown option" in r.stderr
    assert f"{cfg}:2: notify.from: required" in r.stderr
    assert f"{cfg}:4: notify.period: must be a duration" in r.stderr
    assert f"{cfg}:5: notify.body: {tmp_path / 'nope.txt'}: no such file" in r.stderr
