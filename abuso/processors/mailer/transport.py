"""Ways to send a message: an SMTP relay, a local sendmail, or a folder of .eml files (dry run).

Every transport takes a finished :class:`~email.message.EmailMessage` and an
:class:`Envelope` (sender and recipients, as SMTP sees them) and either returns
:class:`Sent`, raises :class:`Refused` (refused for good: sending the same message
again will not help) or raises :class:`~abuso.errors.TransientError` (retry later).
:class:`DeliveryUnknown`, a TransientError, means the message may have gone out:
a caller that must not send twice keeps it as sent.

Options (the same keys for every sender, see :func:`from_options`)::

    smtp: localhost:25            # or [::1]:587 (default localhost:25)
    starttls: false               # required before AUTH to a remote host; never falls back to clear text
    cafile: /etc/ssl/our-ca.pem   # to verify the server (default: system CAs)
    user: abuso                   # AUTH, with password_file (first line is the password)
    password_file: /etc/abuso/smtp.pw
    sendmail: /usr/sbin/sendmail  # instead of smtp: run `sendmail -oi -f SENDER -- RECIPIENT...`
    dry_run: answers/             # write .eml files there instead of sending (wins over smtp and sendmail)
    timeout: 30                   # seconds, SMTP or sendmail

The SMTP connection stays open across messages of a batch (one reconnect if the
server hung up on an idle connection); :meth:`close` ends it.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol

from ...errors import ConfigError, TransientError
from ...options import Option, check_options
from .templates import clean


def _check_smtp(value: str) -> None:
    parse_hostport(value)


#: The transport's options, declared once: the mailer and any other sender (``abuso notify``) take them.
OPTIONS = (
    Option("smtp", "str", "localhost:25", check=_check_smtp, help="host or host:port"),
    Option("starttls", "bool", False),
    Option("cafile", "file", help="CA certificates to verify the SMTP server"),
    Option("user", "str", help="SMTP AUTH login, with password_file"),
    Option("password_file", "file"),
    Option("timeout", "number", 30, above=0, help="seconds, SMTP or sendmail"),
    Option("sendmail", "program", help="a sendmail program instead of smtp"),
    Option("dry_run", "folder", help="write .eml files there instead of sending"),
)

_NAMES = frozenset(o.name for o in OPTIONS)

#: sendmail exit statuses (sysexits.h) that mean "not sent, try later": EX_UNAVAILABLE (msmtp: a 4xx
#: reply), EX_OSERR, EX_IOERR, EX_TEMPFAIL (the relay is down). Any other failure is a refusal.
_SENDMAIL_TRANSIENT = (69, 71, 74, 75)
#: SMTP replies that are our own relay's trouble (authentication), not the recipient's: retry later.
_SMTP_AUTH_TROUBLE = (530, 534, 535, 538)
_LOCAL = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Envelope:
    """What SMTP sees: ``sender`` ("" is the null sender ``<>``) and the recipients."""

    sender: str
    recipients: tuple[str, ...]


@dataclass
class Sent:
    """A message handed over: ``via`` smtp, sendmail or dry-run; ``file`` the .eml of a dry run;
    ``refused`` the recipients the server refused for good while it took the others."""

    via: str
    file: str | None = None
    refused: dict[str, str] = field(default_factory=dict)


class Refused(Exception):
    """The message was refused for good (5xx, a sendmail error): not sent, and a retry will not help."""


class DeliveryUnknown(TransientError):
    """The message may have gone out (no reply after it was sent): never send it again."""


class Transport(Protocol):
    via: str

    def send(self, message: EmailMessage, envelope: Envelope) -> Sent: ...

    def close(self) -> None: ...


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


def check_rules(options: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(key, reason) for transport options that cannot work together (each passed on its own)."""
    if options.get("sendmail") and "smtp" in options:
        yield "sendmail", "choose one way to send: smtp or sendmail"
    if bool(options.get("user")) != bool(options.get("password_file")):
        yield "user", "user and password_file go together"
    host = parse_hostport(options.get("smtp", "localhost:25"))[0]
    if options.get("user") and not options.get("starttls") and host not in _LOCAL:
        yield "starttls", "AUTH without starttls would send the password in clear"


