"""Texts we send: ``${...}`` templates, the values that fill them, and the message around them.

Templates use ``string.Template`` syntax (``${name}`` or ``$name``, ``$$`` for a dollar).
Unknown placeholders are left as written, and values are inserted once: a value holding
``${incidents}`` is never expanded again. Every value taken from a report is untrusted
text and goes through :func:`clean` first.

The answer to a reporter fills ``${subject}``, ``${date}``, ``${message_id}``, ``${from}``
(the reporter), ``${to}``, ``${count}``, ``${incidents}`` (an aligned table) and
``${reasons}`` (see :func:`report_values`); customer and RADIUS details attached to
incidents are never part of them. :class:`Template`, :func:`incidents_table` and
:func:`plain_message` know nothing of reporters and serve other senders too
(a digest to customers fills its own values).
"""

from __future__ import annotations

import string
from datetime import timezone
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from ...errors import ConfigError
from ...lazy import lazy_compile

if TYPE_CHECKING:
    from ...model import Incident, Report

_CONTROL = lazy_compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")


def clean(value: Any, limit: int = 200) -> str:
    """One line of untrusted text: control characters (CR, LF, ...) become spaces, length is capped."""
    s = " ".join(_CONTROL.sub(" ", str(value)).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


class Template:
    """A text with ``${...}`` placeholders, read once at start-up."""

    def __init__(self, text: str, source: str = "<string>") -> None:
        self.text, self.source = text, source

    @classmethod
    def load(cls, path: Path, key: str) -> Template:
        """Read a UTF-8 template; a missing or unreadable file is a ConfigError naming ``key`` (exit 78)."""
        try:
            return cls(path.read_text(encoding="utf-8"), str(path))
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise ConfigError(f"cannot read template {path}: {reason}", key=key)

    def render(self, values: Mapping[str, str]) -> str:
        """One substitution pass; unknown and malformed placeholders stay as written. Ends with a newline."""
        body = string.Template(self.text).safe_substitute(values)
        return body if body.endswith("\n") else body + "\n"


def plain_message(sender: str, to: str, subject: str, body: str,
                  headers: Iterable[tuple[str, str]] = ()) -> EmailMessage:
    """A text/plain UTF-8 message: 7bit when it can be (ASCII, lines within RFC 5322's 998), else QP.

    ``sender``, ``to``, ``subject`` and the extra ``headers`` must already be clean one-line text.
    """
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    for name, value in headers:
        msg[name] = value
    plain = body.isascii() and all(len(ln) <= 998 for ln in body.splitlines())
    msg.set_content(body, charset="utf-8", cte="7bit" if plain else "quoted-printable")
    return msg


def incidents_table(incidents: list[Incident], max_rows: int) -> str:
    """Aligned columns; only what the reporter told us (never customer or RADIUS data)."""
    if not incidents:
        return "  (none)"
    rows = [("Time (UTC)", "Source IP", "Port", "Type", "Found by")]
    guessed = False
    for inc in incidents[:max_rows]:
        when = inc.time.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if inc.time else "-"
        if inc.time and inc.zone in ("date-header", "assumed-utc"):
            when += " *"
            guessed = True
        rows.append((when, str(inc.ip), str(inc.port) if inc.port is not None else "-",
                     clean(inc.type, 40), clean(inc.parser, 40)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    extra = len(incidents) - max_rows
    if extra > 0:
        lines.append(f"  ... and {extra} more")
    if guessed:
        lines.append("  * no time zone in the report: taken from its Date header, or UTC assumed")
    return "\n".join(lines)


def reasons(report: Report, max_rows: int) -> str:
    """Each parser's verdict and each filter's reason, so nobody gets '0 incidents' unexplained."""
    lines = [f"  - {clean(name, 40)}: {clean(str(v), 300) or 'nothing found'}" for name, v in report.verdicts.items()]
    for d in report.dropped[:max_rows]:
        lines.append(f"  - {d.incident.ip} ({clean(d.incident.type, 40)}): not used, {clean(d.filter, 40)} "
                     f"filter: {clean(d.reason, 200)}")
    extra = len(report.dropped) - max_rows
    if extra > 0:
        lines.append(f"  - ... and {extra} more addresses not used")
    return "\n".join(lines) if lines else "  (no parser looked at this message)"


def report_values(report: Report, header: Callable[[str], str | None], to: str, max_rows: int) -> dict[str, str]:
    """What the answer's placeholders stand for; ``header(name)`` gives the report's decoded headers."""
    subject = report.subject if report.subject is not None else header("Subject") or ""
    return {
        "subject": clean(subject) or "(none)",
        "date": clean(header("Date") or "(none)", 80),
        "message_id": clean(report.message_id or header("Message-ID") or "(none)", 250),
        "from": clean(report.sender or header("From") or "(none)", 200),
        "to": to,
        "count": str(len(report.incidents)),
        "incidents": incidents_table(report.incidents, max_rows),
        "reasons": reasons(report, max_rows),
    }
