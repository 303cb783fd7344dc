"""Finding ARF feedback reports in a mail, wherever a sender or a forwarder put them.

A report is a multipart container with a feedback part among its direct
children; ``report-type`` and even ``multipart/report`` are not required. The
feedback part is recognised by its content, not its label: a
``message/feedback-report`` part, a ``text/plain`` one, or the same fields
re-wrapped by a forwarding mail client as ``application/octet-stream`` named
``ATT00001`` or ``noname`` (base64). The original message beside it may be
``message/rfc822``, headers only, or such an opaque file too. Failing all
that, a ``Feedback-Type:`` block pasted into the text of a forward is read
where it sits (:func:`reports_in_text`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message as _StdMessage

from ..errors import INPUT_ERRORS
from ..lazy import lazy_compile

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from ..normalize import Message

#: At most this many feedback reports are read from one mail (hostile digests).
MAX_REPORTS = 200
#: How deep attached-in-attached messages are searched for a report.
MAX_DEPTH = 8
#: How many MIME parts are looked at before giving up.
MAX_PARTS = 1000
#: A text/plain candidate for the fields is only sniffed in its first bytes.
SNIFF_CHARS = 4096
#: How much of each text block the fast pre-check looks at.
SNIFF_HEAD = 2048
MAX_HEADER_BYTES = 64 * 1024
#: At most this much of a feedback part is read as fields.
MAX_FIELDS_CHARS = 64 * 1024

_FIELD_NAME = lazy_compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,59}$")
_MAIL_HEADER_RX = lazy_compile(r"^(?:content-type|mime-version|received|message-id)[ \t]*:", re.I | re.M)
_FIELD_RX = lazy_compile(r"^feedback-type[ \t]*:", re.I | re.M)
_ORIGINAL_TYPES = ("message/rfc822", "message/global", "text/rfc822-headers", "message/rfc822-headers",
                   "message/global-headers")


def has_feedback_part(message: Message) -> bool:
    """Does the mail carry a ``message/feedback-report`` part anywhere (read or not)?

    That is the ARF format's statement of the source: the verdict says so even
    when the part could not be read, and the received parser leaves the report alone.
    """
    for n, part in enumerate(message.email.walk()):
        if n > 500:
            break
        try:
            if part.get_content_type() == "message/feedback-report":
                return True
        except MemoryError:  # over the message's budget (defaults.max_memory): the runner says so
            raise
        except Exception:  # a hostile Content-Type header
            continue
    return False


def header_section(raw: bytes) -> bytes:
    """The raw header lines of a mail (at most MAX_HEADER_BYTES), found without scanning its body."""
    end = raw.find(b"\n\n", 0, MAX_HEADER_BYTES)
    end = end if end >= 0 else MAX_HEADER_BYTES
    crlf = raw.find(b"\n\r\n", 0, end)  # CRLF mail: stop there, never scan the whole body
    return raw[: crlf if crlf >= 0 else end]


def looks_like_arf(message: Message) -> bool:
    """Cheap pre-check: does the mail say feedback report, or hold a ``Feedback-Type`` field anywhere?

    The normalizer turns a ``message/feedback-report`` part into a header
    block and a text/plain one into a body block; a forward pastes the fields
    into its text, a mail client re-wraps them as an opaque file. Plain
    substring tests, so a message that is not ARF costs microseconds.
    """
    top = header_section(message.raw)  # report-type=feedback-report of the mail itself
    if b"eedback" in top or b"EEDBACK" in top:
        return True
    for b in message.blocks:  # one scan of each text (~15 µs per 30 KB); all-caps fields only at the head
        if "eedback" in b.text or "EEDBACK" in b.text[:SNIFF_HEAD]:
            return True
    for a in message.attachments:
        if a.content_type == "message/feedback-report":
            return True
        if a.content_type in _OPAQUE_TYPES and any(w.encode() in a.data[:SNIFF_HEAD] for w in _FIELD_WORDS):
            return True
    return False


_FIELD_WORDS = ("eedback-Type", "eedback-type", "EEDBACK-TYPE")
#: Part types a forwarding mail client gives the parts of a report it re-wraps (``ATT00001``, ``noname``).
_OPAQUE_TYPES = ("application/octet-stream", "application/unknown", "application/x-unknown")


# --- finding the reports ----------------------------------------------------


@dataclass
class FeedbackReport:
    """One feedback report found in a mail: its fields and the original message."""

    fields: dict[str, list[str]]
    text: str
    part: str
    original: _StdMessage | None = None
    problems: list[str] = field(default_factory=list)
    #: The human-readable part (its head), for a time the fields do not give.
    human: str = ""

    def get(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0].strip() if values else None


def parse_fields(text: str) -> dict[str, list[str]]:
    """RFC 5322-style ``Name: value`` lines (folded lines joined), names lower-cased.

    Reading them ourselves rather than through the email package keeps a
    feedback part readable when it starts with a blank line or is text/plain.
    """
    fields: dict[str, list[str]] = {}
    last: list[str] | None = None
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            last = None if fields else last
            continue
        if line[0] in " \t" and last is not None:
            last[-1] = last[-1] + " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not _FIELD_NAME.match(name):
            last = None
            continue
        last = fields.setdefault(name.lower(), [])
        last.append(value.strip())
    return fields


def _decoded(part: _StdMessage) -> str:
    from ..normalize import decode_text

    try:
        text, _ = decode_text(part)
    except INPUT_ERRORS:
        return ""
    return text


def _undo_transfer_encoding(text: str, cte: str) -> str:
    """Fields of an encoded message/feedback-report (RFC 5965 forbids it; some FBLs do it anyway).

    The email package does not decode message/* parts: it parsed the encoded
    text as if it were the fields, so the decoding is done here.
    """
    import base64
    import binascii
    import quopri

    data = text.strip().encode("ascii", "ignore")
    try:
        raw = base64.b64decode(b"".join(data.split()), validate=False) if cte == "base64" else quopri.decodestring(data)
    except (binascii.Error, ValueError):
        return text
    return raw.decode("utf-8", "replace")


def _feedback_text(part: _StdMessage, ctype: str) -> str | None:
    """The field text of a feedback part, or None if ``part`` is not one."""
    if ctype == "message/feedback-report":
        payload = part.get_payload()
        if isinstance(payload, list):  # the email package parsed the fields as a message
            inner = payload[0] if payload else None
            if not isinstance(inner, _StdMessage):
                return ""
            items = inner.raw_items() if hasattr(inner, "raw_items") else inner.items()
            head = "\n".join(f"{k}: {v}" for k, v in items)
            body = inner.get_payload()
            text = (head + "\n" + (body if isinstance(body, str) else ""))[:MAX_FIELDS_CHARS]
            cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
            return _undo_transfer_encoding(text, cte) if cte in ("base64", "quoted-printable") else text
        return _decoded(part)[:MAX_FIELDS_CHARS]
    if ctype.startswith("text/") or ctype in _OPAQUE_TYPES:
        text = _decoded(part) if ctype.startswith("text/") else _opaque_text(part)
        # The fields must open the part: a whole forwarded report pasted as
        # text starts with its own mail headers, and is the normalizer's to embed.
        first_block = text[:SNIFF_CHARS].lstrip("\r\n").replace("\r\n", "\n").split("\n\n", 1)[0]
        if _FIELD_RX.search(first_block) and not _MAIL_HEADER_RX.search(first_block):
            return text[:MAX_FIELDS_CHARS]
    return None


def _opaque_text(part: _StdMessage) -> str:
    """The decoded content (base64 and all) of a part re-wrapped as an opaque file, as text."""
    try:
        data = part.get_payload(decode=True)
    except INPUT_ERRORS:
        return ""
    return data[:MAX_FIELDS_CHARS].decode("utf-8", "replace") if isinstance(data, bytes) else ""


def _opaque_original(part: _StdMessage) -> _StdMessage | None:
    """The original message re-wrapped as an opaque file (``ATT00002``), if that is what it holds."""
    from ..normalize import looks_like_headers, parse_bytes

    try:
        data = part.get_payload(decode=True)
    except INPUT_ERRORS:
        return None
    if not isinstance(data, bytes):
        return None
    head = data[:SNIFF_HEAD].decode("latin-1").replace("\r\n", "\n").lstrip("\n").split("\n\n", 1)[0]
    if not looks_like_headers(head) or not _ORIGINAL_HEADER_RX.search(head):
        return None
    return parse_bytes(data)


_ORIGINAL_HEADER_RX = lazy_compile(r"^(?:received|from|subject|date|message-id)[ \t]*:", re.I | re.M)


def _children(part: _StdMessage) -> list[_StdMessage]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, _StdMessage)]
    return []


def find_reports(roots: list[_StdMessage]) -> tuple[list[FeedbackReport], list[str]]:
    """Every feedback report in these messages (attached and forwarded ones too).

    A report is a multipart container with a feedback part among its direct
    children; ``report-type`` and even ``multipart/report`` are not required,
    because senders and forwarders get them wrong.
    """
    reports: list[FeedbackReport] = []
    problems: list[str] = []
    seen: set[int] = set()
    budget = [MAX_PARTS]

    def walk(part: _StdMessage, path: str, depth: int) -> None:
        if id(part) in seen or len(reports) >= MAX_REPORTS:
            return
        seen.add(id(part))
        budget[0] -= 1
        if budget[0] < 0:
            if budget[0] == -1:
                problems.append(f"more than {MAX_PARTS} MIME parts; the rest were not searched")
            return
        try:
            ctype = part.get_content_type()
        except INPUT_ERRORS:
            return
        kids = _children(part)
        if ctype.startswith("message/"):
            if depth >= MAX_DEPTH:
                problems.append(f"part {path}: messages nested deeper than {MAX_DEPTH}; not searched")
                return
            for kid in kids:
                walk(kid, path, depth + 1)
            return
        if not part.is_multipart():
            return
        report = None
        for i, kid in enumerate(kids, 1):
            try:
                kctype = kid.get_content_type()
            except INPUT_ERRORS:
                continue
            text = _feedback_text(kid, kctype)
            if text is not None:
                report = FeedbackReport(parse_fields(text), text, f"{path}.{i}")
                break
        if report is None:
            for i, kid in enumerate(kids, 1):
                walk(kid, f"{path}.{i}", depth)
            return
        for kid in kids:
            if kid.get_content_type().startswith("text/") and not report.human and _feedback_text(
                    kid, kid.get_content_type()) is None:
                report.human = _decoded(kid)[:SNIFF_CHARS]
        for kid in kids:
            if kid.get_content_type() in _ORIGINAL_TYPES:
                inner = _children(kid)
                if kid.get_content_type().endswith("-headers") or not inner:
                    from ..normalize import parse_bytes

                    report.original = parse_bytes(_decoded(kid).encode("utf-8", "surrogateescape"))
                else:
                    report.original = inner[0]
                seen.add(id(kid))  # the reported spam is evidence, not another report
                break
        if report.original is None:  # re-wrapped by a forwarding client: an opaque file holding a mail
            for kid in kids:
                if kid.get_content_type() in _OPAQUE_TYPES and _feedback_text(kid, kid.get_content_type()) is None:
                    report.original = _opaque_original(kid)
                    if report.original is not None:
                        seen.add(id(kid))
                        break
        reports.append(report)
        for i, kid in enumerate(kids, 1):  # a digest may carry further reports beside this one
            if id(kid) not in seen and kid.get_content_type() in ("message/rfc822", "message/global"):
                walk(kid, f"{path}.{i}", depth)

    for n, root in enumerate(roots):
        walk(root, "1" if n == 0 else f"embedded{n}", 0)
    if len(reports) >= MAX_REPORTS:
        problems.append(f"more than {MAX_REPORTS} feedback reports; the rest were not read")
    return reports, problems


# --- fields pasted into text ------------------------------------------------------

_FIELD_LINE = lazy_compile(r"^[ \t]*([A-Za-z][A-Za-z0-9-]{0,59})[ \t]*:")
#: A pasted ``Feedback-Type`` block counts only with another field RFC 5965 defines beside it.
_ARF_FIELDS = frozenset({"user-agent", "version", "source-ip", "arrival-date", "received-date", "original-mail-from",
                         "original-rcpt-to", "reported-domain", "reported-uri", "auth-failure", "original-envelope-id",
                         "authentication-results", "source-port", "incidents", "delivery-result"})


def reports_in_text(message: Message) -> list[FeedbackReport]:
    """Feedback reports pasted into the text of a forward: each ``Feedback-Type:`` block, where it sits.

    A block is the run of ``Name: value`` lines around a ``Feedback-Type`` line
    (with at least one other ARF field). The paragraph right above it is the
    human-readable part; header lines right after it (the pasted original) are the original.
    """
    reports: list[FeedbackReport] = []
    for b in message.blocks:
        if b.kind not in ("body", "forward", "html") or not any(w in b.text for w in _FIELD_WORDS):
            continue
        lines = b.text.split("\n")
        i = 0
        while i < len(lines) and len(reports) < MAX_REPORTS:
            if not _FIELD_RX.match(lines[i].lstrip()):
                i += 1
                continue
            start = i
            while start > 0 and lines[start - 1].strip() and (
                    _FIELD_LINE.match(lines[start - 1]) or lines[start - 1][:1] in " \t"):
                start -= 1
            end = i + 1
            while end < len(lines) and lines[end].strip() and (
                    _FIELD_LINE.match(lines[end]) or lines[end][:1] in " \t"):
                end += 1
            text = "\n".join(ln.strip() for ln in lines[start:end])[:MAX_FIELDS_CHARS]
            fields = parse_fields(text)
            if _ARF_FIELDS & set(fields):
                rep = FeedbackReport(fields, text, f"{b.part} (text)", human=_paragraph_before(lines, start))
                rep.original = _pasted_original("\n".join(lines[end:end + 200]))
                reports.append(rep)
            i = end
    return reports


def _paragraph_before(lines: list[str], start: int) -> str:
    """The paragraph right above pasted fields: where a pasted report's human-readable part sits.

    Only that paragraph: the forwarder's own words further up are not the report's.
    """
    end = start
    while end > 0 and not lines[end - 1].strip():
        end -= 1
    begin = end
    while begin > 0 and lines[begin - 1].strip():
        begin -= 1
    return "\n".join(lines[begin:end])[-SNIFF_CHARS:]


def _pasted_original(text: str) -> _StdMessage | None:
    """The original's header lines pasted right after the fields, if they are there."""
    from ..normalize import looks_like_headers, parse_bytes

    head = text.lstrip("\n").split("\n\n", 1)[0]
    if not looks_like_headers(head) or not _ORIGINAL_HEADER_RX.search(head):
        return None
    return parse_bytes(head.encode("utf-8", "surrogateescape"))


# --- Microsoft JMRP -------------------------------------------------------------

#: Microsoft's Junk Mail Reporting Program: no feedback part, the Subject names the source.
_JMRP_SUBJECT = lazy_compile(r"^\s*complaint about message from\s+\[?([0-9A-Fa-f:.]{3,45})\]?\s*$", re.I)


def jmrp_subject_ip(message: Message) -> str | None:
    """The address a JMRP complaint's Subject names ("complaint about message from 192.0.2.1"), if it is one."""
    m = _JMRP_SUBJECT.match(getattr(message, "subject", None) or "")
    return m.group(1) if m else None


def jmrp_report(message: Message) -> FeedbackReport | None:
    """A JMRP complaint read as a feedback report: the Subject's address, the attached spam as original.

    Hotmail/Outlook.com send ``multipart/mixed`` with the reported message
    attached and ``Subject: complaint about message from <address>``; that
    Subject is Microsoft's statement of the connecting address, as Source-IP is
    ARF's. Without an attached message it is only a sentence, left to free text.
    """
    ip = jmrp_subject_ip(message)
    attached = [m for m in getattr(message, "embedded", []) if m.get_all("Received")]
    if ip is None or not attached:
        return None
    fields = parse_fields(f"Feedback-Type: abuse\nSource-IP: {ip}")
    return FeedbackReport(fields, f"Subject: {message.subject}", JMRP_PART, original=attached[0])


JMRP_PART = "Subject (Microsoft JMRP)"