def from_options(options: Mapping[str, Any], path: Callable[[str], Path], label: str = "mailer",
                 where: str = "") -> Transport:
    """The transport the options ask for; files they name are checked now (ConfigError, exit 78).

    ``path`` resolves a configured path (relative to the config's folder); ``label``
    starts every error message (the processor or command that sends); ``where`` is put
    before the key in a ConfigError (``processors.mailer.``).
    """
    problems, _ = check_options(OPTIONS, {k: v for k, v in options.items() if k in _NAMES}, rules=check_rules)
    if problems:
        key, reason = problems[0]
        raise ConfigError(reason, key=f"{where}{key}")
    timeout = float(options.get("timeout", 30))
    if options.get("dry_run"):
        return FolderTransport(path(options["dry_run"]), label)
    if options.get("sendmail"):
        import shutil

        # A bare program name is looked up in PATH; a path is relative to the config folder.
        program = options["sendmail"]
        found = str(path(program)) if "/" in program else shutil.which(program)
        if found is None or not os.access(found, os.X_OK) or os.path.isdir(found):
            raise ConfigError(f"cannot run {found or program}: no such program", key=f"{where}sendmail")
        return SendmailTransport(found, timeout, label)
    cafile = str(path(options["cafile"])) if options.get("cafile") else None
    password_file = path(options["password_file"]) if options.get("password_file") else None
    for key, value in (("cafile", cafile), ("password_file", password_file)):
        if value is not None and not os.access(value, os.R_OK):
            raise ConfigError(f"cannot read {value}", key=f"{where}{key}")
    host, port = parse_hostport(options.get("smtp", "localhost:25"))
    return SmtpTransport(host, port, timeout, bool(options.get("starttls", False)), cafile,
                         options.get("user"), password_file, label)


