"""One ``Received:`` header: the client's address as the receiving MTA saw it, the receiver, the date.

Every dialect in the wild writes the client somewhere in its ``from`` clause;
this module reads them all into one :class:`Received` (the chain logic lives in
:mod:`abuso.parsers.received`):

* Sendmail, Postfix, Zimbra's Postfix, Haraka, Courier, Google:
  ``from helo (rdns [addr])`` (Google writes ``rdns.`` with a dot, Courier
  ``[::ffff:addr]``, Postfix ``[IPv6:addr]``, Sendmail ``(may be forged)`` and
  ``ident@rdns``);
* Exim: ``from rdns ([addr]:port helo=x)`` or ``from [addr] (helo=x)``;
* qmail and Yahoo: ``from rdns (HELO x) (addr)``, ``(user@addr)`` when
  authenticated; Yahoo's proxy writes a loopback first
  (``from 127.0.0.1 (EHLO x) (addr)``), Zimbra's LMTP ``(LHLO x) (addr)``;
  qmail-scanner ``from addr by host``;
* Exchange, Office 365, KumoMTA: ``from name (addr) by host (addr) with
  Microsoft SMTP Server`` / ``(KumoMTA version)``; Hotmail ``from name ([addr])``.

HELO names and literals are the client's claims, so the address always comes
from what the receiving MTA saw (``(name [addr])``, ``[addr]``, qmail's
``(addr)``, Microsoft's ``(addr)``); a HELO literal is used only when nothing
else is there. The ``by`` clause is never read for the source, so
``(8.12.9/8.12.6)`` or ``InterMail vK.4.04.00.00`` cannot become addresses.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ..lazy import lazy_compile
from ..model import IPAddress
from ..normalize import parse_date
from ..zones import Zones

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Received", "parse_received", "MAX_HEAD", "MAX_DATE"]


@dataclass(frozen=True)
class Received:
    """One parsed ``Received:`` header."""

    text: str
    ip: IPAddress | None = None
    #: The client's name as the receiving MTA verified it (reverse DNS), if written.
    name: str | None = None
    helo: str | None = None
    by: str | None = None
    time: datetime | None = None
    zone: str = "none"
    #: Mailbox retrieval (fetchmail POP3/IMAP): everything below was already delivered.
    retrieval: bool = False
    #: The address is only the client's HELO claim.
    from_helo: bool = False
    microsoft: bool = False
    #: The first word after "from": a verified name (Exim, qmail) or only the HELO (Sendmail "helo ([addr])").
    claimed: str | None = None
    #: The header has a top-level ``from`` clause (a hop between two hosts, not local processing).
    has_from: bool = False



# --- one header ---------------------------------------------------------------

_IPV4 = r"(?<![\w.:-])(?:\d{1,3}\.){3}\d{1,3}(?![\w-]|\.\w)"
_IPV6 = r"(?<![\w.:])(?=[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:)[0-9A-Fa-f:]{2,39}(?:(?<=:)(?:\d{1,3}\.){3}\d{1,3})?(?:%\w+)?"
_BRACKET = lazy_compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+(?:%\w+)?)\]", re.I)
_BARE = lazy_compile(rf"{_IPV4}|{_IPV6}")
_V4_PORT = lazy_compile(r"(?<=\d):\d{1,5}$")
_HELO = lazy_compile(r"(?:\bhelo=|(?<=\()\s*(?:helo|ehlo)\s+)(\[[^\]]*\]|[^\s)]+)", re.I)
_ZONE_IN_DATE = lazy_compile(r"[+-]\d{4}\b|\b(?:UT|UTC|GMT|Z|[ECMP][SD]T)\b")
_DATE_TAIL = lazy_compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),?\s+)?\d{1,2}\s+[A-Za-z]{3}\s+\d{2,4}\s+\d{1,2}:\d{2}(?::\d{2})?"
    r"(?:\s*(?:[+-]\d{4}|[A-Z]{1,5}))?(?:\s*\([^)]*\))?\s*$"
)
_RETRIEVAL = lazy_compile(r"\bwith\s+(?:POP3?|IMAP4?|E?TRN)\b|\bfetchmail\b", re.I)
_NOT_A_NAME = {"unknown", "may", "localhost"}


_ADDRESS_LIKE = lazy_compile(r"[0-9A-Fa-f:.]*(?:\d\.\d|:)[0-9A-Fa-f:.]*(?:%\w+)?\Z")


def _address(text: str) -> IPAddress | None:
    if not _ADDRESS_LIKE.match(text):  # host names: no exception raised and caught (that costs ~5 µs)
        return None
    text = text.split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


_KEYWORDS = {v: k for k in ("from", "by", "via", "with", "id", "for") for v in (k, k.upper(), k.capitalize())}
#: Longer Received values are hostile: their head and date are cut to these sizes.
MAX_HEAD, MAX_DATE = 2048, 256
#: RFC 5321 loop detection rejects mail with ~100 hops; more headers than that are stuffing.


def _clauses(text: str) -> dict[str, str]:
    """The top-level clauses (from, by, ...) of a Received value; comments stay inside their clause.

    Word by word rather than by regex: this runs for every hop of every carried message.
    """
    out: dict[str, str] = {}
    depth, key, start = 0, None, 0
    pos = 0
    for word in text.split(" "):
        kw = _KEYWORDS.get(word) if depth == 0 else None
        if kw is not None:
            if key is not None and key not in out:
                out[key] = text[start:pos].strip()
            key, start = kw, pos + len(word)
        if "(" in word or ")" in word:
            depth = max(0, depth + word.count("(") - word.count(")"))
        pos += len(word) + 1
    if key is not None and key not in out:
        out[key] = text[start:].strip()
    return out


def parse_received(value: str, default_zone: Any = None) -> Received:
    """Parse one Received header value (folded or not). Never raises.

    ``default_zone``: for a date without offset, the report's zone sources
    (abuso.zones.Zones) or a configured zone name.
    """
    text = " ".join(str(value).split())
    semi = text.rfind(";")
    head, date_text = (text[:semi], text[semi + 1:].strip()) if semi >= 0 else (text, "")
    head, date_text = head[:MAX_HEAD], date_text[:MAX_DATE]
    time, zone = _header_time(date_text) if date_text else (None, "none")
    if time is None:  # some MTAs (EarthLink) forget the ';'
        m = _DATE_TAIL.search(text[-MAX_DATE:])
        if m:
            time, zone = _header_time(m.group(0))
            if time is not None and semi < 0:
                head = text[: max(0, len(text) - MAX_DATE) + m.start()][:MAX_HEAD]
    if time is not None and zone == "none":
        time, zone = _naive(time, default_zone)
    clauses = _clauses(head)
    by = clauses.get("by", "").split(" ", 1)[0].strip("()[];,") or None
    frm = clauses.get("from")
    low = head.lower()
    retrieval = ("pop" in low or "imap" in low or "fetchmail" in low or "trn" in low) and bool(_RETRIEVAL.search(head))
    microsoft = "microsoft smtp" in low
    if frm is None:
        return Received(text=text, by=by, time=time, zone=zone, retrieval=retrieval, microsoft=microsoft)
    helo = None
    m = _HELO.search(frm) if ("helo" in low or "ehlo" in low) else None
    if m:
        helo = m.group(1).strip("[]")
        frm_seen = frm[: m.start()] + frm[m.end():]
    else:
        frm_seen = frm
    # The receiving MTA writes what it saw inside the parentheses (Postfix/Sendmail "helo (rdns [addr])",
    # Exim "([addr]:port helo=x)"); a bracket outside them is the HELO literal when one inside exists.
    ip, from_helo, in_parens, before = None, False, False, ""
    for m in _BRACKET.finditer(frm_seen):
        found = _address(m.group(1)) or _address(_V4_PORT.sub("", m.group(1)))
        if found is None:
            continue
        pre = frm_seen[: m.start()]
        inside = pre.count("(") > pre.count(")")
        if ip is None or (inside and not in_parens):
            ip, before, in_parens = found, pre, inside
        if inside:
            break
    if ip is None:  # qmail/Yahoo/Exchange/KumoMTA "(addr)": the parenthesised one is what the MTA saw
        for m in _BARE.finditer(frm_seen):
            found = _address(m.group(0))
            if found is None:
                continue
            pre = frm_seen[: m.start()]
            if pre.count("(") > pre.count(")"):
                ip = found
                break
            ip = ip or found  # Yahoo's proxy writes "from 127.0.0.1 (EHLO x) (addr)": keep looking
    if ip is None and helo:
        ip, from_helo = _address(helo), True
    # Which name did the receiving MTA verify? Sendmail/Postfix: "helo (rdns [addr])";
    # Exim: "rdns [addr]" or "rdns ([addr] helo=x)"; qmail: "rdns (HELO x) (addr)".
    name = None
    first = "" if frm_seen.startswith(("[", "(")) else frm_seen.split(" ", 1)[0]
    if in_parens and "helo=" not in frm.lower():
        words = before.rsplit("(", 1)[-1].split()
        if len(words) == 1:  # "(rdns [addr]" or Sendmail's ident "(user@rdns [addr]"
            name = words[0].rsplit("@", 1)[-1]
    else:
        name = first
    if name and (name.lower() in _NOT_A_NAME or _address(name) is not None):
        name = None
    claimed = first if first and first.lower() not in _NOT_A_NAME and _address(first) is None else None
    return Received(text=text, by=by, time=time, zone=zone, retrieval=retrieval, microsoft=microsoft,
                    ip=ip, name=name, helo=helo, from_helo=from_helo, claimed=claimed, has_from=True)


_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                        "dec"), 1)}
_FAST_DATE = lazy_compile(r"(?:[A-Za-z]{3},?\s+)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d{1,2}):(\d{2}):(\d{2})"
                        r"\s+([+-])(\d{2})(\d{2})(?:\s+\([^)]*\)?)?\s*\Z")


def _header_time(text: str) -> tuple[datetime | None, str]:
    """The header's date; the common "Mon, 23 Nov 2026 09:42:15 +0100 (CET)" without email.utils."""
    m = _FAST_DATE.match(text)
    if m:
        day, mon, year, hh, mm, ss, sign, oh, om = m.groups()
        month = _MONTHS.get(mon.lower())
        if month:
            try:
                offset = timedelta(hours=int(oh), minutes=int(om)) * (-1 if sign == "-" else 1)
                dt = datetime(int(year), month, int(day), int(hh), int(mm), int(ss), tzinfo=timezone.utc)
                return dt - offset, "explicit"
            except (ValueError, OverflowError):
                return None, "none"
    parsed, _ = parse_date(text)
    if parsed is None:
        return None, "none"
    return parsed, ("explicit" if _ZONE_IN_DATE.search(text) else "none")


def _naive(dt: datetime, zones: Any) -> tuple[datetime | None, str]:
    """A date without offset (parse_date read it as UTC): the report's zone sources decide.

    ``zones`` is the report's :class:`abuso.zones.Zones` (stated zone, Date
    offset, configured zone, in the one order), or just a configured zone name.
    """
    if not isinstance(zones, Zones):
        zones = Zones(stated=None, default=zones or None)
    return zones.resolve(dt.replace(tzinfo=None)) or (None, "none")
