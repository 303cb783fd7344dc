"""The mailer against a real SMTP server (aiosmtpd on 127.0.0.1) and a real sendmail (msmtp).

Every answer is read back from what the server received: envelope, headers and
body. The RFC 3834 samples in samples/mailer/ must produce no SMTP transaction
at all, while the human report in the same server gets exactly one answer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import re
import socket
import sqlite3
import ssl
import subprocess
import time
from base64 import b64encode
from dataclasses import dataclass
from email import policy
from email.utils import parsedate_to_datetime
from ipaddress import ip_address
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abuso.config import load as load_config
from abuso.errors import ConfigError, TransientError
from abuso.model import Dropped, Incident, Report, Verdict
from abuso.normalize import normalize
from abuso.pipeline import Pipeline
from abuso.processors.mailer import MailerProcessor, clean
from abuso.runner import QUARANTINED, process_item

from .conftest import ROOT

pytest.importorskip("aiosmtpd")
from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult  # noqa: E402

SAMPLES = ROOT / "samples" / "mailer"
ETC = ROOT / "etc"
OURS = "abuse@example.net"
UTC = dt.timezone.utc


# --- a real SMTP server ------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    peer: tuple

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.content.replace(b"\r\n", b"\n"), policy=policy.default)


class Recorder:
    """An aiosmtpd handler that keeps what it accepted and can be told to refuse."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None
        self.delay = 0.0
        self.port = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, session.peer))
        await asyncio.sleep(self.delay)  # accepted, but the 250 comes late
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(recorder: Recorder, **kwargs) -> Controller:
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    recorder.port = port
    return controller


@pytest.fixture
def server():
    recorder = Recorder()
    controller = start(recorder)
    yield recorder
    controller.stop()


# --- reports and mailers --------------------------------------------------------------------


def report_of(raw: bytes, incidents=(), verdicts=None, dropped=()) -> Report:
    msg = normalize(raw)
    report = Report(raw=raw, origin="test", message_id=msg.message_id, subject=msg.subject, sender=msg.sender,
                    date=msg.date, message=msg)
    report.incidents = list(incidents)
    report.verdicts = dict(verdicts or {})
    report.dropped = list(dropped)
    return report


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def brute_force() -> list[Incident]:
    """What the log parser reads in samples/mailer/human.eml, enriched as table and radius would."""
    t = dt.datetime(2026, 11, 22, 2, 14, 7, tzinfo=UTC)
    return [
        Incident(ip_address("192.0.2.17"), "brute-force", t, "log", "stated", 51022, "Nov 22 03:14:07 srv sshd…",
                 {"customer": {"name": "ACME Widgets GmbH"}, "user": "dsl-4711"}),
        Incident(ip_address("192.0.2.17"), "brute-force", t + dt.timedelta(seconds=5), "log", "date-header", 51030),
        Incident(ip_address("2001:db8::1"), "scanner", None, "log"),
    ]


def human_report(**changes: str) -> Report:
    raw = sample("human.eml")
    for header, value in changes.items():
        raw = set_header(raw, header.replace("_", "-"), value)
    incidents = brute_force()
    return report_of(raw, incidents, {"log": Verdict("log", True, "", incidents)})


def set_header(raw: bytes, name: str, value: str | None) -> bytes:
    """Replace (or with None remove) a top-level header, or add it at the top."""
    head, sep, body = raw.partition(b"\n\n")
    lines = re.sub(rb"(?im)^" + re.escape(name.encode()) + rb":.*(?:\n[ \t].*)*\n?", b"", head + b"\n").rstrip(b"\n")
    if value is not None:
        lines = f"{name}: {value}\n".encode() + lines
    return lines + sep + body


def make_mailer(tmp_path: Path, server: Recorder | None = None, **options) -> MailerProcessor:
    opts = {"from": f"Example Abuse Desk <{OURS}>", "good": str(ETC / "good-response.txt"),
            "bad": str(ETC / "bad-response.txt"), "state": str(tmp_path / "mailer.sqlite"), "timeout": 10}
    if server is not None:
        opts["smtp"] = f"127.0.0.1:{server.port}"
    opts.update(options)
    return MailerProcessor(opts, ROOT)


def rows(tmp_path: Path) -> list[tuple]:
    """The mailer's state rows; none when the mailer never needed to open its state."""
    if not (tmp_path / "mailer.sqlite").exists():
        return []
    db = sqlite3.connect(tmp_path / "mailer.sqlite")
    try:
        return db.execute("SELECT recipient, status, kind FROM answers ORDER BY at").fetchall()
    finally:
        db.close()


# --- the answers ---------------------------------------------------------------------------


def test_good_answer_headers_and_body(server: Recorder, tmp_path: Path) -> None:
    mailer = make_mailer(tmp_path, server)
    report = human_report()
    before = dt.datetime.now(UTC)
    mailer.process(report)
    mailer.close()

    assert len(server.messages) == 1
    got = server.messages[0]
    assert got.mail_from in ("", "<>")  # RFC 3834 3.3: null envelope sender
    assert got.rcpt_tos == ["security@victim.example.com"]  # Reply-To wins over From
    msg = got.message
    assert msg["From"] == f"Example Abuse Desk <{OURS}>"
    assert msg["To"] == "security@victim.example.com"
    assert msg["Subject"] == "Re: SSH brute force from 192.0.2.17"
    assert msg["In-Reply-To"] == "<20261122024002.GA1234@victim.example.com>"
    assert msg["References"] == "<earlier-thread-1@victim.example.com> <20261122024002.GA1234@victim.example.com>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Abuso-Loop"] == OURS and msg["X-Loop"] == OURS
    assert re.fullmatch(r"<abuso-reply\.[0-9a-f]{24}@example\.net>", msg["Message-ID"])
    sent = parsedate_to_datetime(msg["Date"])
    assert before - dt.timedelta(seconds=2) <= sent <= dt.datetime.now(UTC) + dt.timedelta(seconds=2)

    body = msg.get_content()
    assert "Your message:  SSH brute force from 192.0.2.17" in body
    assert "Dated:         Sun, 22 Nov 2026 03:40:02 +0100" in body
    assert "Message-ID:    <20261122024002.GA1234@victim.example.com>" in body
    assert "We recognised 3 incident(s)" in body
    assert "$" not in body  # every placeholder of the shipped template was substituted
    lines = body.splitlines()
    start = next(i for i, ln in enumerate(lines) if "Source IP" in ln)
    table = lines[start:lines.index("", start)]
    header = table[0]
    assert len(table) == 5  # titles, 3 incidents, the footnote
    assert re.search(r"2026-11-22 02:14:07\s+192\.0\.2\.17\s+51022\s+brute-force\s+log", body)
    assert re.search(r"2026-11-22 02:14:12 \*\s+192\.0\.2\.17\s+51030", body)  # zone guessed is flagged
    assert re.search(r"  -\s+2001:db8::1\s+-\s+scanner\s+log", body)
    for line in table[1:4]:  # aligned: each column starts where its title does
        assert line.index("192.0.2.17" if "192" in line else "2001") == header.index("Source IP")
    assert "* no time zone in the report: taken from its Date header, or UTC assumed" in body
    assert "ACME" not in body and "dsl-4711" not in body  # customer and RADIUS data stay private

    note = report.notes["mailer"]
    assert note == {"sent": "good", "to": "security@victim.example.com", "message_id": msg["Message-ID"],
                    "via": "smtp"}
    assert str(note) == "answered security@victim.example.com (good response)"
    assert rows(tmp_path) == [("security@victim.example.com", "sent", "good")]