class FolderTransport:
    """Dry run: each message becomes an .eml file, written atomically; the envelope is not recorded."""

    via = "dry-run"

    def __init__(self, folder: Path, label: str = "mailer") -> None:
        self.folder, self.label = folder, label
        self._seq = 0

    def send(self, message: EmailMessage, envelope: Envelope) -> Sent:
        """The name is time, process and a counter, never message content."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TransientError(f"{self.label}: cannot create {self.folder}: {e}")
        self._seq += 1
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        name = f"{stamp}-{os.getpid()}-{self._seq:06d}-{secrets.token_hex(4)}.eml"
        tmp = self.folder / f".{name}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(message.as_bytes())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.folder / name)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise TransientError(f"{self.label}: cannot write {self.folder / name}: {e}")
        return Sent(self.via, file=str(self.folder / name))

    def close(self) -> None:
        pass


class SendmailTransport:
    """``sendmail -oi -f SENDER -- RECIPIENT...``: the envelope on the command line, the message on stdin."""

    via = "sendmail"

    def __init__(self, program: str, timeout: float = 30, label: str = "mailer") -> None:
        self.program, self.timeout, self.label = program, timeout, label

    def send(self, message: EmailMessage, envelope: Envelope) -> Sent:
        import subprocess

        if not envelope.recipients:
            raise ValueError("no recipient in the envelope")
        cmd = [self.program, "-oi", "-f", envelope.sender or "<>", "--", *envelope.recipients]
        try:
            done = subprocess.run(cmd, input=message.as_bytes(), capture_output=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise DeliveryUnknown(f"{self.label}: {self.program} did not finish in {self.timeout:g} s")
        except OSError as e:
            raise TransientError(f"{self.label}: cannot run {self.program}: {e}")
        if done.returncode == 0:
            return Sent(self.via)
        err = clean(done.stderr.decode("utf-8", "replace") or f"exit status {done.returncode}", 300)
        if done.returncode in _SENDMAIL_TRANSIENT:
            raise TransientError(f"{self.label}: {self.program} exit {done.returncode}: {err}")
        raise Refused(f"{self.program} exit {done.returncode}: {err}")

    def close(self) -> None:
        pass


class SmtpTransport:
    """An SMTP relay, with STARTTLS (never a fallback to clear text) and AUTH."""

    via = "smtp"

    def __init__(self, host: str, port: int = 25, timeout: float = 30, starttls: bool = False,
                 cafile: str | None = None, user: str | None = None, password_file: Path | None = None,
                 label: str = "mailer") -> None:
        self.host, self.port, self.timeout, self.starttls = host, port, timeout, starttls
        self.cafile, self.user, self.password_file, self.label = cafile, user, password_file, label
        self.where = f"{host}:{port}"
        self._smtp: Any = None

    def send(self, message: EmailMessage, envelope: Envelope) -> Sent:
        from email import policy

        if not envelope.recipients:
            raise ValueError("no recipient in the envelope")
        content = message.as_bytes(policy=policy.SMTP)
        try:
            return self._send(content, envelope)
        except (TransientError, Refused):
            raise
        except BaseException:
            # Interrupted (time limit, signal) with the server maybe holding the message:
            # the dialogue is in an unknown state, so the connection is not reused.
            self._drop()
            raise

    def _send(self, content: bytes, envelope: Envelope) -> Sent:
        import smtplib

        for attempt in (1, 2):
            fresh = self._smtp is None
            try:
                if fresh:
                    self._smtp = self._connect()
            except (smtplib.SMTPException, OSError) as e:  # our relay's trouble, whatever the code: retry later
                self._drop()
                raise TransientError(f"{self.label}: SMTP server {self.where}: {_smtp_error(e)}")
            conn = self._smtp
            refused: dict[str, str] = {}
            try:
                code, text = conn.mail(envelope.sender or "<>")
                if code != 250:
                    raise self._refusal(code, text)
                for rcpt in envelope.recipients:
                    code, text = conn.rcpt(rcpt)
                    if code not in (250, 251):
                        if _transient(code):
                            raise self._refusal(code, text)
                        refused[rcpt] = _detail(code, text)
                if len(refused) == len(envelope.recipients):
                    self._reset()
                    raise Refused(f"SMTP server {self.where} answered " + (
                        refused[envelope.recipients[0]] if len(refused) == 1
                        else "; ".join(f"{r}: {d}" for r, d in refused.items())))
            except smtplib.SMTPServerDisconnected as e:
                self._drop()
                if fresh or attempt == 2:
                    raise TransientError(f"{self.label}: SMTP server {self.where} hung up: {e}")
                continue  # an idle connection of a batch was closed: once more on a fresh one
            except (smtplib.SMTPException, OSError) as e:
                self._drop()
                raise TransientError(f"{self.label}: SMTP server {self.where}: {_smtp_error(e)}")
            try:
                code, text = conn.data(content)
            except smtplib.SMTPDataError as e:  # DATA itself refused: nothing was sent
                raise self._refusal(e.smtp_code, e.smtp_error)
            except (smtplib.SMTPException, OSError) as e:
                self._drop()
                to = ", ".join(envelope.recipients)
                raise DeliveryUnknown(f"{self.label}: SMTP server {self.where} did not confirm the message to {to}: "
                                      f"{_smtp_error(e)}")
            if code != 250:
                raise self._refusal(code, text)
            return Sent(self.via, refused=refused)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

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
            if self.user and self.password_file is not None:
                password = self.password_file.read_text(encoding="utf-8").rstrip("\r\n")
                conn.login(self.user, password)
        except BaseException:
            conn.close()
            raise
        return conn

    def _refusal(self, code: int, text: Any) -> Exception:
        """The error for a refusing reply, after RSET: 4xx and authentication trouble are transient."""
        self._reset()
        detail = f"SMTP server {self.where} answered {_detail(code, text)}"
        return TransientError(f"{self.label}: {detail}") if _transient(code) else Refused(detail)

    def _reset(self) -> None:
        """Leave the server ready for the next message (RSET), or forget a broken connection."""
        import smtplib

        try:
            if self._smtp is not None:
                self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.close()
            except OSError:  # closing a socket the peer already reset
                pass
            self._smtp = None

    def close(self) -> None:
        import smtplib

        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):  # the server hung up first: nothing to say goodbye to
                pass
            self._drop()


def _transient(code: int) -> bool:
    return 400 <= code < 500 or code in _SMTP_AUTH_TROUBLE


def _detail(code: int, text: Any) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {clean(text, 300)}"


def _smtp_error(e: BaseException) -> str:
    code = getattr(e, "smtp_code", None)
    if code is not None:
        return _detail(code, getattr(e, "smtp_error", ""))
    return f"{type(e).__name__}: {clean(e, 300)}"
