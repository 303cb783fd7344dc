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
from datetime import datetime, timezone
from email.message import Message as _StdMessage
from email.utils import parsedate_to_datetime

from ..errors import BROKEN, INPUT_ERRORS
from ..lazy import lazy_compile
from ..model import Incident, Verdict
from ..options import Option
from ..zones import Zones
from .arf_reports import (  # noqa: F401  (MAX_REPORTS, parse_fields: the module's public names before the split)
    JMRP_PART,
    MAX_REPORTS,
    FeedbackReport,
    find_reports,
    has_feedback_part,
    header_section,
    jmrp_report,
    jmrp_subject_ip,
    looks_like_arf,
    parse_fields,
    reports_in_text,
)
from .base import TIME_OPTIONS, Parser

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any, Mapping

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

_HAS_ZONE = lazy_compile(r"(?:[+-]\d{4}|\b(?:UTC?|GMT|Z|[ECMP][SD]T)\b)\s*(?:\([^)]*\))?\s*$", re.I)
_ISO = lazy_compile(r"^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d(?::\d\d(?:\.\d{1,6})?)?)\s*(Z|UTC|GMT|[+-]\d\d:?\d\d)?$", re.I)


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


def _source_of(msg: _StdMessage, zones: Any = None, trusted: Any = ()) -> Any:
    """The received parser's answer to where ``msg`` entered the reporter's systems (a Hop or None).

    ``zones``: the report's zone sources (abuso.zones.Zones) for a header date without offset;
    ``trusted``: the reporter's relays (networks and domains), as the received parser takes them.
    """
    from .received import source_of

    return source_of(msg, trusted or (), default_zone=zones)


def _check_trusted(value: str) -> None:
    from .received import _check_trusted as check

    check(value)


# --- the parser ---------------------------------------------------------------


class ArfParser(Parser):
    """RFC 5965 feedback reports: one incident per report, typed by its Feedback-Type."""

    name = "arf"
    priority = 100
    authority = True  # Source-IP (or, without it, this parser's own Received fallback)
    OPTIONS = (
        Option("trusted", "strings", each=_check_trusted,
               help="networks and domains of feedback-loop providers' relays, for reports without Source-IP"),
    ) + TIME_OPTIONS

    def parse(self, message: Message) -> Verdict:
        part = has_feedback_part(message)
        verdict, read = self._read(message, part)
        if not read and not part:
            return verdict
        if not verdict.incidents and _NO_SOURCE in verdict.reason:
            # No Source-IP and the Received fallback found nothing: the report does not state its
            # source after all, so the received parser (trusted relays, pasted chains) may try.
            verdict.reason += "; left to the received parser"
            return verdict
        jmrp = JMRP_PART in verdict.reason
        return self.states_source(verdict, "a JMRP complaint's Subject" if jmrp else "an ARF report")

    def _read(self, message: Message, part: bool = False) -> tuple[Verdict, bool]:
        """The verdict, and whether any feedback report was read (by its MIME part or its text).

        ``part``: the mail has a ``message/feedback-report`` part (even one whose encoded
        content hides every field from the text blocks, as a forwarded ``ATT00001`` does).
        """
        if not part and not looks_like_arf(message) and jmrp_subject_ip(message) is None:
            return self.not_applicable("not an ARF report (no feedback-report part)"), False
        roots = [message.email] + list(getattr(message, "embedded", []))
        reports, problems = find_reports(roots)
        if not reports:  # a forward that pasted the fields into its text
            reports = reports_in_text(message)
        if not reports:  # Microsoft JMRP: the Subject names the source, the spam is attached
            jmrp = jmrp_report(message)
            reports = [jmrp] if jmrp is not None else []
            problems = problems + [f"no feedback part: the source is the {JMRP_PART}"] if jmrp else problems
        if not reports:
            why = f" ({'; '.join(_dedupe(problems))})" if problems else ""
            if b"feedback-report" in header_section(message.raw).lower():
                return self.found([], "declared a feedback report, but has no feedback part (truncated?)" + why), False
            return self.not_applicable(f"not an ARF report (no feedback-report part){why}"), False
        incidents: list[Incident] = []
        notes: list[str] = []
        restated: list[str] = []
        for rep in reports:
            found, note = self._incident(rep, message)
            if found is not None:
                incidents.append(found)
                if rep.human:
                    restated.append(rep.human)
            if note:
                notes.append(note)
        notes.extend(problems)
        prefix = f"{len(reports)} feedback reports" if len(reports) > 1 else ""
        reason = "; ".join(x for x in [prefix] + _dedupe(notes) if x)
        verdict = self.found(incidents, reason)
        verdict.restated = restated  # the human-readable parts only tell these reports again
        return verdict, True

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
            trusted = self.options.get("trusted")
            zones = Zones.of(message, self.options)
            hop = _source_of(rep.original, zones, trusted) if trusted else _source_of(rep.original, zones)
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


_ZONES: list[Any] = [None, None, None]


def _zones_of(message: Message, options: Mapping[str, Any]) -> Zones:
    """Zones.of, once per message: a message may paste hundreds of reports (MAX_REPORTS) that each need it,
    and finding the report's stated zone reads the whole text."""
    if _ZONES[0] is message and _ZONES[1] is options:
        return _ZONES[2]
    zones = Zones.of(message, options)
    _ZONES[:] = [message, options, zones]
    return zones


def _arrival_fallback(rep: FeedbackReport, ip: Any, message: Message,
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

    zones = _zones_of(message, options)
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
    return "\n".join(lines)[:2000] or rep.text[:2000]


def _join(a: str, b: str, sep: str = "; ") -> str:
    return f"{a}{sep}{b}" if a and b else (a or b)


def _dedupe(items: list[str]) -> list[str]:
    out: list[str] = []
    for x in items:
        if x and x not in out:
            out.append(x)
    return out