def test_bad_answer_explains_each_parser_and_filter(server: Recorder, tmp_path: Path, corpus: Path) -> None:
    """mailer-02 is the ancestor's no-incident input (no Date, no Message-ID); it got a raw template."""
    raw = (corpus / "mail-abuse" / "mailer-02.eml").read_bytes()
    dropped = Incident(ip_address("198.51.100.7"), "spam", None, "received")
    report = report_of(raw, verdicts={"arf": Verdict("arf", False, "not an ARF report"),
                                      "log": Verdict("log", False, "no line with an address and a timestamp")},
                       dropped=[Dropped(dropped, "ip", "198.51.100.7 is not in our networks")])
    mailer = make_mailer(tmp_path, server)
    mailer.process(report)
    mailer.close()

    (got,) = server.messages
    assert got.rcpt_tos == ["testme@test.tld"]
    msg = got.message
    assert msg["Subject"] == "Re: Nasty complaint with no incident"
    assert msg["In-Reply-To"] is None and msg["References"] is None  # nothing to refer to
    body = msg.get_content()
    assert "  - arf: not an ARF report" in body
    assert "  - log: no line with an address and a timestamp" in body
    assert "  - 198.51.100.7 (spam): not used, ip filter: 198.51.100.7 is not in our networks" in body
    assert "Dated:         (none)" in body and "Message-ID:    (none)" in body
    assert "time zone" in body and "ARF" in body  # how to report well
    assert "$" not in body
    assert report.notes["mailer"]["sent"] == "bad"


def test_ancestor_good_input_gets_a_substituted_answer(server: Recorder, tmp_path: Path, corpus: Path) -> None:
    """mailer-01: 'From: testme@test.tld (test account)' (a comment, not a display name)."""
    raw = (corpus / "mail-abuse" / "mailer-01.eml").read_bytes()
    inc = Incident(ip_address("192.0.2.1"), "undetermined", None, "test")
    mailer = make_mailer(tmp_path, server)
    mailer.process(report_of(raw, [inc], {"test": Verdict("test", True, "", [inc])}))
    mailer.close()
    (got,) = server.messages
    assert got.rcpt_tos == ["testme@test.tld"]
    body = got.message.get_content()
    assert "Your message:  Nasty complaint" in body and "We recognised 1 incident(s)" in body
    assert "192.0.2.1" in body and "${" not in body


# --- RFC 3834: who never gets an answer ---------------------------------------------------------


@pytest.mark.parametrize("name, reason, rule", [
    ("bounce.eml", "null sender (Return-Path: <>)", "automatic"),
    ("auto-reply.eml", "Auto-Submitted: auto-replied", "automatic"),
    ("list.eml", "List-Id header (mailing-list mail)", "automatic"),
    ("bulk.eml", "Precedence: bulk", "automatic"),
    ("loop.eml", "X-Abuso-Loop: abuse@example.net (our own answer came back)", "loop"),
])
def test_robot_samples_get_no_answer(name: str, reason: str, rule: str, server: Recorder, tmp_path: Path) -> None:
    mailer = make_mailer(tmp_path, server)
    inc = Incident(ip_address("192.0.2.99"), "scanner", None, "log")
    report = report_of(sample(name), [inc], {"log": Verdict("log", True, "", [inc])})
    mailer.process(report)
    assert report.notes["mailer"] == {"skipped": reason, "rule": rule}
    assert str(report.notes["mailer"]) == f"not answered: {reason}"
    assert server.messages == [] and rows(tmp_path) == []
    # The same mailer and server do answer a human: the silence above was a decision.
    mailer.process(human_report())
    mailer.close()
    assert [m.rcpt_tos for m in server.messages] == [["security@victim.example.com"]]


@pytest.mark.parametrize("name, edits, reason", [
    ("bounce.eml", {"Return-Path": None, "Auto-Submitted": None}, "From is a robot or list address: mailer-daemon@"),
    ("bounce.eml", {"Return-Path": None, "Auto-Submitted": None, "From": "Jane <jane@victim.example.com>"},
     "a delivery-status report"),
    ("loop.eml", {"X-Abuso-Loop": None}, "our own answer <abuso-reply.0b6f1d2e3c4a59687a8b9c0d@example.net>"),
    ("human.eml", {"In-Reply-To": "<abuso-reply.00aa@example.net>"}, "a reply to our answer"),
    ("human.eml", {"References": "<x@y> <abuso-reply.00aa@Example.NET>"}, "a reply to our answer"),
    ("human.eml", {"From": OURS, "Reply-To": None}, "mail from our own address"),
    ("human.eml", {"Reply-To": "noreply@victim.example.com"}, "noreply@victim.example.com is a robot sender"),
    ("human.eml", {"Reply-To": "list-request@victim.example.com"}, "Reply-To is a robot or list address"),
    ("human.eml", {"Sender": "owner-abuse-l@lists.example.org"}, "Sender is a robot or list address"),
    ("human.eml", {"Return-Path": "<MAILER-DAEMON@mx.victim.example.com>"}, "Return-Path is a robot"),
    ("human.eml", {"Auto-Submitted": "auto-generated; owner-email=x@y"}, "Auto-Submitted: auto-generated"),
    ("human.eml", {"Precedence": "junk"}, "Precedence: junk"),
    ("human.eml", {"List-Unsubscribe": "<mailto:u@example.org>"}, "List-Unsubscribe header"),
    ("human.eml", {"X-Auto-Response-Suppress": "OOF, AutoReply"}, "X-Auto-Response-Suppress"),
    ("human.eml", {"X-Autoreply": "yes"}, "X-Autoreply header"),
    ("human.eml", {"Reply-To": "not an address"}, "no usable address in Reply-To"),
    ("human.eml", {"Reply-To": None, "From": "undisclosed-recipients:;"}, "no usable address in From"),
    ("human.eml", {"Reply-To": "(" * 5000 + "jane@victim.example.com"}, "no usable address in Reply-To"),
])
def test_every_suppression_rule_on_its_own(name: str, edits: dict, reason: str, tmp_path: Path) -> None:
    raw = sample(name)
    for header, value in edits.items():
        raw = set_header(raw, header, value)
    mailer = make_mailer(tmp_path, dry_run=str(tmp_path / "out"))
    report = report_of(raw)
    mailer.process(report)
    assert reason in report.notes["mailer"]["skipped"]
    assert not (tmp_path / "out").exists()


def test_feedback_loop_reports_are_machine_generated(tmp_path: Path, corpus: Path) -> None:
    """AOL's ARF feedback loop carries no Auto-Submitted, but nobody reads answers to scomp@aol.net."""
    mailer = make_mailer(tmp_path, dry_run=str(tmp_path / "out"))
    report = report_of((corpus / "abuseio" / "feedback-loop" / "AOL_example_1.eml").read_bytes())
    mailer.process(report)
    assert report.notes["mailer"]["skipped"].startswith("a feedback-report report (machine-generated")
    assert not (tmp_path / "out").exists()


_TRICKS = [b"<>", b"MAILER-DAEMON", b"a@b.example\r\nBcc: c@d.example", b"\"x\\\" <y@z.example>\" <a@b.example>",
           b"=?utf-8?q?a=0D=0ABcc:_c@d.example?= <a@b.example>", b"a@b.example, c@d.example", b"<a@b..example>",
           b"group: a@b.example, c@d.example;", b"a@[127.0.0.1]", b"\xff\xfe@b.example", b"jane@victim.example.com"]
_HOSTILE = st.one_of(
    st.binary(max_size=120).filter(lambda b: not b.startswith((b" ", b"\t"))),
    st.emails().map(str.encode),
    st.sampled_from(_TRICKS),
    st.tuples(st.sampled_from(_TRICKS), st.binary(max_size=20)).map(lambda t: t[0] + t[1].replace(b"\n", b"")),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reply_to=_HOSTILE, sender=_HOSTILE, return_path=_HOSTILE, refs=_HOSTILE)
