"""Answer the reporter: what we recognised, or why nothing could be used.

Hostile mail arrives unattended, so the rule is to answer less rather than
more. RFC 3834 suppressions come first (null sender, MAILER-DAEMON-ish
senders, ``Auto-Submitted``, ``Precedence``, ``List-*``, bounces, read
receipts and ARF feedback loops, our own ``X-Abuso-Loop`` header, our own
Message-IDs and replies to them, mail from our own address); then at most
one answer per recipient per ``period`` and never two answers to the same
message (the MTA retries a whole message after a transient failure).

That state lives in a small SQLite file of its own (option ``state``,
default ``~/abuso/mailer.sqlite``; WAL mode, so keep it on a local disk),
separate from the ``store`` so that the mailer works with or without one;
parallel abuso processes share it safely. Table ``answers``: recipient
(lower-cased address), report (SHA-256 of the raw message), at (Unix time),
status (pending, sent or failed), kind, message_id. Rows older than the
period (at least a week, to cover MTA retries) are pruned.

Templates use ``string.Template`` syntax: ``${subject}``, ``${date}``,
``${message_id}``, ``${from}`` (the reporter), ``${count}``, ``${incidents}``
(an aligned table), ``${reasons}`` and ``${to}``. Unknown placeholders are
left as written; untrusted values are inserted once and never re-expanded.
Customer and RADIUS details attached to incidents are never sent.

Options::

    from: Abuse Desk <abuse@example.net>   # required; also the loop header and Message-ID domain
    good: etc/good-response.txt            # valid reports (omit: no answer to them)
    bad: etc/bad-response.txt              # reports without incidents (omit: no answer)
    smtp: localhost:25                     # or [::1]:587; or instead: sendmail: /usr/sbin/sendmail
    starttls: false                        # required before AUTH to a remote host; never falls back
    cafile: /etc/ssl/our-ca.pem            # to verify the server (default: system CAs)
    user: abuso                            # AUTH, with password_file (first line is the password)
    password_file: /etc/abuso/smtp.pw
    timeout: 30                            # seconds, SMTP or sendmail
    envelope_from: <>                      # RFC 3834 3.3: the null sender, or an address for bounces
    period: 1d                             # one answer per recipient per period; 0: no limit
    state: ~/abuso/mailer.sqlite
    dry_run: answers/                      # write .eml files there instead of sending (state applies)
    max_rows: 50                           # incidents and dropped addresses listed at most
    authserv_id: mx.example.net            # answer only senders our MTA saw pass SPF/DKIM/DMARC
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import sqlite3
import string
import time
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..durations import parse_duration
from ..errors import ConfigError, TransientError
from ..lazy import lazy_compile
from ..model import Report
from ..options import Option
from .base import Processor

#: Added to every answer; mail carrying it (any value) is never answered.
LOOP_HEADER = "X-Abuso-Loop"
#: Our Message-IDs start with this, so replies to our answers are recognised
#: even when a forwarder stripped the loop header.
ID_PREFIX = "abuso-reply."

#: Local parts of robots and lists (RFC 3834 section 2): checked in Return-Path, Sender, From, Reply-To.
_ROBOT = lazy_compile(r"^(?:mailer-?daemon|mail-daemon|postmaster|listserv|majordomo|owner-.*|.*-owner|.*-request)$",
                    re.I)
#: Addresses nobody reads: never answered, but fine as an envelope sender (mailing services use them).
_NOREPLY = lazy_compile(r"^(?:no-?reply|do-?not-?reply|bounces?|.*-bounces?)(?:[+-].*)?$", re.I)
_MSGID = lazy_compile(r"<[^<>\s\x00-\x1f\x7f]{1,250}>")
_CONTROL = lazy_compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
_ADDRESS = lazy_compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
#: Headers that mark automatic mail besides Auto-Submitted (vacation programs in the wild).
_AUTO_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Auto-Reply")
#: State rows are kept at least this long: MTAs retry deferred mail for about five days.
_MIN_KEEP = 7 * 86400


class Skip(Exception):
    """Why this report gets no answer (goes to ``notes["mailer"]["skipped"]``)."""


class DeliveryUnknown(TransientError):
    """The answer may have gone out (no reply after the message was sent): keep the claim, never resend."""


def parse_hostport(value: Any) -> tuple[str, int]:
    """'host', 'host:587', '[::1]:25' -> (host, port)."""
    s = str(value).strip()
    m = re.match(r"^\[([^\]]+)\](?::(\d+))?$", s) or re.match(r"^([^:\s]+)(?::(\d+))?$", s)
    if not m:
        raise ValueError(f"not host:port: {value!r}")
    port = int(m.group(2) or 25)
    if not 0 < port < 65536:
        raise ValueError(f"port out of range: {value!r}")
    return m.group(1), port


def clean(value: Any, limit: int = 200) -> str:
    """One line of untrusted text: control characters (CR, LF, ...) become spaces, length is capped."""
    s = " ".join(_CONTROL.sub(" ", str(value)).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _address(header: str | None) -> str | None:
    """The first address in a header, lower-cased, if it is a plain ASCII addr-spec we dare send to."""
    if not header:
        return None
    try:
        pairs = getaddresses([header])
    except Exception:
        return None
    for _, addr in pairs:
        addr = addr.strip()
        if addr:
            return addr.lower() if _ADDRESS.match(addr) and ".." not in addr else None
    return None


def _check_from(value: str) -> None:
    if _address(value) is None:
        raise ValueError(f"not a usable address: {value!r}")


def _check_envelope(value: str) -> None:
    if value not in ("", "<>") and _address(value) is None:
        raise ValueError("an address, or <> for the null sender (RFC 3834)")


class MailerProcessor(Processor):
    """Answers the reporter with the ``good`` or ``bad`` template (see module docstring)."""

    name = "mailer"
    OPTIONS = (
        Option("from", "str", required=True, check=_check_from, help="our own address, e.g. abuse@example.net"),
        Option("good", "file", help="the template answering valid reports"),
        Option("bad", "file", help="the template answering reports without incidents"),
        Option("smtp", "str", "localhost:25", check=parse_hostport, help="host or host:port"),
        Option("starttls", "bool", False),
        Option("cafile", "file", help="CA certificates to verify the SMTP server"),
        Option("user", "str", help="SMTP AUTH login, with password_file"),
        Option("password_file", "file"),
        Option("timeout", "number", 30, above=0, help="seconds, SMTP or sendmail"),
        Option("sendmail", "program", help="a sendmail program instead of smtp"),
        Option("dry_run", "folder", help="write .eml files there instead of sending"),
        Option("period", "duration", "1d", help="one answer per recipient per period"),
        Option("state", "output", "~/abuso/mailer.sqlite"),
        Option("envelope_from", "str", "<>", check=_check_envelope),
        Option("max_rows", "int", 50, min=1),
        Option("authserv_id", "str", help="answer only senders our MTA saw pass SPF/DKIM/DMARC"),
    )
    side_effects = True

    @classmethod
    def check_rules(cls, options: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        if not options.get("good") and not options.get("bad"):
            yield "good", "give at least one template: good, bad (a path)"
        if options.get("sendmail") and "smtp" in options:
            yield "sendmail", "choose one way to send: smtp or sendmail"
        if bool(options.get("user")) != bool(options.get("password_file")):
            yield "user", "user and password_file go together"
        host = parse_hostport(options.get("smtp", "localhost"))[0]
        if options.get("user") and not options.get("starttls") and host not in ("localhost", "127.0.0.1", "::1"):
            yield "starttls", "AUTH without starttls would send the password in clear"

    @classmethod
    def for_preview(cls, options: Mapping[str, Any] | None = None, base: Path | None = None) -> MailerProcessor:
        """The constructor only reads (templates): the preview can decide as :meth:`process` would."""
        return cls(options, base)

    def preview(self, report: Report) -> str:
        try:
            to = self.recipient(report)
            kind = "good" if report.valid else "bad"
            if kind not in self.templates:
                raise Skip(f"no {kind!r} template configured")
        except Skip as s:
            return f"would not answer: {s}"
        limit = f", unless {to} was answered within {self.setting('period')}" if self.period else ""
        return f"would answer {to} with the {kind!r} template{limit}"

    def __init__(self, options: Mapping[str, Any] | None = None, base: Path | None = None) -> None:
        super().__init__(options, base)
        self.check_options(self.options)
        o = self.options
        self.from_header = clean(o["from"], 300)
        self.address = _address(o["from"]) or ""
        self.domain = self.address.rpartition("@")[2]
        env = o.get("envelope_from", "<>")
        self.envelope_from = "" if env in ("", "<>") else (_address(env) or "")
        self.templates: dict[str, str] = {}
        for kind in ("good", "bad"):
            if o.get(kind):
                p = self.path(o[kind])
                try:
                    self.templates[kind] = p.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as e:
                    reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
                    raise ConfigError(f"cannot read template {p}: {reason}", key=f"processors.mailer.{kind}")
        self.period = parse_duration(o.get("period", "1d")).total_seconds()
        self.timeout = float(o.get("timeout", 30))
        self.max_rows = int(o.get("max_rows", 50))
        self.state_path = self.path(o.get("state", "~/abuso/mailer.sqlite"))
        self.dry_run = self.path(o["dry_run"]) if o.get("dry_run") else None
        # A bare program name is looked up in PATH; a path is relative to the config folder.
        sendmail = o.get("sendmail")
        self.sendmail = (str(self.path(sendmail)) if "/" in sendmail else sendmail) if sendmail else None
        self.host, self.port = parse_hostport(o.get("smtp", "localhost:25"))
        self.starttls = bool(o.get("starttls", False))
        self.cafile = str(self.path(o["cafile"])) if o.get("cafile") else None
        self.user = o.get("user")
        self.password_file = self.path(o["password_file"]) if o.get("password_file") else None
        self.authserv_id = (o.get("authserv_id") or "").strip().lower() or None
        self._db: sqlite3.Connection | None = None
        self._smtp: Any = None
        self._seq = 0
        #: The clock, replaceable in tests of the per-sender period.
        self.now = time.time

    # --- the decision --------------------------------------------------------

    def process(self, report: Report) -> None:
        try:
            to = self.recipient(report)
            kind = "good" if report.valid else "bad"
            if kind not in self.templates:
                raise Skip(f"no {kind!r} template configured")
        except Skip as s:
            report.notes[self.name] = {"skipped": str(s)}
            return
        digest = hashlib.sha256(report.raw).hexdigest()
        message = self.compose(report, kind, to)
        mid = message["Message-ID"]
        why = self._claim(to, digest, kind, mid)
        if why:
            report.notes[self.name] = {"skipped": why, "to": to}
            return
        try:
            done = self.deliver(message, to)
        except DeliveryUnknown:
            raise  # the claim stays 'pending': better no answer than two
        except TransientError:
            self._release(digest)  # refused or never sent: the retry of this message may answer
            raise
        except BaseException:
            # Interrupted (time limit, signal) with the server maybe holding our answer: the claim stays
            # 'pending' (counts as sent) and the SMTP dialogue is in an unknown state.
            self._drop()
            raise
        failure = done.pop("failed", None)
        self._finish(digest, "failed" if failure else "sent")
        head = {"failed": failure, "kind": kind} if failure else {"sent": kind}
        report.notes[self.name] = {**head, "to": to, "message_id": mid, **done}

    def recipient(self, report: Report) -> str:
        """The address to answer, or Skip with the RFC 3834 reason not to answer at all."""
        msg = report.message.email if report.message is not None else _parse(report.raw)
        if _get(msg, LOOP_HEADER) is not None:
            raise Skip(f"{LOOP_HEADER}: {clean(_get(msg, LOOP_HEADER), 80)} (our own answer came back)")
        for ref in _MSGID.findall(_get(msg, "Message-ID") or ""):
            if self._ours(ref):
                raise Skip(f"our own answer {ref} came back")
        refs = " ".join(filter(None, (_get(msg, "In-Reply-To"), _get(msg, "References"))))
        for ref in _MSGID.findall(refs):
            if self._ours(ref):
                raise Skip(f"a reply to our answer {ref}")
        rp = _get(msg, "Return-Path")
        if rp is not None and rp.strip() in ("<>", "", "< >"):
            raise Skip("null sender (Return-Path: <>)")
        unixfrom = msg.get_unixfrom() or ""
        env = unixfrom[5:].split(None, 1)[0] if unixfrom.startswith("From ") and unixfrom[5:].split() else None
        if env is not None and env.lower() in ("<>", "mailer-daemon"):
            raise Skip(f"null sender (From_ line: {clean(env)})")
        auto = _get(msg, "Auto-Submitted")
        if auto is not None and auto.split(";")[0].strip().lower() != "no":
            raise Skip(f"Auto-Submitted: {clean(auto, 80)}")
        for name in _AUTO_HEADERS:
            if _get(msg, name) is not None:
                raise Skip(f"{name} header (automatic reply)")
        suppress = (_get(msg, "X-Auto-Response-Suppress") or "").lower()
        if any(v.strip() in ("all", "autoreply", "oof") for v in suppress.split(",")):
            raise Skip(f"X-Auto-Response-Suppress: {clean(suppress, 80)}")
        prec = (_get(msg, "Precedence") or "").strip().lower()
        if prec in ("bulk", "list", "junk", "auto_reply"):
            raise Skip(f"Precedence: {prec}")
        for key in msg.keys():
            if key.lower().startswith("list-"):
                raise Skip(f"{clean(key, 40)} header (mailing-list mail)")
        for name in ("Return-Path", "Sender", "From"):
            addr = _address(_get(msg, name))
            if addr and _ROBOT.match(addr.partition("@")[0]):
                raise Skip(f"{name} is a robot or list address: {addr}")
        try:
            rtype = str(msg.get_param("report-type") or "") if msg.get_content_type() == "multipart/report" else ""
        except Exception:  # a malformed Content-Type is no reason to stay silent
            rtype = ""
        if rtype.lower() in ("delivery-status", "disposition-notification", "feedback-report"):
            raise Skip(f"a {rtype} report (machine-generated: bounce, read receipt or ARF feedback loop)")
        sender = _address(_get(msg, "From"))
        if sender == self.address:
            raise Skip(f"mail from our own address {self.address}")
        target_header = "Reply-To" if _get(msg, "Reply-To") else "From"
        to = _address(_get(msg, target_header))
        if not to:
            raise Skip(f"no usable address in {target_header}: {clean(_get(msg, target_header) or '(none)', 80)}")
        if to == self.address:
            raise Skip(f"{target_header} is our own address")
        if _ROBOT.match(to.partition("@")[0]) or _NOREPLY.match(to.partition("@")[0]):
            raise Skip(f"{target_header} is a robot or list address: {to}")
        if self.authserv_id:
            self._authenticated(msg, to)
        return to

    def _authenticated(self, msg: Any, to: str) -> None:
        """Backscatter guard: our own MTA must have seen SPF, DKIM or DMARC pass for the domain we answer.

        abuse@ mailboxes are spam magnets and most spam forges its sender; only
        Authentication-Results headers carrying our ``authserv_id`` are believed
        (RFC 8601 5: the border MTA removes forged ones with its own id).
        """
        from ..normalize import header_all

        domain = to.rpartition("@")[2]
        passed: list[str] = []
        for value in header_all(msg, "Authentication-Results"):
            parts = [p.strip() for p in _CONTROL.sub(" ", value).split(";")]
            if not parts or [w.lower() for w in parts[0].split()[:1]] != [self.authserv_id]:
                continue
            for part in parts[1:]:
                m = re.match(r"(dkim|spf|dmarc)\s*=\s*pass\b(.*)", part, re.I | re.S)
                if not m:
                    continue
                for prop in re.findall(r"(?:header\.[di]|header\.from|smtp\.mailfrom|smtp\.helo)\s*=\s*(\S+)",
                                       m.group(2), re.I):
                    d = prop.rpartition("@")[2].strip('"<>;').lower().rstrip(".")
                    passed.append(d)
                    if d and (domain == d or domain.endswith("." + d) or d.endswith("." + domain)):
                        return
        seen = f" (passed: {', '.join(sorted(set(passed)))})" if passed else ""
        raise Skip(f"{domain} not authenticated by SPF, DKIM or DMARC at {self.authserv_id}{seen}")

    def _ours(self, msgid: str) -> bool:
        return msgid[1:].startswith(ID_PREFIX) and msgid.lower().endswith(f"@{self.domain}>")

    # --- the answer ------------------------------------------------------------

    def values(self, report: Report, to: str) -> dict[str, str]:
        """What the template placeholders stand for; every value is cleaned untrusted text."""
        msg = report.message.email if report.message is not None else _parse(report.raw)
        return {
            "subject": clean(report.subject if report.subject is not None else _get(msg, "Subject") or "") or "(none)",
            "date": clean(_get(msg, "Date") or "(none)", 80),
            "message_id": clean(report.message_id or _get(msg, "Message-ID") or "(none)", 250),
            "from": clean(report.sender or _get(msg, "From") or "(none)", 200),
            "to": to,
            "count": str(len(report.incidents)),
            "incidents": self.incidents_table(report),
            "reasons": self.reasons(report),
        }

    def compose(self, report: Report, kind: str, to: str) -> EmailMessage:
        values = self.values(report, to)
        body = string.Template(self.templates[kind]).safe_substitute(values)
        if not body.endswith("\n"):
            body += "\n"
        msg = EmailMessage()
        msg["From"] = self.from_header
        msg["To"] = to
        subject = values["subject"] if values["subject"] != "(none)" else "your report"
        msg["Subject"] = subject if subject[:3].lower() == "re:" else f"Re: {subject}"
        msg["Date"] = format_datetime(datetime.fromtimestamp(self.now(), timezone.utc))
        msg["Message-ID"] = f"<{ID_PREFIX}{secrets.token_hex(12)}@{self.domain}>"
        src = report.message.email if report.message is not None else _parse(report.raw)
        parent = _MSGID.findall(report.message_id or _get(src, "Message-ID") or "")
        if parent:
            msg["In-Reply-To"] = parent[0]
            refs = _MSGID.findall(_get(src, "References") or _get(src, "In-Reply-To") or "")
            chain = [r for r in refs if r != parent[0]][-9:] + [parent[0]]
            msg["References"] = " ".join(chain)
        msg["Auto-Submitted"] = "auto-replied"
        msg["X-Auto-Response-Suppress"] = "All"
        msg[LOOP_HEADER] = self.address
        plain = body.isascii() and all(len(ln) <= 998 for ln in body.splitlines())  # RFC 5322 2.1.1
        msg.set_content(body, charset="utf-8", cte="7bit" if plain else "quoted-printable")
        return msg

    def incidents_table(self, report: Report) -> str:
        """Aligned columns; only what the reporter told us (never customer or RADIUS data)."""
        if not report.incidents:
            return "  (none)"
        rows = [("Time (UTC)", "Source IP", "Port", "Type", "Found by")]
        guessed = False
        for inc in report.incidents[: self.max_rows]:
            when = inc.time.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if inc.time else "-"
            if inc.time and inc.zone in ("date-header", "assumed-utc"):
                when += " *"
                guessed = True
            rows.append((when, str(inc.ip), str(inc.port) if inc.port is not None else "-",
                         clean(inc.type, 40), clean(inc.parser, 40)))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        extra = len(report.incidents) - self.max_rows
        if extra > 0:
            lines.append(f"  ... and {extra} more")
        if guessed:
            lines.append("  * no time zone in the report: taken from its Date header, or UTC assumed")
        return "\n".join(lines)

    def reasons(self, report: Report) -> str:
        """Each parser's verdict and each filter's reason, so nobody gets '0 incidents' unexplained."""
        lines = [f"  - {clean(name, 40)}: {clean(str(v), 300) or 'nothing found'}"
                 for name, v in report.verdicts.items()]
        for d in report.dropped[: self.max_rows]:
            lines.append(f"  - {d.incident.ip} ({clean(d.incident.type, 40)}): not used, {clean(d.filter, 40)} "
                         f"filter: {clean(d.reason, 200)}")
        extra = len(report.dropped) - self.max_rows
        if extra > 0:
            lines.append(f"  - ... and {extra} more addresses not used")
        return "\n".join(lines) if lines else "  (no parser looked at this message)"

    # --- state -----------------------------------------------------------------------

    def _state(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self._db = self._open()
            except (OSError, sqlite3.Error) as e:
                raise TransientError(f"mailer: state {self.state_path}: {e}")
        return self._db

    def _open(self) -> sqlite3.Connection:
        self.state_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = sqlite3.connect(str(self.state_path), timeout=self.timeout, isolation_level=None)
        try:
            self._schema(db)
        except BaseException:
            db.close()
            raise
        return db

    def _schema(self, db: sqlite3.Connection) -> None:
        # WAL with synchronous=NORMAL: a commit survives a crash of abuso without an fsync per answer
        # (2 commits per answer cost ~10 ms on a busy disk); only a power cut may lose the last few.
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS answers (recipient TEXT NOT NULL, report TEXT NOT NULL, "
                   "at REAL NOT NULL, status TEXT NOT NULL, kind TEXT, message_id TEXT)")
        db.execute("CREATE INDEX IF NOT EXISTS answers_recipient ON answers(recipient, at)")
        db.execute("CREATE INDEX IF NOT EXISTS answers_report ON answers(report)")
        db.execute("DELETE FROM answers WHERE at < ?", (self.now() - max(self.period, _MIN_KEEP),))

    def _claim(self, to: str, digest: str, kind: str, mid: str) -> str | None:
        """Reserve the answer atomically (parallel deliveries race here); the reason to skip if taken.

        A crash after sending leaves the row 'pending', which counts as sent:
        a missing answer is better than a duplicate one.
        """
        db = self._state()
        now = self.now()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:  # locked longer than the timeout by parallel deliveries
            raise TransientError(f"mailer: state {self.state_path}: {e}")
        try:
            row = db.execute("SELECT at, status FROM answers WHERE report = ? LIMIT 1", (digest,)).fetchone()
            if row:
                db.execute("ROLLBACK")
                return f"this message was already handled ({row[1]} at {_iso(row[0])})"
            if self.period > 0:
                row = db.execute("SELECT at FROM answers WHERE recipient = ? AND at > ? AND status != 'failed' "
                                 "ORDER BY at DESC LIMIT 1", (to, now - self.period)).fetchone()
                if row:
                    db.execute("ROLLBACK")
                    return f"already answered {to} at {_iso(row[0])} (period {self.options.get('period', '1d')})"
            db.execute("INSERT INTO answers VALUES (?, ?, ?, 'pending', ?, ?)", (to, digest, now, kind, mid))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return None

    def _release(self, digest: str) -> None:
        self._write_state("DELETE FROM answers WHERE report = ? AND status = 'pending'", (digest,))

    def _finish(self, digest: str, status: str) -> None:
        self._write_state("UPDATE answers SET status = ? WHERE report = ?", (status, digest))

    def _write_state(self, sql: str, args: tuple) -> None:
        try:
            self._state().execute(sql, args)
        except sqlite3.Error as e:
            raise TransientError(f"mailer: state {self.state_path}: {e}")

    # --- delivery ------------------------------------------------------------------------

    def deliver(self, msg: EmailMessage, to: str) -> dict[str, str]:
        """Send one answer: {"via": how, ...} plus "failed" for a permanent refusal. Transient trouble raises."""
        if self.dry_run is not None:
            return {"via": "dry-run", "file": self._write(msg)}
        failure = self._sendmail(msg) if self.sendmail else self._smtp_send(msg, to)
        return {"via": "sendmail" if self.sendmail else "smtp", **({"failed": failure} if failure else {})}

    def _write(self, msg: EmailMessage) -> str:
        """Atomically write an .eml; the name is time, process and a counter, never message content."""
        try:
            self.dry_run.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TransientError(f"mailer: cannot create {self.dry_run}: {e}")
        self._seq += 1
        stamp = datetime.fromtimestamp(self.now(), timezone.utc).strftime("%Y%m%dT%H%M%S")
        name = f"{stamp}-{os.getpid()}-{self._seq:06d}-{secrets.token_hex(4)}.eml"
        tmp = self.dry_run / f".{name}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(msg.as_bytes())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.dry_run / name)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise TransientError(f"mailer: cannot write {self.dry_run / name}: {e}")
        return str(self.dry_run / name)

    def _sendmail(self, msg: EmailMessage) -> str | None:
        import subprocess

        cmd = [self.sendmail, "-t", "-oi", "-f", self.envelope_from or "<>"]
        try:
            done = subprocess.run(cmd, input=msg.as_bytes(), capture_output=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise DeliveryUnknown(f"mailer: {self.sendmail} did not finish in {self.timeout:g} s")
        except OSError as e:
            raise TransientError(f"mailer: cannot run {self.sendmail}: {e}")
        if done.returncode == 0:
            return None
        err = clean(done.stderr.decode("utf-8", "replace") or f"exit status {done.returncode}", 300)
        if done.returncode == 75:  # EX_TEMPFAIL: not queued
            raise TransientError(f"mailer: {self.sendmail}: {err}")
        return f"{self.sendmail} exit {done.returncode}: {err}"

    def _connect(self) -> Any:
        import smtplib
        import ssl

        conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            conn.ehlo()
            if self.starttls:
                # Never fall back to clear text: no STARTTLS offered is an error.
                conn.starttls(context=ssl.create_default_context(cafile=self.cafile))
                conn.ehlo()
            if self.user:
                password = self.password_file.read_text(encoding="utf-8").rstrip("\r\n")
                conn.login(self.user, password)
        except BaseException:
            conn.close()
            raise
        return conn

    def _smtp_send(self, msg: EmailMessage, to: str) -> str | None:
        """Send over a connection kept open across reports of a batch; one reconnect if the server hung up."""
        import smtplib
        from email import policy

        where = f"{self.host}:{self.port}"
        content = msg.as_bytes(policy=policy.SMTP)
        for attempt in (1, 2):
            fresh = self._smtp is None
            try:
                if fresh:
                    self._smtp = self._connect()
            except (smtplib.SMTPException, OSError) as e:  # our relay's trouble, whatever the code: retry later
                self._drop()
                raise TransientError(f"mailer: SMTP server {where}: {_smtp_error(e)}")
            conn = self._smtp
            try:
                code, text = conn.mail(self.envelope_from or "<>")
                if code == 250:
                    code, text = conn.rcpt(to)
                if code not in (250, 251):
                    return self._failure(where, code, text)
            except smtplib.SMTPServerDisconnected as e:
                self._drop()
                if fresh or attempt == 2:
                    raise TransientError(f"mailer: SMTP server {where} hung up: {e}")
                continue  # an idle connection of a batch was closed: once more on a fresh one
            except (smtplib.SMTPException, OSError) as e:
                self._drop()
                raise TransientError(f"mailer: SMTP server {where}: {_smtp_error(e)}")
            try:
                code, text = conn.data(content)
            except smtplib.SMTPDataError as e:  # DATA itself refused: nothing was sent
                return self._failure(where, e.smtp_code, e.smtp_error)
            except (smtplib.SMTPException, OSError) as e:
                self._drop()
                raise DeliveryUnknown(f"mailer: SMTP server {where} did not confirm the answer to {to}: "
                                      f"{_smtp_error(e)}")
            return None if code == 250 else self._failure(where, code, text)
        return None  # pragma: no cover - the loop returns or raises

    def _failure(self, where: str, code: int, text: Any) -> str:
        """4xx (and authentication trouble) is transient; other 5xx rejects this one answer."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        detail = f"{code} {clean(text, 300)}"
        if 400 <= code < 500 or code in (530, 534, 535, 538):
            self._reset()
            raise TransientError(f"mailer: SMTP server {where} answered {detail}")
        self._reset()
        return f"SMTP server {where} answered {detail}"

    def _reset(self) -> None:
        """Leave the server ready for the next answer (RSET), or forget a broken connection."""
        try:
            if self._smtp is not None:
                self._smtp.rset()
        except Exception:
            self._drop()

    def _drop(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.close()
            except Exception:
                pass
            self._smtp = None

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except Exception:
                pass
            self._drop()
        if self._db is not None:
            self._db.close()
            self._db = None


def _parse(raw: bytes) -> Any:
    from ..normalize import parse_bytes

    return parse_bytes(raw)


def _get(msg: Any, name: str) -> str | None:
    from ..normalize import header_str

    return header_str(msg, name)


def _smtp_error(e: Exception) -> str:
    code = getattr(e, "smtp_code", None)
    text = getattr(e, "smtp_error", None)
    if code is not None:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        return f"{code} {clean(text, 300)}"
    return f"{type(e).__name__}: {clean(e, 300)}"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


__all__ = ["MailerProcessor", "LOOP_HEADER", "ID_PREFIX", "parse_hostport", "clean"]
