"""The mailer processor: decide (policy), claim (state), compose (templates), send (transport)."""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Iterator, Mapping

from ...durations import parse_duration
from ...errors import ConfigError, TransientError
from ...model import Report
from ...options import Option
from ..base import Note, Processor
from . import transport as transports
from .policy import DEFAULT_NEVER, ID_PREFIX, LOOP_HEADER, Headers, Patterns, Policy, Skip, address, message_ids
from .state import AnswerState
from .templates import Template, clean, plain_message, report_values


def _check_from(value: str) -> None:
    if address(value) is None:
        raise ValueError(f"not a usable address: {value!r}")


def _check_envelope(value: str) -> None:
    if value not in ("", "<>") and address(value) is None:
        raise ValueError("an address, or <> for the null sender (RFC 3834)")


def _check_ours(value: str) -> None:
    if address(value) != value.strip().lower():
        raise ValueError(f"not a plain address: {value!r} (e.g. abuse@example.org)")


def _check_never(value: str) -> None:
    try:
        Patterns.check([value], "never")
    except ConfigError as e:
        raise ValueError(e.bare)


class MailerProcessor(Processor):
    """Answers the reporter with the ``good`` or ``bad`` template (see the package docstring)."""

    name = "mailer"

    OPTIONS = (
        Option("from", "str", required=True, check=_check_from, help="our own address, e.g. abuse@example.net"),
        Option("good", "file", help="the template answering valid reports"),
        Option("bad", "file", help="the template answering reports without incidents"),
        Option("period", "duration", "1d", help="one answer per recipient per period"),
        Option("state", "output", "~/abuso/mailer.sqlite"),
        Option("envelope_from", "str", "<>", check=_check_envelope),
        Option("max_rows", "int", 50, min=1),
        Option("authserv_id", "str", help="answer only senders our MTA saw pass SPF/DKIM/DMARC"),
        Option("ours", "strings", [], each=_check_ours, help="more addresses of ours (never answered)"),
        Option("never", "strings", [], each=_check_never,
               help="robot senders never answered, added to the built-in list"),
        Option("never_builtin", "bool", True, help="false: the never list replaces the built-in one"),
    ) + transports.OPTIONS
    side_effects = True

    @classmethod
    def check_rules(cls, options: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        if not options.get("good") and not options.get("bad"):
            yield "good", "give at least one template: good, bad (a path)"
        yield from transports.check_rules(options)

    @classmethod
    def for_preview(cls, options: Mapping[str, Any] | None = None, base: Path | None = None) -> MailerProcessor:
        """Templates and policy only: the preview decides as :meth:`process` would, and nothing is
        opened or created (no state database, no SMTP connection)."""
        self = cls.__new__(cls)
        Processor.__init__(self, options, base)
        self._decider()
        return self

    def __init__(self, options: Mapping[str, Any] | None = None, base: Path | None = None) -> None:
        super().__init__(options, base)
        self.check_options(self.options)
        self._decider()
        o = self.options
        period = parse_duration(o.get("period", "1d")).total_seconds()
        self.state = AnswerState(self.path(o.get("state", "~/abuso/mailer.sqlite")), period,
                                 float(o.get("timeout", 30)), str(o.get("period", "1d")), now=lambda: self.now())
        self.transport = transports.from_options(o, self.path, where="processors.mailer.")

    def _decider(self) -> None:
        """What deciding and composing need: our addresses, templates, the policy (read-only)."""
        o = self.options
        #: The clock, replaceable in tests of the per-sender period.
        self.now = time.time
        self.from_header = clean(o["from"], 300)
        self.address = address(o["from"]) or ""
        self.domain = self.address.rpartition("@")[2]
        env = o.get("envelope_from", "<>")
        self.envelope_from = "" if env in ("", "<>") else (address(env) or "")
        self.templates = {kind: Template.load(self.path(o[kind]), f"processors.mailer.{kind}")
                          for kind in ("good", "bad") if o.get(kind)}
        self.max_rows = int(o.get("max_rows", 50))
        never = (list(DEFAULT_NEVER) if o.get("never_builtin", True) else []) + list(o.get("never", []))
        ours = [self.address, *([self.envelope_from] if self.envelope_from else []), *o.get("ours", [])]
        self.policy = Policy(ours, never, o.get("authserv_id"))

    def decide(self, report: Report, headers: Headers | None = None) -> tuple[str, str]:
        """(address to answer, "good" or "bad"), or Skip: headers and templates only, no state, no side effect."""
        to = self.policy.recipient(headers or Headers(_email(report)))
        kind = "good" if report.valid else "bad"
        if kind not in self.templates:
            raise Skip(f"no {kind!r} template configured", "no-template")
        return to, kind

    def preview(self, report: Report) -> Note:
        """What :meth:`process` would do, without sending or remembering (for explain and dry runs).

        The per-recipient period is not checked: that needs the state of real answers.
        """
        try:
            to, kind = self.decide(report)
        except Skip as s:
            return skipped(s)
        return Note(f"would answer {to} ({kind} response) unless answered within the period", would=kind, to=to)

    def process(self, report: Report) -> None:
        headers = Headers(_email(report))
        try:
            to, kind = self.decide(report, headers)
        except Skip as s:
            report.notes[self.name] = skipped(s)
            return
        digest = hashlib.sha256(report.raw).hexdigest()
        message = self.compose(report, kind, to, headers)
        mid = message["Message-ID"]
        try:
            self.state.claim(to, digest, kind, mid)
        except Skip as s:
            report.notes[self.name] = skipped(s, to=to)
            return
        try:
            sent = self.transport.send(message, transports.Envelope(self.envelope_from, (to,)))
        except transports.Refused as e:
            self.state.finish(digest, "failed")
            report.notes[self.name] = Note(f"answer to {to} refused ({kind} response): {e}", failed=str(e),
                                           kind=kind, to=to, message_id=mid, via=self.transport.via)
            return
        except transports.DeliveryUnknown:
            raise  # the claim stays 'pending': better no answer than two
        except TransientError:
            self.state.release(digest)  # refused for now or never sent: the retry of this message may answer
            raise
        self.state.finish(digest, "sent")
        extra = {"file": sent.file} if sent.file else {}
        text = f"answered {to} ({kind} response)"
        if sent.file:
            text = f"dry run: the answer to {to} ({kind} response) is in {sent.file}"
        report.notes[self.name] = Note(text, sent=kind, to=to, message_id=mid, via=sent.via, **extra)

    def compose(self, report: Report, kind: str, to: str, headers: Headers | None = None) -> EmailMessage:
        """The answer: the template filled in, threaded to the report, marked automatic (RFC 3834 3.1)."""
        h = headers or Headers(_email(report))
        values = report_values(report, h.get, to, self.max_rows)
        subject = values["subject"] if values["subject"] != "(none)" else "your report"
        fields = [("Date", format_datetime(datetime.fromtimestamp(self.now(), timezone.utc))),
                   ("Message-ID", f"<{ID_PREFIX}{secrets.token_hex(12)}@{self.domain}>")]
        parent = message_ids(report.message_id or h.get("Message-ID"))
        if parent:
            refs = message_ids(h.get("References") or h.get("In-Reply-To"))
            chain = [r for r in refs if r != parent[0]][-9:] + [parent[0]]
            fields += [("In-Reply-To", parent[0]), ("References", " ".join(chain))]
        fields += [("Auto-Submitted", "auto-replied"), ("X-Auto-Response-Suppress", "All"),
                    (LOOP_HEADER, self.address), ("X-Loop", self.address)]
        return plain_message(self.from_header, to, subject if subject[:3].lower() == "re:" else f"Re: {subject}",
                             self.templates[kind].render(values), fields)

    def close(self) -> None:
        try:
            self.transport.close()
        finally:
            self.state.close()


def skipped(skip: Skip, **fields: str) -> Note:
    """The note for a report not answered: the reason in words, and the rule's short name."""
    return Note(f"not answered: {skip.reason}", skipped=skip.reason, rule=skip.rule, **fields)


def _email(report: Report) -> EmailMessage:
    """The report's parsed email (library callers may hand in a bare Report(raw=...))."""
    if report.message is not None:
        return report.message.email
    from ...normalize import parse_bytes

    return parse_bytes(report.raw)
