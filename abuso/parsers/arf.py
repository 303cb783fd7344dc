"""ARF feedback reports (RFC 5965, RFC 6591 auth-failure, RFC 6650) -> incidents.

Mailbox providers (AOL, Yahoo, Comcast, the Return Path FBLs, SpamExperts...)
send one ``multipart/report; report-type=feedback-report`` per complaint: a
human part, a ``message/feedback-report`` part with ``Feedback-Type``,
``Source-IP`` and ``Arrival-Date``, and the original message. In real mail the
report is often forwarded or attached, the ``report-type`` is missing, the
fields come as ``text/plain`` and ``Source-IP`` is absent (AbuseIO #340): all of
these are accepted here, and a missing ``Source-IP`` is taken from the original
message's ``Received`` chain (the incident then says ``derived: received``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message as _StdMessage
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import BROKEN, INPUT_ERRORS
from ..lazy import lazy_compile
from ..model import Incident, Verdict
from ..zones import Zones
from .base import TIME_OPTIONS, Parser

if TYPE_CHECKING:
    from ..normalize import Message

#: RFC 5965 / 6591 / IANA "Feedback Report Type Values" -> classification.type.
FEEDBACK_TYPES: dict[str, str] = {
    "abuse": "spam",
    "fraud": "phishing",
    "virus": "malware-distribution",
    # RFC 6591: mail from Source-IP claimed a domain whose SPF/DKIM/DMARC check
    # failed, i.e. the source impersonated that domain (RSIT "masquerade").
    "auth-failure": "masquerade",
    "other": "undetermined",
}
#: Feedback-Types that accuse nobody, with the reason the verdict gives.
NO_INCIDENT: dict[str, str] = {
    "not-spam": "Feedback-Type not-spam: the recipient marked this mail as wanted, no incident",
    # X-ARF over SMTP marks its ARF wrapper so; the xarf parser reads the JSON part.
    "xarf": "Feedback-Type xarf: the X-ARF JSON part is the xarf parser's",
}

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
_HAS_ZONE = lazy_compile(r"(?:[+-]\d{4}|\b(?:UTC?|GMT|Z|[ECMP][SD]T)\b)\s*(?:\([^)]*\))?\s*$", re.I)
_ISO = lazy_compile(r"^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d(?::\d\d(?:\.\d{1,6})?)?)\s*(Z|UTC|GMT|[+-]\d\d:?\d\d)?$", re.I)


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
    """Cheap pre-check on the normalized blocks: does any start with feedback fields?

    The normalizer turns a ``message/feedback-report`` part into a header
    block and a text/plain one into a body block; either way the fields come
    first, so only each block's head is searched and a message that is not
    ARF costs a few microseconds whatever its size.
    """
    top = header_section(message.raw)  # report-type=feedback-report of the mail itself
    if b"eedback" in top or b"EEDBACK" in top:
        return True
    for b in message.blocks:
        head = b.text[:SNIFF_HEAD]
        if "eedback" in head or "EEDBACK" in head:
            return True
    return any(a.content_type == "message/feedback-report" for a in message.attachments)


# --- dates ------------------------------------------------------------------


def parse_stamp(value: Any) -> tuple[datetime | None, bool]:
    """(datetime, explicit zone?) from RFC 2822, ISO 8601 or epoch seconds; (None, False) if unreadable.

    The datetime is aware when the stamp carried its zone, naive otherwise.
    """
    if isinstance(value, datetime):
        return value, value.tzinfo is not None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _epoch(value)
    if not isinstance(value, str):
        return None, False
    v = " ".join(value.split())
    if not v or len(v) > 200:
        return None, False
    m = _ISO.match(v)
    if m:
        zone = (m.group(3) or "").upper()
        if zone in ("Z", "UTC", "GMT"):
            zone = "+00:00"
        elif zone and ":" not in zone:
            zone = zone[:3] + ":" + zone[3:]
        try:
            dt = datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}{zone}")
        except ValueError:
            return None, False
        return dt, bool(zone)
    if v.isdigit() and 9 <= len(v) <= 10:
        return _epoch(int(v))
    try:
        dt = parsedate_to_datetime(v)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None, False
    if dt is None:
        return None, False
    if dt.tzinfo is None:
        # "-0000" is UTC with the sender's own zone unknown (RFC 5322 3.3).
        if "-0000" in v:
            return dt.replace(tzinfo=timezone.utc), True
        return dt, False
    if not _HAS_ZONE.search(v):  # unknown zone names parse as +0000: that is a guess, not a stamp
        return dt.replace(tzinfo=None), False
    return dt, True


def _epoch(value: float) -> tuple[datetime | None, bool]:
    try:
        return datetime.fromtimestamp(value, timezone.utc), True
    except (OverflowError, OSError, ValueError):
        return None, False


def resolve_time(value: Any, message: Message, options: Mapping[str, Any]) -> tuple[datetime | None, str]:
    """An aware UTC datetime and where its offset came from (the Incident ``zone``).

    A stamp with its zone is ``explicit``; one without takes the report's zone
    sources in the one order of :mod:`abuso.zones` (stated, date-header, the
    configured ``zone``: default, else assumed-utc).
    """
    dt, _ = parse_stamp(value)
    if dt is None:
        return None, "none"
    return Zones.of(message, options).resolve(dt) or (None, "none")


def fallback_time(message: Message, options: Mapping[str, Any]) -> tuple[datetime | None, str, dict[str, str]]:
    """The report's own Date for an incident without a time, if the config asks for it."""
    if options.get("date_fallback") and getattr(message, "date", None) is not None:
        return message.date, "date-header", {"time_from": "date-header"}
    return None, "none", {}