def test_hostile_headers_give_an_address_or_a_reason(reply_to, sender, return_path, refs, tmp_path: Path) -> None:
    """Whatever bytes the headers hold: one plain address to answer, or a stated reason not to; no crash."""
    raw = (b"Return-Path: " + return_path + b"\nFrom: " + sender + b"\nReply-To: " + reply_to +
           b"\nReferences: " + refs + b"\nSubject: x\nMessage-ID: <h@victim.example.com>\n\nbody\n")
    mailer = make_mailer(tmp_path, dry_run=str(tmp_path / "out"), period=0)
    report = report_of(raw)
    mailer.process(report)
    note = report.notes["mailer"]
    if "skipped" in note:
        assert note["skipped"] and "\n" not in note["skipped"]
        return
    assert re.fullmatch(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[a-z0-9.-]+", note["to"])
    written = email.message_from_bytes(Path(note["file"]).read_bytes(), policy=policy.default)
    assert written["To"] == note["to"] and written.get_all("To") == [note["to"]]


@pytest.mark.parametrize("results, answered", [
    ([], False),
    (["mx.example.net; spf=pass smtp.mailfrom=jane@victim.example.com"], True),
    (["MX.example.net 1; dkim=pass header.d=victim.example.com header.s=s1; spf=fail"], True),
    (["mx.example.net; dmarc=pass (p=reject) header.from=example.com"], True),  # relaxed: a parent domain
    (["mx.example.net; dkim=fail header.d=victim.example.com; spf=softfail smtp.mailfrom=victim.example.com"], False),
    (["mx.example.net; dkim=pass header.d=spammer.example"], False),  # authenticated, but not the Reply-To domain
    (["mx.example.net.evil.example; dkim=pass header.d=victim.example.com"], False),  # not our MTA's id
    (["other.example; dkim=pass header.d=victim.example.com", "mx.example.net; spf=none"], False),
    (["mx.example.net;\n\tdkim=pass\n\theader.d=mail.victim.example.com"], True),  # folded; relaxed: a subdomain
    (["mx.example.net; dkim=pass header.d=evilvictim.example.com"], False),  # a suffix, not a subdomain
    (["mx.example.net; dkim=pass header.d=victim.example.com.evil.example"], False),
    (["mx.example.net; spf=pass smtp.mailfrom=jane@example.org"], False),
])
def test_authserv_id_guards_against_backscatter(results: list[str], answered: bool, tmp_path: Path) -> None:
    """Spam to abuse@ forges its sender: with authserv_id only senders our MTA authenticated get answers."""
    raw = sample("human.eml")
    for value in results:
        raw = b"Authentication-Results: " + value.encode() + b"\n" + raw
    mailer = make_mailer(tmp_path, dry_run=str(tmp_path / "out"), authserv_id="mx.example.net")
    report = report_of(raw)
    mailer.process(report)
    if answered:
        assert report.notes["mailer"]["sent"] == "bad"
    else:
        assert report.notes["mailer"]["skipped"].startswith(
            "victim.example.com not authenticated by SPF, DKIM or DMARC at mx.example.net")
        assert not (tmp_path / "out").exists()


def test_a_bare_report_from_library_code(tmp_path: Path) -> None:
    """Report(raw=...) built by hand, never normalized: the mailer reads the headers itself."""
    mailer = make_mailer(tmp_path, dry_run=str(tmp_path / "out"))
    report = Report(raw=sample("human.eml"))
    mailer.process(report)
    assert report.notes["mailer"]["to"] == "security@victim.example.com"
    msg = email.message_from_bytes(Path(report.notes["mailer"]["file"]).read_bytes(), policy=policy.default)
    assert msg["Subject"] == "Re: SSH brute force from 192.0.2.17"
    assert "Your message:  SSH brute force from 192.0.2.17" in msg.get_content()
    assert msg["In-Reply-To"] == "<20261122024002.GA1234@victim.example.com>"
    robot = Report(raw=sample("bounce.eml"))
    mailer.process(robot)
    assert robot.notes["mailer"]["skipped"].startswith("null sender")


def test_auto_submitted_no_and_null_from_line(tmp_path: Path) -> None:
    """'Auto-Submitted: no' is a human; an mbox From_ line with MAILER-DAEMON is a bounce."""
    mailer = make_mailer(tmp_path, dry_run=str(tmp_path / "out"))
    report = report_of(set_header(sample("human.eml"), "Auto-Submitted", "no"))
    mailer.process(report)
    assert report.notes["mailer"]["sent"] == "bad"
    bounce = b"From MAILER-DAEMON Sun Nov 22 04:02:30 2026\n" + set_header(sample("human.eml"), "Return-Path", None)
    report = report_of(bounce)
    mailer.process(report)
    assert report.notes["mailer"] == {"skipped": "null sender (From_ line: MAILER-DAEMON)", "rule": "automatic"}


# --- mail loops and robot senders (issue 13) -----------------------------------------------------


@pytest.mark.parametrize("headers", [
    ["X-Loop: abuse@example.net"],
    ["X-Loop: ABUSE@Example.NET"],
    ["X-Loop: <abuse@example.net>"],
    ["X-Loop: Example Abuse Desk <abuse@example.net>"],
    ["X-Loop: mailto:abuse@example.net"],
    ["X-Loop: scomp", "X-Loop: abuse@example.net"],  # the second of two
    ["X-Loop: abuse@example.org"],  # another address of ours (option ours)
    ["X-Loop: bounces@example.net"],  # our envelope sender
])
def test_x_loop_naming_our_address_is_never_answered(headers: list[str], server: Recorder, tmp_path: Path) -> None:
    mailer = make_mailer(tmp_path, server, ours=["abuse@example.org"], envelope_from="bounces@example.net")
    raw = "\n".join(headers).encode() + b"\n" + sample("human.eml")
    incidents = brute_force()
    report = report_of(raw, incidents, {"log": Verdict("log", True, "", incidents)})
    mailer.process(report)
    named = re.search(r"[\w.]+@example\.(?:net|org)", headers[-1], re.I).group(0).lower()
    assert report.notes["mailer"] == {"skipped": f"X-Loop names our address {named} (a mail loop)", "rule": "loop"}
    mailer.close()
    assert server.messages == [] and rows(tmp_path) == []


def test_x_loop_sample_and_foreign_x_loop(tmp_path: Path) -> None:
    """samples/mailer/x-loop.eml: a ticket system echoing our X-Loop back; other X-Loop values are no loop."""
    mailer = make_mailer(tmp_path, dry_run=str(tmp_path / "out"), period=0)
    report = report_of(sample("x-loop.eml"))
    mailer.process(report)
    assert str(report.notes["mailer"]) == "not answered: X-Loop names our address abuse@example.net (a mail loop)"
    for value in ("tickets@victim.example.com", "scomp", "abuse@example.net.evil.example", "xabuse@example.net"):
        other = report_of(set_header(sample("x-loop.eml"), "X-Loop", value))
        mailer.process(other)
        assert other.notes["mailer"]["sent"] == "bad", value
        assert other.notes["mailer"]["to"] == "tickets@victim.example.com"
    assert len(list((tmp_path / "out").iterdir())) == 4


@pytest.mark.parametrize("edits, reason", [
    ({"Received": "from localhost by mx.victim.example.com (envelope-from <abuse@example.net>) id 1x"},
     "a Received header names our address abuse@example.net as its envelope sender"),
    ({"Received": "from mx.example.net by mx.victim.example.com with esmtp (Exim 4.96)\n\t"
                  "(envelope-from <bounces@example.net>) id 1x"},
     "a Received header names our address bounces@example.net as its envelope sender"),
    ({"Return-Path": "<bounces@example.net>"}, "mail from our own address bounces@example.net (Return-Path)"),
    ({"Sender": "abuse@example.org"}, "mail from our own address abuse@example.org (Sender)"),
    ({"Reply-To": "Desk <abuse@example.org>"}, "Reply-To is our own address abuse@example.org"),
])
def test_other_loop_evidence(edits: dict, reason: str, tmp_path: Path) -> None:
    raw = sample("human.eml")
    for header, value in edits.items():
        raw = set_header(raw, header, value)
    mailer = make_mailer(tmp_path, dry_run=str(tmp_path / "out"), ours=["abuse@example.org"],
                         envelope_from="bounces@example.net")
    report = report_of(raw)
    mailer.process(report)
    assert report.notes["mailer"]["skipped"].startswith(reason) and report.notes["mailer"]["rule"] == "loop"
    assert not (tmp_path / "out").exists()


def test_delivered_to_our_address_twice_is_a_forwarding_loop(tmp_path: Path) -> None:
    mailer = make_mailer(tmp_path, dry_run=str(tmp_path / "out"), period=0)
    once = b"Delivered-To: abuse@example.net\n" + sample("human.eml")
    report = report_of(once)
    mailer.process(report)
    assert report.notes["mailer"]["sent"] == "bad"  # every message delivered to us carries one
    twice = b"Delivered-To: abuse@example.net\nDelivered-To: tickets@example.net\nDelivered-To: Abuse@example.net\n"
    report = report_of(twice + sample("human.eml").replace(b"<2026", b"<other-2026"))
    mailer.process(report)
    assert report.notes["mailer"] == {"skipped": "delivered to our address abuse@example.net 2 times "
                                                 "(a forwarding loop)", "rule": "loop"}


#: An address for every built-in never pattern, and the rule that stops it (RFC 3834 robots come first).
_ROBOT_SENDERS = {
    "noreply": ("noreply@victim.example.com", "never"),
    "no-reply": ("No-Reply@victim.example.com", "never"),
    "no_reply": ("no_reply@victim.example.com", "never"),
    "noreply-*": ("noreply-alerts@victim.example.com", "never"),
    "*-noreply": ("alerts-noreply@victim.example.com", "never"),
    "do-not-reply": ("do-not-reply@victim.example.com", "never"),
    "donotreply": ("DoNotReply@victim.example.com", "never"),
    "do_not_reply": ("do_not_reply@victim.example.com", "never"),
    "mailer-daemon": ("mailer-daemon@victim.example.com", "robot"),
    "mailerdaemon": ("mailerdaemon@victim.example.com", "robot"),
    "postmaster": ("postmaster@victim.example.com", "robot"),
    "bounce": ("bounce@victim.example.com", "never"),
    "bounces": ("bounces+abuse=example.net@victim.example.com", "never"),
    "bounce-*": ("bounce-4711-abuse=example.net@mailer.example.org", "never"),
    "bounces-*": ("bounces-4711@mailer.example.org", "never"),
    "bounces_*": ("bounces_abuse-at-domain.tld@abuse-reporting.webiron.com", "never"),  # corpus: webiron
    "*-bounce": ("monitor-bounce@projecthoneypot.org", "never"),  # corpus: Project Honey Pot
    "*-bounces": ("list-bounces@victim.example.com", "never"),
    "fbl": ("fbl@mail.example.org", "never"),
    "fbl-*": ("fbl-reports@mail.example.org", "never"),
    "*-fbl": ("yahoo-fbl@mail.example.org", "never"),
    "fblbounces": ("fblbounces@senderscore.net", "never"),  # corpus: Return Path / Validity
    "feedbackloop": ("feedbackloop@fbl.zoho.com", "never"),  # corpus: Zoho
    "feedback-loop": ("feedback-loop@mail.example.org", "never"),
    "arf": ("arf@mail.example.org", "never"),
    "arf-*": ("arf-reports@mail.example.org", "never"),
    "abuse-report": ("abuse-report@reporter.example.org", "never"),
    "abuse-reports": ("abuse-reports@cyscon.de", "never"),  # corpus: cyscon
    "autoreports": ("autoreports@shadowserver.org", "never"),  # corpus: Shadowserver
    "summary@spamcop.net": ("summary@spamcop.net", "never"),
    "@reports.spamcop.net": ("999999999@reports.spamcop.net", "never"),  # corpus: SpamCop
    "@bounces.spamcop.net": ("999999999@bounces.spamcop.net", "never"),
}


def test_every_built_in_never_pattern_has_a_case() -> None:
    from abuso.processors.mailer.policy import DEFAULT_NEVER

    assert sorted(_ROBOT_SENDERS) == sorted(DEFAULT_NEVER)


@pytest.mark.parametrize("pattern", sorted(_ROBOT_SENDERS))
@pytest.mark.parametrize("where", ["Reply-To", "From"])
def test_robot_senders_are_never_answered(pattern: str, where: str, tmp_path: Path) -> None:
    """As the address to answer (Reply-To) and as the author (From, with a human Reply-To)."""
    addr, rule = _ROBOT_SENDERS[pattern]
    raw = set_header(sample("human.eml"), where, f"Robot <{addr}>")
    mailer = make_mailer(tmp_path, dry_run=str(tmp_path / "out"))
    report = report_of(raw)
    mailer.process(report)
    note = report.notes["mailer"]
    assert note["rule"] == rule
    if rule == "never":
        assert note["skipped"] == f"{addr.lower()} is a robot sender (never list: {pattern})"
        assert str(note) == f"not answered: {addr.lower()} is a robot sender (never list: {pattern})"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("addr", [
    "noreplyteam@victim.example.com", "reply@victim.example.com", "fblanc@victim.example.com",  # François Blanc
    "arfan@victim.example.com", "summary@victim.example.com", "bouncer@victim.example.com",
    "jane@reports.spamcop.net.evil.example", "jane@notreports.spamcop.net", "abuse@spamcop.net",
])
def test_near_misses_are_answered(addr: str, tmp_path: Path) -> None:
    mailer = make_mailer(tmp_path, dry_run=str(tmp_path / "out"))
    report = report_of(set_header(sample("human.eml"), "Reply-To", addr))
    mailer.process(report)
    assert report.notes["mailer"]["sent"] == "bad" and report.notes["mailer"]["to"] == addr


def test_spamcop_summary_sample(tmp_path: Path) -> None:
    """No Precedence, no Auto-Submitted: only the never list keeps us from answering it."""
    mailer = make_mailer(tmp_path, dry_run=str(tmp_path / "out"))
    report = report_of(sample("spamcop-summary.eml"))
    mailer.process(report)
    assert str(report.notes["mailer"]) == ("not answered: summary@spamcop.net is a robot sender "
                                           "(never list: summary@spamcop.net)")
    lenient = make_mailer(tmp_path, dry_run=str(tmp_path / "out"), never_builtin=False)
    report = report_of(sample("spamcop-summary.eml"))
    lenient.process(report)
    assert report.notes["mailer"]["to"] == "summary@spamcop.net"  # the rule alone made the difference


def test_configured_never_list_extends_or_replaces_the_built_in_one(tmp_path: Path) -> None:
    never = ["updatestatusonly@mynetwatchman.com", "@shadowserver.org", "*-alerts@*.example.org"]
    cases = {
        "updatestatusonly@mynetwatchman.com": "updatestatusonly@mynetwatchman.com",
        "Reports@Dashboard.ShadowServer.org": "@shadowserver.org",  # a subdomain, any case
        "ids-alerts@soc.example.org": "*-alerts@*.example.org",
        "noreply@victim.example.com": "noreply",  # the built-in list still applies
    }
    extended = make_mailer(tmp_path, dry_run=str(tmp_path / "out"), never=never, period=0)
    replaced = make_mailer(tmp_path, dry_run=str(tmp_path / "out"), never=never, never_builtin=False, period=0)
    for addr, pattern in cases.items():
        report = report_of(set_header(sample("human.eml"), "Reply-To", addr))
        extended.process(report)
        assert report.notes["mailer"]["skipped"] == f"{addr.lower()} is a robot sender (never list: {pattern})"
        report = report_of(set_header(sample("human.eml"), "Reply-To", addr).replace(b"<2026", b"<r-2026"))
        replaced.process(report)
        if pattern == "noreply":
            assert report.notes["mailer"]["sent"] == "bad"
        else:
            assert report.notes["mailer"]["rule"] == "never"
    report = report_of(set_header(sample("human.eml"), "Reply-To", "soc@shadowserver.org.example"))
    extended.process(report)
    assert report.notes["mailer"]["sent"] == "bad"


def test_preview_decides_without_side_effects(tmp_path: Path) -> None:
    """What explain and dry runs show: the decision in words, no state file, no answer."""
    mailer = make_mailer(tmp_path, dry_run=str(tmp_path / "out"))
    would = mailer.preview(human_report())
    assert would == {"would": "good", "to": "security@victim.example.com"}
    assert str(would).startswith("would answer security@victim.example.com (good response)")
    robot = mailer.preview(report_of(sample("spamcop-summary.eml")))
    assert robot["rule"] == "never" and str(robot).startswith("not answered: summary@spamcop.net")
    mailer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_notes_keep_their_words_through_pickle_and_json(tmp_path: Path) -> None:
    """Batch workers send rendered text, the store writes JSON: the note is a dict with a sentence."""
    import json
    import pickle

    mailer = make_mailer(tmp_path, dry_run=str(tmp_path / "out"))
    report = report_of(sample("spamcop-summary.eml"))
    mailer.process(report)
    note = report.notes["mailer"]
    again = pickle.loads(pickle.dumps(note))
    assert again == note and str(again) == str(note)
    assert json.loads(json.dumps(report.to_dict()))["mailer"] == {"skipped": note["skipped"], "rule": "never"}


def test_run_output_says_who_was_answered_in_words(server: Recorder, tmp_path: Path) -> None:
    """`abuso run` text output, the explain processor, and JSON (structured) for the same batch."""
    import json
    import os
    import sys

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("human.eml", "spamcop-summary.eml", "x-loop.eml"):
        (inbox / name).write_bytes(sample(name))

    def run(fmt: str, explain: bool, port: int) -> str:
        cfg = tmp_path / f"{fmt}-{explain}.yaml"
        cfg.write_text(f"parsers: []\nprocessors:\n  - mailer: {{from: {OURS}, bad: {ETC / 'bad-response.txt'}, "
                       f"smtp: '127.0.0.1:{port}', state: {fmt}-{explain}.sqlite, period: 0}}\n"
                       + ("  - explain: {}\n" if explain else ""))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-m", "abuso", "run", "-c", str(cfg), "-f", fmt, str(inbox)],
                              capture_output=True, timeout=120, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done.stdout.decode()

    answered = "mailer: answered security@victim.example.com (bad response)"
    robot = "mailer: not answered: summary@spamcop.net is a robot sender (never list: summary@spamcop.net)"
    loop = "mailer: not answered: X-Loop names our address abuse@example.net (a mail loop)"
    text = run("text", False, server.port)
    for line in (answered, robot, loop):
        assert f"\n  {line}\n" in "\n" + text
    assert "{" not in text  # words, not a Python dict
    explained = run("text", True, server.port)
    for line in (answered, robot, loop):
        assert f"\n  {line}\n" in explained
    assert "{" not in explained.partition("Processors:")[2]
    lines = [json.loads(line) for line in run("json", False, server.port).splitlines()]
    by_file = {Path(d["file"]).name: d["mailer"] for d in lines}
    assert by_file["spamcop-summary.eml"] == {"skipped": robot.partition("not answered: ")[2], "rule": "never"}
    assert by_file["x-loop.eml"]["rule"] == "loop"
    assert by_file["human.eml"]["sent"] == "bad" and by_file["human.eml"]["via"] == "smtp"
    assert [m.rcpt_tos for m in server.messages] == [["security@victim.example.com"]] * 3


def test_header_index_reads_what_the_message_reads(corpus: Path) -> None:
    """Headers (one pass, for hostile mail with 100,000 headers) gives what msg.get gives, on every real report."""
    from abuso.normalize import header_str, parse_bytes
    from abuso.processors.mailer.policy import Headers

    names = ("From", "Reply-To", "Sender", "Return-Path", "Subject", "Date", "Message-ID", "References",
             "In-Reply-To", "Auto-Submitted", "Precedence", "X-Loop", "X-Abuso-Loop", "Content-Type", "Nope")
    files = sorted(corpus.rglob("*.eml")) + sorted(SAMPLES.glob("*.eml"))
    assert len(files) > 100
    for path in files:
        msg = parse_bytes(path.read_bytes())
        h = Headers(msg)
        for name in names:
            assert h.get(name) == header_str(msg, name), (path, name)
        assert h.raw("Received") == [str(v) for k, v in msg.raw_items() if k.lower() == "received"][:50]


# --- at most one answer per sender and period; never two per message ---------------------------


def test_one_answer_per_sender_per_period(server: Recorder, tmp_path: Path) -> None:
    clock = [1_800_000_000.0]
    mailer = make_mailer(tmp_path, server, period="1d")
    mailer.now = lambda: clock[0]
    mailer.process(human_report())
    second = human_report(Message_ID="<second@victim.example.com>")
    mailer.process(second)
    assert second.notes["mailer"]["skipped"].startswith("already answered security@victim.example.com at ")
    other = human_report(Message_ID="<third@victim.example.com>", Reply_To="noc@other.example.org")
    mailer.process(other)
    mailer.close()
    assert [m.rcpt_tos for m in server.messages] == [["security@victim.example.com"], ["noc@other.example.org"]]

    # A later process (procmail runs one per message) reads the same state file.
    clock[0] += 86400 - 1
    later = make_mailer(tmp_path, server, period="1d")
    later.now = lambda: clock[0]
    fourth = human_report(Message_ID="<fourth@victim.example.com>")
    later.process(fourth)
    assert "already answered" in fourth.notes["mailer"]["skipped"]
    clock[0] += 2
    fifth = human_report(Message_ID="<fifth@victim.example.com>")
    later.process(fifth)
    later.close()
    assert fifth.notes["mailer"]["sent"] == "good"
    assert len(server.messages) == 3


def test_a_retried_message_is_not_answered_twice(server: Recorder, tmp_path: Path) -> None:
    """The MTA re-delivers the whole message when a later processor failed transiently."""
    first = make_mailer(tmp_path, server, period=0)
    first.process(human_report())
    first.close()
    again = make_mailer(tmp_path, server, period=0)
    report = human_report()
    again.process(report)
    again.close()
    assert len(server.messages) == 1
    assert report.notes["mailer"]["skipped"].startswith("this message was already handled (sent at ")
    # With the period off, a different message from the same sender is answered.
    other = make_mailer(tmp_path, server, period=0)
    other.process(human_report(Message_ID="<new@victim.example.com>"))
    other.close()
    assert len(server.messages) == 2


def _answer_in_child(args: tuple) -> dict:
    port, state, message_id, barrier = args
    mailer = make_mailer(Path(state).parent, smtp=f"127.0.0.1:{port}", state=state)
    report = human_report(Message_ID=message_id)
    # Widen the race: pause between the claim's SELECT and its INSERT.
    mailer.state.db().set_trace_callback(lambda sql: time.sleep(0.3) if sql.startswith("INSERT") else None)
    barrier.wait()
    mailer.process(report)
    mailer.close()
    return report.notes["mailer"]


def test_parallel_deliveries_answer_a_sender_once(server: Recorder, tmp_path: Path) -> None:
    """procmail starts one abuso per message, possibly at the same instant: the claim is atomic."""
    import multiprocessing

    # forkserver, not fork: the SMTP server's thread is running in this process, and a
    # fork taken while another thread holds a lock can leave the child hung for ever.
    ctx = multiprocessing.get_context("forkserver")
    n = 4
    with ctx.Manager() as manager:
        barrier = manager.Barrier(n)
        jobs = [(server.port, str(tmp_path / "mailer.sqlite"), f"<par-{i}@victim.example.com>", barrier)
                for i in range(n)]
        with ctx.Pool(n) as pool:
            notes = pool.map_async(_answer_in_child, jobs).get(timeout=120)
    assert sorted("sent" in note for note in notes) == [False] * (n - 1) + [True]
    assert len(server.messages) == 1


# --- SMTP failures -----------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["rcpt_reply", "data_reply"])
def test_4xx_is_transient_and_the_retry_answers(where: str, server: Recorder, tmp_path: Path) -> None:
    setattr(server, where, "451 4.3.0 Try again later")
    mailer = make_mailer(tmp_path, server)
    with pytest.raises(TransientError, match="451 4.3.0 Try again later"):
        mailer.process(human_report())
    assert server.messages == [] and rows(tmp_path) == []  # the claim was released
    setattr(server, where, None)
    report = human_report()
    mailer.process(report)  # same processor: connection was reset or is re-opened
    mailer.close()
    assert report.notes["mailer"]["sent"] == "good" and len(server.messages) == 1


def test_5xx_fails_only_this_answer(server: Recorder, tmp_path: Path) -> None:
    server.rcpt_reply = "550 5.1.1 No such user"
    mailer = make_mailer(tmp_path, server)
    report = human_report()
    mailer.process(report)
    assert report.notes["mailer"]["failed"].endswith("answered 550 5.1.1 No such user")
    assert rows(tmp_path) == [("security@victim.example.com", "failed", "good")]
    server.rcpt_reply = None
    other = human_report(Message_ID="<other@victim.example.com>", Reply_To="noc@other.example.org")
    mailer.process(other)
    mailer.close()
    assert other.notes["mailer"]["sent"] == "good"
    assert [m.rcpt_tos for m in server.messages] == [["noc@other.example.org"]]


def test_interrupted_delivery_never_answers_twice(server: Recorder, tmp_path: Path) -> None:
    """The runner's time limit fires while the server holds our answer: the retry must not send another."""
    (tmp_path / "bad.txt").write_text("${reasons}\n")
    config = {"parsers": [], "processors": [{"mailer": {
        "from": OURS, "bad": str(tmp_path / "bad.txt"), "smtp": f"127.0.0.1:{server.port}",
        "state": str(tmp_path / "mailer.sqlite"), "period": 0}}]}
    server.delay = 3.0
    with Pipeline.from_config(config) as pipeline:
        outcome = process_item(pipeline, str, sample("human.eml"), "human.eml", 1.0)
    assert outcome.status == QUARANTINED and "over timeout 1 s" in outcome.reason
    assert len(server.messages) == 1  # the server did get it
    server.delay = 0
    with Pipeline.from_config(config) as pipeline:
        report = pipeline.process(sample("human.eml"), "human.eml")
    assert report.notes["mailer"]["skipped"].startswith("this message was already handled (pending at ")
    assert len(server.messages) == 1


def test_unconfirmed_answer_is_transient_but_never_resent(server: Recorder, tmp_path: Path) -> None:
    """No reply after our message went out: the server may hold it (RFC 1047), so the retry stays silent."""
    server.delay = 3.0
    mailer = make_mailer(tmp_path, server, timeout=1.0)
    with pytest.raises(TransientError, match="did not confirm the message to security@victim.example.com"):
        mailer.process(human_report())
    assert len(server.messages) == 1
    server.delay = 0
    report = human_report()
    mailer.process(report)
    mailer.close()
    assert report.notes["mailer"]["skipped"].startswith("this message was already handled (pending at ")
    assert len(server.messages) == 1
    assert rows(tmp_path) == [("security@victim.example.com", "pending", "good")]


def test_server_down_is_transient(tmp_path: Path) -> None:
    mailer = make_mailer(tmp_path, smtp=f"127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(TransientError, match="Connection refused|ConnectionRefused"):
        mailer.process(human_report())
    assert rows(tmp_path) == []


def test_unusable_or_locked_state_is_transient(server: Recorder, tmp_path: Path) -> None:
    """No answer without its state (it is what prevents floods): the MTA keeps the message and retries."""
    (tmp_path / "a-file").write_text("")
    mailer = make_mailer(tmp_path, server, state=str(tmp_path / "a-file" / "mailer.sqlite"))
    with pytest.raises(TransientError, match="state .*a-file"):
        mailer.process(human_report())
    mailer = make_mailer(tmp_path, server, timeout=1.0)
    mailer.process(human_report())  # creates the state
    holder = sqlite3.connect(tmp_path / "mailer.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another abuso process, stuck
    try:
        with pytest.raises(TransientError, match="database is locked"):
            mailer.process(human_report(Message_ID="<locked@victim.example.com>", Reply_To="noc@other.example"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    mailer.process(human_report(Message_ID="<later@victim.example.com>", Reply_To="noc@other.example"))
    mailer.close()
    assert [m.rcpt_tos for m in server.messages] == [["security@victim.example.com"], ["noc@other.example"]]


def test_batch_reuses_one_connection_and_reconnects(server: Recorder, tmp_path: Path) -> None:
    mailer = make_mailer(tmp_path, server, period=0)
    for i in range(20):
        mailer.process(human_report(Message_ID=f"<batch-{i}@victim.example.com>"))
    assert len(server.messages) == 20 and len({m.peer for m in server.messages}) == 1
    mailer.transport._smtp.sock.close()  # the server or a firewall dropped the idle connection
    report = human_report(Message_ID="<after-drop@victim.example.com>")
    mailer.process(report)
    mailer.close()
    assert report.notes["mailer"]["sent"] == "good" and len(server.messages) == 21


# --- STARTTLS and AUTH -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 and localhost, made here (cryptography, else openssl)."""
    folder = tmp_path_factory.mktemp("tls")
    try:
        _certs_cryptography(folder)
    except ImportError:
        _certs_openssl(folder)
    return folder / "ca.pem", folder / "cert.pem", folder / "key.pem"


def _certs_cryptography(folder: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("abuso test CA")).issuer_name(name("abuso test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "cert.pem").write_bytes(cert.public_bytes(pem))
    (folder / "key.pem").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))


def _certs_openssl(folder: Path) -> None:
    def run(*args: str) -> None:
        try:
            subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)
        except FileNotFoundError:
            pytest.skip("needs the cryptography package or the openssl command to make a test certificate")

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=abuso test CA",
        "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", "key.pem", "-out", "cert.csr", "-subj", "/CN=localhost")
    (folder / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "cert.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
        "-extfile", "ext.cnf", "-out", "cert.pem")


@pytest.fixture
def tls_server(certs):
    _, cert, key = certs
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        ok = (auth_data.login, auth_data.password) == (b"abuse", b"s3cret pass")
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 235 or 535

    recorder = Recorder()
    controller = start(recorder, tls_context=context, require_starttls=True, auth_required=True,
                       auth_require_tls=True, authenticator=authenticator)
    recorder.logins = logins
    yield recorder
    controller.stop()


def test_starttls_and_auth(tls_server: Recorder, certs, tmp_path: Path) -> None:
    ca, _, _ = certs
    (tmp_path / "password").write_text("s3cret pass\n")
    mailer = make_mailer(tmp_path, tls_server, starttls=True, cafile=str(ca), user="abuse",
                         password_file=str(tmp_path / "password"))
    report = human_report()
    mailer.process(report)
    mailer.close()
    assert report.notes["mailer"]["sent"] == "good"
    assert tls_server.logins == [(b"abuse", b"s3cret pass")]
    assert [m.rcpt_tos for m in tls_server.messages] == [["security@victim.example.com"]]


@pytest.mark.parametrize("options, error", [
    ({"starttls": True}, "CERTIFICATE_VERIFY_FAILED"),  # system CAs do not know our test CA
    ({}, "530"),  # no STARTTLS: the server refuses, we never send in clear
    ({"starttls": True, "cafile": "CA", "user": "abuse", "password_file": "WRONG"}, "535"),
])
def test_tls_and_auth_failures_are_transient(options, error, tls_server, certs, tmp_path: Path) -> None:
    (tmp_path / "wrong").write_text("guess\n")
    options = {k: (str(certs[0]) if v == "CA" else str(tmp_path / "wrong") if v == "WRONG" else v)
               for k, v in options.items()}
    mailer = make_mailer(tmp_path, tls_server, **options)
    with pytest.raises(TransientError, match=error):
        mailer.process(human_report())
    mailer.close()
    assert tls_server.messages == [] and rows(tmp_path) == []


# --- dry run and sendmail -----------------------------------------------------------------------


def test_dry_run_writes_eml_files_named_by_time_not_content(tmp_path: Path) -> None:
    out = tmp_path / "answers"
    mailer = make_mailer(tmp_path, dry_run=str(out), smtp=f"127.0.0.1:{free_port()}", period=0)
    hostile = human_report(Subject="../../../etc/passwd\u2028Bcc: x@evil.example", Message_ID="<a/../../b@x>")
    mailer.process(hostile)
    mailer.process(human_report(Message_ID="<two@victim.example.com>"))
    mailer.close()
    files = sorted(out.iterdir())
    assert [f.name for f in files if not re.fullmatch(r"\d{8}T\d{6}-\d+-\d{6}-[0-9a-f]{8}\.eml", f.name)] == []
    assert len(files) == 2  # and no temporary file left behind
    assert hostile.notes["mailer"]["via"] == "dry-run" and hostile.notes["mailer"]["file"] == str(files[0])
    msg = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert msg["To"] == "security@victim.example.com" and msg["Bcc"] is None
    assert msg["Subject"] == "Re: ../../../etc/passwd Bcc: x@evil.example"
    assert msg["In-Reply-To"] == "<a/../../b@x>"
    assert [p.name for p in tmp_path.iterdir() if p.name not in ("answers", "mailer.sqlite")] == []


def _msmtp() -> str | None:
    """The system's sendmail when msmtp provides it (msmtp-mta), else msmtp itself: same -t -oi interface."""
    import shutil

    for path in ("/usr/sbin/sendmail", shutil.which("msmtp")):
        if path is None:
            continue
        try:
            out = subprocess.run([path, "--version"], capture_output=True, timeout=10).stdout
        except OSError:
            continue
        if b"msmtp" in out:
            return path
    return None


def test_sendmail_oi_through_msmtp(msmtp: str, server: Recorder, tmp_path: Path) -> None:
    mailer = make_mailer(tmp_path, sendmail=msmtp)
    report = human_report()
    mailer.process(report)
    mailer.close()
    assert report.notes["mailer"]["via"] == "sendmail" and report.notes["mailer"]["sent"] == "good"
    (got,) = server.messages
    assert got.rcpt_tos == ["security@victim.example.com"]  # the envelope on the command line
    assert got.mail_from in ("", "<>")
    assert got.message["Subject"] == "Re: SSH brute force from 192.0.2.17"
    assert "192.0.2.17" in got.message.get_content()


def test_missing_sendmail_is_a_config_error(tmp_path: Path) -> None:
    """An operator's mistake stops the run at start (exit 78), instead of deferring every message."""
    for program in (str(tmp_path / "no-such-sendmail"), "no-such-sendmail-in-path"):
        with pytest.raises(ConfigError) as e:
            make_mailer(tmp_path, sendmail=program)
        assert str(e.value).startswith("processors.mailer.sendmail: cannot run ") and e.value.status == 78
    (tmp_path / "pw").write_text("x\n")
    with pytest.raises(ConfigError, match="processors.mailer.password_file: cannot read"):
        make_mailer(tmp_path, smtp="localhost:25", user="u", password_file=str(tmp_path / "missing-pw"))
    with pytest.raises(ConfigError, match="processors.mailer.cafile: cannot read"):
        make_mailer(tmp_path, smtp="localhost:25", cafile=str(tmp_path / "missing-ca.pem"))


def test_sendmail_gone_after_start_is_transient(tmp_path: Path) -> None:
    """Removed while abuso runs (a package upgrade): retry later; the note never claims a sent answer."""
    program = tmp_path / "sendmail"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    mailer = make_mailer(tmp_path, sendmail=str(program))
    program.unlink()
    with pytest.raises(TransientError, match="cannot run"):
        mailer.process(human_report())
    assert rows(tmp_path) == []


@pytest.fixture
def msmtp(server: Recorder, tmp_path: Path, monkeypatch) -> str:
    """A real sendmail (msmtp) pointed at the test SMTP server through $HOME/.msmtprc."""
    path = _msmtp()
    if path is None:
        pytest.skip("needs a real sendmail that can be pointed at the test SMTP server: apt-get install msmtp "
                    "(.ci/install-mailer.sh does)")
    home = tmp_path / "home"
    home.mkdir()
    rc = home / ".msmtprc"
    rc.write_text(f"account default\nhost 127.0.0.1\nport {server.port}\nauth off\ntls off\n"
                  f"from {OURS}\nallow_from_override on\n")
    rc.chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    return path


@pytest.mark.parametrize("reply, outcome", [
    ("550 5.1.1 No such user", "refused"),  # msmtp exits 65 (EX_DATAERR): this answer fails for good
    ("451 4.3.0 Try again later", "transient"),  # msmtp exits 69 (EX_UNAVAILABLE): the retry may answer
])
def test_sendmail_refusals(reply: str, outcome: str, msmtp: str, server: Recorder, tmp_path: Path) -> None:
    server.rcpt_reply = reply
    mailer = make_mailer(tmp_path, sendmail=msmtp)
    report = human_report()
    if outcome == "transient":
        with pytest.raises(TransientError, match="exit 69.*451 4.3.0"):
            mailer.process(report)
        assert rows(tmp_path) == []
    else:
        mailer.process(report)
        note = report.notes["mailer"]
        assert note["failed"].startswith(f"{msmtp} exit 65: ") and "550 5.1.1 No such user" in note["failed"]
        assert str(note).startswith("answer to security@victim.example.com refused (good response): ")
        assert rows(tmp_path) == [("security@victim.example.com", "failed", "good")]
    mailer.close()
    assert server.messages == []


def test_sendmail_relay_down_is_transient(msmtp: str, tmp_path: Path) -> None:
    (tmp_path / "home" / ".msmtprc").write_text(f"account default\nhost 127.0.0.1\nport {free_port()}\n"
                                                 f"auth off\ntls off\nfrom {OURS}\n")
    mailer = make_mailer(tmp_path, sendmail=msmtp)
    with pytest.raises(TransientError, match="exit 75"):
        mailer.process(human_report())
    assert rows(tmp_path) == []


# --- transports on their own (what `abuso notify` will reuse) ------------------------------------


def _plain(to: str = "a@victim.example.com") -> email.message.EmailMessage:
    from abuso.processors.mailer.templates import Template, plain_message

    body = Template("Hello ${name},\n${missing} stays; ${name} once.").render({"name": "${name} B\u00e4r"})
    return plain_message(f"Desk <{OURS}>", to, "digest", body, [("Auto-Submitted", "auto-generated")])


def test_smtp_transport_envelope_with_several_recipients(server: Recorder) -> None:
    from abuso.processors.mailer.transport import Envelope, Refused, SmtpTransport

    class Picky(Recorder):
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            return "550 5.1.1 unknown" if address.startswith("gone") else await super().handle_RCPT(
                server, session, envelope, address, rcpt_options)

    picky = Picky()
    controller = start(picky)
    try:
        smtp = SmtpTransport("127.0.0.1", picky.port, timeout=10, label="notify")
        sent = smtp.send(_plain(), Envelope("bounces@example.net", ("a@victim.example.com", "gone@victim.example.com",
                                                                  "b@other.example")))
        assert sent.via == "smtp" and sent.file is None
        assert sent.refused == {"gone@victim.example.com": "550 5.1.1 unknown"}
        (got,) = picky.messages
        assert got.mail_from == "bounces@example.net"
        assert got.rcpt_tos == ["a@victim.example.com", "b@other.example"]
        assert got.message.get_content() == "Hello ${name} Bär,\n${missing} stays; ${name} Bär once.\n"
        with pytest.raises(Refused, match="gone@victim.example.com: 550 5.1.1 unknown; gone2@x.example: 550"):
            smtp.send(_plain(), Envelope("", ("gone@victim.example.com", "gone2@x.example")))
        smtp.send(_plain(), Envelope("", ("c@victim.example.com",)))  # the connection was RSET, not lost
        assert [m.rcpt_tos for m in picky.messages][-1] == ["c@victim.example.com"]
        assert len({m.peer for m in picky.messages}) == 1
        smtp.close()
    finally:
        controller.stop()


def test_smtp_close_after_the_server_went_away(tmp_path: Path) -> None:
    """QUIT to a dead server is no error (SMTPServerDisconnected/OSError expected and nothing else)."""
    recorder = Recorder()
    controller = start(recorder)
    mailer = make_mailer(tmp_path, recorder)
    mailer.process(human_report())
    controller.stop()
    mailer.close()
    assert mailer.transport._smtp is None and len(recorder.messages) == 1


def test_sendmail_and_folder_transports_take_the_envelope(msmtp: str, server: Recorder, tmp_path: Path) -> None:
    from abuso.processors.mailer.transport import Envelope, from_options

    sendmail = from_options({"sendmail": msmtp}, Path)
    sent = sendmail.send(_plain(), Envelope("", ("a@victim.example.com", "-oQ@b.example")))
    assert sent.via == "sendmail"
    (got,) = server.messages
    assert got.rcpt_tos == ["a@victim.example.com", "-oQ@b.example"]  # after --: an address, not an option
    assert got.mail_from in ("", "<>")
    folder = from_options({"dry_run": str(tmp_path / "out"), "smtp": "localhost:25"}, Path)
    sent = folder.send(_plain(), Envelope("", ("a@victim.example.com",)))
    assert sent.via == "dry-run" and Path(sent.file).parent == tmp_path / "out"
    written = email.message_from_bytes(Path(sent.file).read_bytes(), policy=policy.default)
    assert written["To"] == "a@victim.example.com" and written["Auto-Submitted"] == "auto-generated"
    assert written.get_content() == "Hello ${name} Bär,\n${missing} stays; ${name} Bär once.\n"


# --- templates and header safety ------------------------------------------------------------------


def test_template_substitution_is_single_pass_and_tolerant(tmp_path: Path) -> None:
    template = tmp_path / "t.txt"
    template.write_text("A ${nope} B $5 C ${subject} D $$ E ${incidents F ${count} G ${from}|${to}")
    mailer = make_mailer(tmp_path, good=str(template), dry_run=str(tmp_path / "out"))
    report = human_report(Subject="${incidents} $count ${reasons}")
    mailer.process(report)
    (f,) = (tmp_path / "out").iterdir()
    body = email.message_from_bytes(f.read_bytes(), policy=policy.default).get_content()
    assert body == ("A ${nope} B $5 C ${incidents} $count ${reasons} D $ E ${incidents F 3 "
                    "G Jane Admin <jane@victim.example.com>|security@victim.example.com\n")


_SUBJECT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(subject=_SUBJECT, name=_SUBJECT)
def test_no_header_injection_from_untrusted_text(subject: str, name: str, tmp_path: Path) -> None:
    """Encoded words may decode to CR, LF, NUL and friends: the answer keeps its own headers only."""
    def word(text: str) -> str:
        return "=?utf-8?b?" + b64encode(text.encode()).decode() + "?="

    raw = set_header(set_header(sample("human.eml"), "Subject", word(subject)), "Reply-To", None)
    raw = set_header(raw, "From", f"{word(name)} <jane@victim.example.com>")
    report = report_of(raw)
    mailer = make_mailer(tmp_path, period=0)
    to, kind = mailer.decide(report)
    assert (to, kind) == ("jane@victim.example.com", "bad")
    out = mailer.compose(report, "bad", to).as_bytes()
    msg = email.message_from_bytes(out, policy=policy.default)
    assert sorted(msg.keys()) == sorted(["From", "To", "Subject", "Date", "Message-ID", "In-Reply-To",
                                         "References", "Auto-Submitted", "X-Auto-Response-Suppress",
                                         "X-Abuso-Loop", "X-Loop", "Content-Type", "Content-Transfer-Encoding",
                                         "MIME-Version"])
    assert msg["To"] == to
    assert not re.search(r"[\x00-\x1f\x7f\u2028\u2029\x85]", str(msg["Subject"]))
    assert msg["Subject"].startswith(("Re: ", "re:", "RE:", "Re:", "rE:"))
    head = out.partition(b"\n\n")[0]
    assert all(len(line) <= 998 for line in head.split(b"\n"))


def test_clean() -> None:
    assert clean("a\r\nBcc: b\x00c\u2028d") == "a Bcc: b c d"
    assert len(clean("x" * 1000)) == 200


# --- config -----------------------------------------------------------------------------------


@pytest.mark.parametrize("options, key, message", [
    ("{from: abuse@example.net, good: g.txt, perod: 1d}", "perod", "unknown option"),
    ("{good: g.txt}", "from", "required: our own address"),
    ("{from: abuse@example.net, good: g.txt, period: soon}", "period", "must be a duration"),
    ("{from: abuse@example.net}", "good", "at least one template"),
    ("{from: abuse@example.net, good: g.txt, smtp: 'mail.example.net:99999'}", "smtp", "port out of range"),
    ("{from: abuse@example.net, good: g.txt, smtp: mail.example.net, user: u, password_file: p}", "starttls",
     "password in clear"),
    ("{from: abuse@example.net, good: g.txt, smtp: localhost, sendmail: /usr/sbin/sendmail}", "sendmail",
     "choose one"),
    ("{from: abuse@example.net, good: g.txt, starttls: 'yes'}", "starttls", "true or false"),
    ("{from: abuse@example.net, good: g.txt, never: noreply}", "never", "must be a list of strings"),
    ("{from: abuse@example.net, good: g.txt, never: ['no reply']}", "never", "not an address pattern: 'no reply'"),
    ("{from: abuse@example.net, good: g.txt, never: ['a@b@c']}", "never", "not an address pattern"),
    ("{from: abuse@example.net, good: g.txt, never: ['@']}", "never", "not an address pattern"),
    ("{from: abuse@example.net, good: g.txt, never: [5]}", "never", "must be a non-empty string, not 5"),
    ("{from: abuse@example.net, good: g.txt, ours: [abuse]}", "ours", "not a plain address: 'abuse'"),
    ("{from: abuse@example.net, good: g.txt, ours: abuse@example.org}", "ours", "must be a list of strings"),
    ("{from: abuse@example.net, good: g.txt, never_builtin: 'no'}", "never_builtin", "true or false"),
])
def test_config_errors_name_file_line_and_key(options: str, key: str, message: str, tmp_path: Path) -> None:
    cfg = tmp_path / "abuso.yaml"
    cfg.write_text(f"parsers: []\nprocessors:\n\n  - mailer: {options}\n")
    (tmp_path / "g.txt").write_text("Thanks.\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    assert re.match(rf"{re.escape(str(cfg))}:4: processors\.mailer\.{key}(\[\d+\])?: ", str(e.value)), str(e.value)
    assert message in str(e.value)


def test_unreadable_template_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "latin1.txt").write_bytes(b"Gr\xfc\xdfe ${subject}\n")
    for name, says in (("missing.txt", "{path}: no such file"), ("latin1.txt", "cannot read template {path}: "
                                                                           "'utf-8' codec can't decode byte 0xfc")):
        config = {"parsers": [], "processors": [{"mailer": {"from": OURS, "bad": str(tmp_path / name)}}]}
        with pytest.raises(ConfigError) as e:
            Pipeline.from_config(config)
        assert str(e.value).startswith("processors.mailer.bad: " + says.format(path=tmp_path / name))
        assert e.value.status == 78


def test_pipeline_end_to_end(server: Recorder, tmp_path: Path) -> None:
    """The mailer as a config names it, with relative template paths resolved against the config folder."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "bad.txt").write_text("Nothing usable in ${subject}:\n${reasons}\n")
    cfg = tmp_path / "abuso.yaml"
    cfg.write_text(f"parsers: []\nprocessors:\n  - mailer: {{from: {OURS}, bad: etc/bad.txt, "
                   f"smtp: '127.0.0.1:{server.port}', state: state.sqlite}}\n")
    with Pipeline.from_config(cfg) as pipeline:
        report = pipeline.process(sample("human.eml"), "human.eml")
        robot = pipeline.process(sample("bounce.eml"), "bounce.eml")
    assert report.notes["mailer"]["sent"] == "bad" and robot.notes["mailer"]["skipped"].startswith("null sender")
    (got,) = server.messages
    assert got.message.get_content() == ("Nothing usable in SSH brute force from 192.0.2.17:\n"
                                         "  (no parser looked at this message)\n")
    assert (tmp_path / "state.sqlite").exists()

    down = tmp_path / "down.yaml"
    down.write_text(f"parsers: []\nprocessors:\n  - mailer: {{from: {OURS}, bad: etc/bad.txt, timeout: 2, "
                    f"smtp: '127.0.0.1:{free_port()}', state: down.sqlite}}\n")
    with Pipeline.from_config(down) as pipeline, pytest.raises(TransientError):
        pipeline.process(sample("human.eml"), "human.eml")


def test_procmail_pipe_exit_statuses(server: Recorder, tmp_path: Path) -> None:
    """`abuso run -c CONFIG < message`: 0 and one answer; 75 (EX_TEMPFAIL) while the SMTP server is down."""
    import os
    import sys

    def run(port: int) -> subprocess.CompletedProcess:
        cfg = tmp_path / "abuso.yaml"
        cfg.write_text(f"parsers: []\nprocessors:\n  - mailer: {{from: {OURS}, bad: {ETC / 'bad-response.txt'}, "
                       f"smtp: '127.0.0.1:{port}', state: state.sqlite, timeout: 5}}\n")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.run([sys.executable, "-m", "abuso", "run", "-c", str(cfg)], input=sample("human.eml"),
                              capture_output=True, timeout=60, env=env, cwd=tmp_path)

    down = run(free_port())
    assert down.returncode == 75, down.stderr
    assert server.messages == []
    done = run(server.port)
    assert done.returncode == 0, done.stderr
    assert [m.rcpt_tos for m in server.messages] == [["security@victim.example.com"]]
    again = run(server.port)  # the MTA delivers the same message once more
    assert again.returncode == 0 and len(server.messages) == 1