def parse_ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from a field value: '192.0.2.1', '[192.0.2.1]', 'IPv6:2001:db8::1', '192.0.2.1 (host)'."""
    if not isinstance(value, str):
        return None
    token = value.strip().split()[0] if value.strip() else ""
    token = token.strip("[]<>(),;\"'")
    if token.lower().startswith("ipv6:"):
        token = token[5:]
    try:
        ip = ipaddress.ip_address(token)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip.is_unspecified:
        return None
    return ip


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
    if ctype.startswith("text/"):
        text = _decoded(part)
        # The fields must open the part: a whole forwarded report pasted as
        # text starts with its own mail headers, and is the normalizer's to embed.
        first_block = text[:SNIFF_CHARS].lstrip("\r\n").replace("\r\n", "\n").split("\n\n", 1)[0]
        if _FIELD_RX.search(first_block) and not _MAIL_HEADER_RX.search(first_block):
            return text[:MAX_FIELDS_CHARS]
    return None


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
        reports.append(report)
        for i, kid in enumerate(kids, 1):  # a digest may carry further reports beside this one
            if id(kid) not in seen and kid.get_content_type() in ("message/rfc822", "message/global"):
                walk(kid, f"{path}.{i}", depth)

    for n, root in enumerate(roots):
        walk(root, "1" if n == 0 else f"embedded{n}", 0)
    if len(reports) >= MAX_REPORTS:
        problems.append(f"more than {MAX_REPORTS} feedback reports; the rest were not read")
    return reports, problems


def _source_of(msg: _StdMessage, zones: Any = None) -> Any:
    """The received parser's answer to where ``msg`` entered the reporter's systems (a Hop or None).

    ``zones``: the report's zone sources (abuso.zones.Zones) for a header date without offset.
    """
    from .received import source_of

    return source_of(msg, default_zone=zones)


# --- the parser ---------------------------------------------------------------


class ArfParser(Parser):
    """RFC 5965 feedback reports: one incident per report, typed by its Feedback-Type."""

    name = "arf"
    priority = 100
    authority = True  # Source-IP (or, without it, this parser's own Received fallback)
    OPTIONS = TIME_OPTIONS

    def parse(self, message: Message) -> Verdict:
        verdict = self._read(message)
        if not has_feedback_part(message):
            return verdict
        if not verdict.incidents and _NO_SOURCE in verdict.reason:
            # No Source-IP and the Received fallback found nothing: the report does not state its
            # source after all, so the received parser (trusted relays, pasted chains) may try.
            verdict.reason += "; left to the received parser"
            return verdict
        return self.states_source(verdict, "an ARF report")

    def _read(self, message: Message) -> Verdict:
        if not looks_like_arf(message):
            return self.not_applicable("not an ARF report (no feedback-report part)")
        roots = [message.email] + list(getattr(message, "embedded", []))
        reports, problems = find_reports(roots)
        if not reports:
            why = f" ({'; '.join(_dedupe(problems))})" if problems else ""
            if b"feedback-report" in header_section(message.raw).lower():
                return self.found([], "declared a feedback report, but has no feedback part (truncated?)" + why)
            return self.not_applicable(f"not an ARF report (no feedback-report part){why}")
        incidents: list[Incident] = []
        notes: list[str] = []
        for rep in reports:
            found, note = self._incident(rep, message)
            if found is not None:
                incidents.append(found)
            if note:
                notes.append(note)
        notes.extend(problems)
        prefix = f"{len(reports)} feedback reports" if len(reports) > 1 else ""
        reason = "; ".join(x for x in [prefix] + _dedupe(notes) if x)
        return self.found(incidents, reason)

    def _incident(self, rep: FeedbackReport, message: Message) -> tuple[Incident | None, str]:
        raw_type = (rep.get("feedback-type") or "").strip().lower()
        ft = raw_type.split()[0].rstrip(";") if raw_type else ""
        if ft in NO_INCIDENT:
            return None, NO_INCIDENT[ft]
        note = ""
        if not ft:
            type_, note = "undetermined", "feedback report without a Feedback-Type: type undetermined"
        elif ft in FEEDBACK_TYPES:
            type_ = FEEDBACK_TYPES[ft]
        else:
            type_, note = "undetermined", f"unknown Feedback-Type {ft!r}: type undetermined"

        extra: dict[str, Any] = {"feedback_type": ft or None}
        for name in ("reported-domain", "reported-uri", "original-mail-from", "auth-failure", "incidents"):
            value = rep.get(name)
            if value:
                extra[name.replace("-", "_")] = value[:500]
        stamp = rep.get("arrival-date") or rep.get("received-date")
        time, zone = resolve_time(stamp, message, self.options) if stamp else (None, "none")
        if stamp and time is None:
            note = _join(note, f"unreadable Arrival-Date {stamp[:80]!r}")

        ip = None
        source = rep.get("source-ip")
        if source:
            ip = parse_ip(source)
            if ip is None:
                note = _join(note, f"unusable Source-IP {source[:80]!r}")
        evidence = _evidence(rep)
        if ip is None:
            hop, why = self._derive(rep, message)
            if hop is None:
                return None, _join(note, why)
            ip = hop.ip if not isinstance(hop.ip, str) else ipaddress.ip_address(hop.ip)
            extra["derived"] = "received"
            # The hop's own stamp goes with the hop's address; Arrival-Date only if it has none.
            if getattr(hop, "time", None) is not None:
                time, zone = hop.time, getattr(hop, "zone", "explicit") or "explicit"
            evidence = _join(evidence, str(getattr(hop, "evidence", "") or "")[:1000], "\n")
            note = _join(note, "no Source-IP: address taken from the original message's Received chain")
        if time is None:
            time, zone, time_from = _arrival_fallback(rep, ip, message, self.options)
            if time is not None:
                extra["time_from"] = time_from
                note = _join(note, f"no Arrival-Date: time from the {_TIME_FROM[time_from]}")
        if time is None:
            time, zone, more = fallback_time(message, self.options)
            extra.update(more)
        port = None
        sport = rep.get("source-port")  # RFC 6692
        if sport and sport.isdigit() and 0 < int(sport) < 65536:
            port = int(sport)
        try:
            inc = Incident(ip=ip, type=type_, time=time, parser=self.name, zone=zone, port=port,
                           evidence=evidence, extra={k: v for k, v in extra.items() if v is not None})
        except (ValueError, TypeError) as e:
            return None, _join(note, f"report skipped: {e}")
        return inc, note

    def _derive(self, rep: FeedbackReport, message: Message) -> tuple[Any, str]:
        if rep.original is None:
            return None, "feedback report without Source-IP and without the original message: no incident"
        try:
            hop = _source_of(rep.original, Zones.of(message, self.options))
        except (*BROKEN, MemoryError):  # a broken install, a bug, over budget: not this report's fault, never hidden
            raise
        except Exception as e:  # kept broad: a fallback must never cost the report
            return None, f"feedback report without Source-IP; its Received chain is unreadable ({type(e).__name__})"
        if hop is None or getattr(hop, "ip", None) is None:
            return None, _UNDERIVED
        return hop, ""


#: Every reason of a report that named no source and whose fallback found none starts so.
_NO_SOURCE = "feedback report without Source-IP"
_TIME_FROM = {"received": "original's Received header", "original-date": "original's Date",
              "human-part": "human-readable part"}
#: How much of the human-readable part is searched for a time.
HUMAN_CHARS = 2000


def _arrival_fallback(rep: FeedbackReport, ip: Any, message: Any,
                      options: Mapping[str, Any]) -> tuple[datetime | None, str, str]:
    """The time of a report without Arrival-Date: (time, zone, where from), or (None, "none", "").

    In this order: the original's Received header whose client is the source
    (else its newest one: the reporter's own delivery), the original's Date,
    the first time the human-readable part gives. Naive stamps take the
    report's zone sources (abuso.zones), and ``zone`` says where the offset came from.
    """
    from ..normalize import header_all
    from ..timestamps import find_timestamps
    from .received import MAX_HOPS
    from .received_line import parse_received

    zones = Zones.of(message, options)
    if rep.original is not None:
        try:
            hops = [parse_received(h, zones) for h in header_all(rep.original, "Received")[:MAX_HOPS]]
            date = rep.original.get("Date")
        except INPUT_ERRORS:
            hops, date = [], None
        timed = [h for h in hops if h.time is not None]
        hop = next((h for h in timed if h.ip == ip), None) or (timed[0] if timed else None)
        if hop is not None:
            return hop.time, hop.zone, "received"
        if date:
            time, zone = resolve_time(str(date), message, options)
            if time is not None:
                return time, zone, "original-date"
    if rep.human:  # one line: generators wrap "received from IP x on <date>" anywhere
        text = " ".join(rep.human[:HUMAN_CHARS].split())
        stamps = find_timestamps(text, reference=getattr(message, "date", None), stated=zones.stated,
                                 header_offset=zones.header_offset, default=zones.default)
        if stamps:
            return stamps[0].time, stamps[0].zone, "human-part"
    return None, "none", ""


_UNDERIVED = _NO_SOURCE + ", and no source in the original's Received chain"

_EVIDENCE_FIELDS = {"feedback-type", "source-ip", "source-port", "arrival-date", "received-date", "reported-domain",
                    "reported-uri", "user-agent", "incidents", "auth-failure"}


def _evidence(rep: FeedbackReport) -> str:
    """The report's own lines for the fields that make the accusation, as the reporter wrote them."""
    lines = [ln.strip() for ln in rep.text.splitlines()
             if ln.partition(":")[0].strip().lower() in _EVIDENCE_FIELDS]
    return "\n".join(lines)[:2000]


def _join(a: str, b: str, sep: str = "; ") -> str:
    return f"{a}{sep}{b}" if a and b else (a or b)


def _dedupe(items: list[str]) -> list[str]:
    out: list[str] = []
    for x in items:
        if x and x not in out:
            out.append(x)
    return out

