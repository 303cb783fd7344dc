"""The ``received`` parser: where did a forwarded spam enter the reporter's systems?

Only the Received chain of a message the report *carries* is evidence (an
attached or inline-forwarded message, or header lines pasted into the body).
The report's own transport headers only say how the complaint reached us.

Finding the entry hop
---------------------
The chain is read from the top (newest, written by the reporter's own mail
store) downwards. Each header ``from X ... by Y ...; date`` says that host Y
received the message from the client X. We walk down while X is one of the
reporter's relays and stop at the first hop whose client is not: that client
is the source, and that header's date is the incident time. A client counts as
the reporter's relay when:

* its address is loopback, link-local or unspecified (local delivery, content
  filters) -- such hops are never a source;
* its verified name (reverse DNS, as the receiving MTA wrote it) is in a domain
  of a receiving host already seen on the way down (``mail.victim.net`` handing
  to ``ux1.victim.net``), or it is in the ``trusted`` option (CIDRs or domains);
* the hop is a mailbox retrieval (fetchmail ``with POP3``/``IMAP``): the mail
  had already been delivered to a mailbox of the reporter's;
* its address is private (RFC 1918, CGN, ULA) *and* a lower hop with a public
  client was received by a host of the reporter's (same domain as a receiving
  host above it, an internal name, or a private address literal). Internal 10.x
  relays inside the reporter are skipped that way, while a private address with
  nothing trustworthy below it -- the innermost hop, or a hop under which the
  spammer forged ``from [242.21.16.157] by 207.44.214.92`` -- is the source.
  This also gives the right answer for corpora that use 10.x as stand-ins for
  public addresses (received-01: ``from [10.0.0.1] (helo=ibm.com) by
  relay.victim.net``, the innermost hop).

When every hop is the reporter's, the innermost client is the source (the mail
was written inside the reporter's network). HELO names and literals are the
client's claims, so the address always comes from what the receiving MTA saw
(``(name [addr])``, ``[addr]``, qmail's ``(addr)``, Microsoft's ``(addr)``);
a HELO literal is used only when nothing else is there. The ``by`` clause is
never read for the source, so ``(8.12.9/8.12.6)`` or ``InterMail vK.4.04.00.00``
cannot become addresses.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import Message as _StdMessage
from typing import Any, Iterable, Iterator, Mapping, Sequence

from ..model import Incident, IPAddress
from ..normalize import header_all, parse_date
from .base import Parser

__all__ = ["Hop", "Received", "parse_received", "entry_hop", "source_of", "chains_in_text", "carried_chains",
           "ReceivedParser"]


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


@dataclass(frozen=True)
class Hop:
    """The hop where a message entered the reporter's systems."""

    ip: IPAddress
    time: datetime | None
    zone: str
    evidence: str
    name: str | None = None
    by: str | None = None
    #: 0 = the top (newest) header of the chain.
    index: int = 0


# --- one header ---------------------------------------------------------------

_KEYWORD = re.compile(r"(?:(?<=[\s)\]])|^)(from|by|via|with|id|for)(?=\s|$)|[()]", re.I)
_IPV4 = r"(?<![\w.:-])(?:\d{1,3}\.){3}\d{1,3}(?![\w-]|\.\w)"
_IPV6 = r"(?<![\w.:])(?=[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:)[0-9A-Fa-f:]{2,39}(?:(?<=:)(?:\d{1,3}\.){3}\d{1,3})?(?:%\w+)?"
_BRACKET = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+(?:%\w+)?)\]", re.I)
_BARE = re.compile(rf"{_IPV4}|{_IPV6}")
_HELO = re.compile(r"\b(?:helo|ehlo)(?:=|\s+)(\[[^\]]*\]|[^\s)]+)", re.I)
_NAMED_BRACKET = re.compile(r"([A-Za-z0-9][\w.-]*)\s+\[(?:IPv6:)?[0-9A-Fa-f:.%]+\]", re.I)
_ZONE_IN_DATE = re.compile(r"[+-]\d{4}\b|\b(?:UT|UTC|GMT|Z|[ECMP][SD]T)\b")
_DATE_TAIL = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),?\s+)?\d{1,2}\s+[A-Za-z]{3}\s+\d{2,4}\s+\d{1,2}:\d{2}(?::\d{2})?"
    r"(?:\s*(?:[+-]\d{4}|[A-Z]{1,5}))?(?:\s*\([^)]*\))?\s*$"
)
_RETRIEVAL = re.compile(r"\bwith\s+(?:POP3?|IMAP4?|E?TRN)\b|\bfetchmail\b", re.I)
_NOT_A_NAME = {"unknown", "may", "localhost"}


def _address(text: str) -> IPAddress | None:
    text = text.split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _clauses(text: str) -> dict[str, str]:
    """The top-level clauses (from, by, ...) of a Received value; comments stay inside their clause."""
    depth, marks = 0, []
    for m in _KEYWORD.finditer(text):
        tok = m.group(0)
        if tok == "(":
            depth += 1
        elif tok == ")":
            depth = max(0, depth - 1)
        elif depth == 0:
            marks.append((m.group(1).lower(), m.start(), m.end()))
    out: dict[str, str] = {}
    for i, (kw, _start, end) in enumerate(marks):
        stop = marks[i + 1][1] if i + 1 < len(marks) else len(text)
        out.setdefault(kw, text[end:stop].strip())
    return out


def parse_received(value: str, default_zone: Any = None) -> Received:
    """Parse one Received header value (folded or not). Never raises."""
    text = " ".join(str(value).split())
    semi = text.rfind(";")
    head, date_text = (text[:semi], text[semi + 1:].strip()) if semi >= 0 else (text, "")
    time, zone = _header_time(date_text) if date_text else (None, "none")
    if time is None:  # some MTAs (EarthLink) forget the ';'
        m = _DATE_TAIL.search(text)
        if m:
            time, zone = _header_time(m.group(0))
            if time is not None and semi < 0:
                head = text[: m.start()]
    if time is not None and zone == "none":
        time, zone = _naive(time, default_zone)
    clauses = _clauses(head)
    by = clauses.get("by", "").split(" ", 1)[0].strip("()[];,") or None
    frm = clauses.get("from")
    common = dict(text=text, by=by, time=time, zone=zone, retrieval=bool(_RETRIEVAL.search(head)),
                  microsoft="microsoft smtp" in head.lower())
    if frm is None:
        return Received(**common)
    helo = None
    m = _HELO.search(frm)
    if m:
        helo = m.group(1).strip("[]")
        frm_seen = frm[: m.start()] + frm[m.end():]
    else:
        frm_seen = frm
    ip, from_helo, in_parens = None, False, False
    for m in _BRACKET.finditer(frm_seen):
        ip = _address(m.group(1))
        if ip is not None:
            before = frm_seen[: m.start()]
            in_parens = before.count("(") > before.count(")")
            break
    if ip is None:
        for m in _BARE.finditer(frm_seen):
            ip = _address(m.group(0))
            if ip is not None:
                break
    if ip is None and helo:
        ip, from_helo = _address(helo), True
    # Which name did the receiving MTA verify? Sendmail/Postfix: "helo (rdns [addr])";
    # Exim: "rdns [addr]" or "rdns ([addr] helo=x)"; qmail: "rdns (HELO x) (addr)".
    name = None
    first = "" if frm_seen.startswith(("[", "(")) else frm_seen.split(" ", 1)[0]
    if in_parens and "helo=" not in frm.lower():
        m = _NAMED_BRACKET.search(frm_seen)
        if m and "(" in frm_seen[: m.start()]:
            name = m.group(1)
    else:
        name = first
    if name and (name.lower() in _NOT_A_NAME or _address(name) is not None):
        name = None
    claimed = first if first and first.lower() not in _NOT_A_NAME and _address(first) is None else None
    return Received(ip=ip, name=name, helo=helo, from_helo=from_helo, claimed=claimed, **common)


def _header_time(text: str) -> tuple[datetime | None, str]:
    dt, _ = parse_date(text)
    if dt is None:
        return None, "none"
    return dt, ("explicit" if _ZONE_IN_DATE.search(text) else "none")


def _naive(dt: datetime, default_zone: Any) -> tuple[datetime, str]:
    """A date without offset: parse_date read it as UTC; apply the configured zone if any."""
    if default_zone:
        from ..timestamps import zone_offset

        offset = zone_offset(str(default_zone))
        if offset is not None:
            return (dt.replace(tzinfo=None) - offset).replace(tzinfo=timezone.utc), "stated"
    return dt, "assumed-utc"


# --- the chain ----------------------------------------------------------------

_INTERNAL_NETS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"))
_INTERNAL_TLDS = {"local", "lan", "internal", "intranet", "corp", "localdomain", "home", "private"}
_SLD = {"co", "com", "net", "org", "ac", "gov", "edu", "ne", "or", "go", "gob", "ltd", "plc", "nic", "mil"}


def _never_source(ip: IPAddress) -> bool:
    return ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast


def _internal(ip: IPAddress) -> bool:
    return any(ip in net for net in _INTERNAL_NETS if net.version == ip.version)


def domain_of(host: str | None) -> str | None:
    """Registered domain of a host name (approximate public-suffix rule); None for addresses."""
    if not host:
        return None
    host = host.strip(".[]").lower()
    if not host or _address(host) is not None:
        return None
    labels = host.split(".")
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SLD:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def _internal_host(host: str | None) -> bool:
    """An internal receiving host: a single-label or intranet name, or a private address literal."""
    if not host:
        return False
    h = host.strip("[]").lower()
    ip = _address(h)
    if ip is not None:
        return _internal(ip) or _never_source(ip)
    return "." not in h or h.rsplit(".", 1)[-1] in _INTERNAL_TLDS


class _Trust:
    """What the ``trusted`` option says is the reporter's (networks and domains)."""

    def __init__(self, trusted: Iterable[str] = ()) -> None:
        self.nets, self.domains = [], set()
        for t in trusted or ():
            t = str(t).strip()
            try:
                self.nets.append(ipaddress.ip_network(t, strict=False))
            except ValueError:
                self.domains.add(t.lower().lstrip("."))

    def has_ip(self, ip: IPAddress) -> bool:
        return any(ip in n for n in self.nets if n.version == ip.version)

    def has_name(self, name: str | None) -> bool:
        if not name or not self.domains:
            return False
        n = name.lower().rstrip(".")
        return any(n == d or n.endswith("." + d) for d in self.domains)


def entry_hop(headers: Sequence[str | Received], trusted: Iterable[str] | _Trust = (),
              default_zone: Any = None) -> Hop | None:
    """The hop where the message entered the reporter's systems (see the module docstring)."""
    trust = trusted if isinstance(trusted, _Trust) else _Trust(trusted)
    hops = [h if isinstance(h, Received) else parse_received(h, default_zone) for h in headers]
    domains: set[str] = set()
    last: tuple[int, Received] | None = None
    for i, hop in enumerate(hops):
        d = domain_of(hop.by)
        if d:
            domains.add(d)
        if hop.ip is None or _never_source(hop.ip):
            continue
        if hop.by is None and hop.time is None:  # truncated header: neither receiver nor date
            last = last or (i, hop)
            continue
        last = (i, hop)
        if trust.has_ip(hop.ip) or trust.has_name(hop.name) or hop.retrieval:
            continue
        if hop.name and not hop.microsoft and domain_of(hop.name) in domains and not hop.from_helo:
            continue
        if _continues(hops, i, hop.name or hop.claimed, domains):
            continue
        if _internal(hop.ip) and _reenters(hops, i, domains, trust):
            continue
        return _hop(i, hop)
    return _hop(*last) if last else None


def _continues(hops: Sequence[Received], i: int, name: str | None, domains: set[str]) -> bool:
    """An unverified client name of the reporter's that the next lower header confirms as its receiver.

    Big providers write internal hops as ``from helo ([addr])`` (Comcast, Cox,
    RoadRunner); such a hop is the reporter's when its claimed name is the
    receiving host of the header below, or both are in the reporter's domains.
    """
    if not name:
        return False
    below = next((h for h in hops[i + 1:] if h.by), None)
    if below is None or below.by is None:
        return False
    n, b = name.lower().rstrip("."), below.by.lower().rstrip(".")
    ours = domain_of(n) in domains or _internal_host(n)
    if n == b:
        return ours
    return domain_of(n) in domains and (domain_of(b) in domains or _internal_host(b))


def _reenters(hops: Sequence[Received], i: int, domains: set[str], trust: _Trust) -> bool:
    """Below hop i, is there a public client received by one of the reporter's hosts?"""
    seen = set(domains)
    for hop in hops[i + 1:]:
        if hop.by is None and hop.ip is None:  # "(qmail 123 invoked from network)"
            continue
        by_ok = domain_of(hop.by) in seen or _internal_host(hop.by) or trust.has_name(hop.by)
        if hop.ip is not None and not _never_source(hop.ip) and not _internal(hop.ip):
            return by_ok
        if not by_ok:
            return False
        d = domain_of(hop.by)
        if d:
            seen.add(d)
    return False


def _hop(i: int, r: Received) -> Hop:
    assert r.ip is not None
    return Hop(ip=r.ip, time=r.time, zone=r.zone if r.time else "none", evidence="Received: " + r.text,
               name=r.name, by=r.by, index=i)


def source_of(msg: _StdMessage, trusted: Iterable[str] = (), default_zone: Any = None) -> Hop | None:
    """Entry hop of a message's own Received chain (for an *attached* message, not the report)."""
    return entry_hop(header_all(msg, "Received"), trusted, default_zone)


# --- chains pasted into text ----------------------------------------------------

_PASTED = re.compile(r"^Received:[ \t]*(.*(?:\n[ \t]+\S.*)*)", re.I | re.M)
_BLANK = re.compile(r"\n[ \t]*\n")


def chains_in_text(text: str) -> Iterator[list[str]]:
    """Received chains pasted into text: one per paragraph that holds ``Received:`` lines."""
    if "eceived:" not in text and "ECEIVED:" not in text:
        return
    for para in _BLANK.split(text):
        chain = [m.group(1) for m in _PASTED.finditer(para)]
        if chain:
            yield chain


# --- the parser ---------------------------------------------------------------


class ReceivedParser(Parser):
    """Spam source from the Received chain of each message the report carries.

    Options: ``trusted`` (CIDRs and domains of the reporter's relays, rarely
    needed), ``zone`` (default zone for a header date without offset).
    """

    name = "received"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.trust = _Trust(self.options.get("trusted") or ())
        self.zone = self.options.get("zone")

    def parse(self, message: Any) -> Any:
        named = _names_source(message)
        if named:
            return self.not_applicable(f"{named} names the source itself; its carried Received chain is "
                                       "not second-guessed")
        chains = carried_chains(message)
        if not chains:
            return self.not_applicable("no forwarded message with Received headers")
        incidents: list[Incident] = []
        seen: set[tuple] = set()
        for chain in chains:
            hop = entry_hop(chain, self.trust, self.zone)
            if hop is None:
                continue
            key = (hop.ip, hop.time)
            if key in seen:
                continue
            seen.add(key)
            incidents.append(Incident(ip=hop.ip, type="spam", time=hop.time, parser=self.name, zone=hop.zone,
                                      evidence=hop.evidence, extra={"hop": hop.index}))
        n = len(chains)
        if not incidents:
            return self.found([], f"{n} Received chain{'s' if n != 1 else ''} without a client address")
        return self.found(incidents, f"entry hop of {n} Received chain{'s' if n != 1 else ''}")


def carried_chains(message: Any) -> list[list[str]]:
    """Received chains of the messages a normalized report carries (never its own transport)."""
    chains: list[list[str]] = []
    wrappers = _wrappers(message)
    for inner in message.embedded:
        if id(inner) in wrappers:
            continue
        chain = header_all(inner, "Received")
        if chain:
            chains.append(chain)
    for block in message.blocks:
        if block.kind in ("body", "forward", "html"):
            chains.extend(chains_in_text(block.text))
    return chains


def _names_source(message: Any) -> str | None:
    """Does the report state the source itself (ARF Source-IP, X-ARF, SpamCop "Email from")?

    Then that statement is authoritative: the reporter (or SpamCop, with the
    reporter's configured mail hosts) knows its relays better than a heuristic
    walk, and a second, differently-timed incident for the same spam would only
    be noise. The ``arf`` parser falls back to :func:`source_of` itself when an
    ARF report lacks Source-IP.
    """
    for n, part in enumerate(message.email.walk()):
        if n > 500:
            break
        try:
            if part.get_content_type() == "message/feedback-report":
                return "an ARF report"
        except Exception:  # a hostile Content-Type header
            continue
    for msg in [message.email, *message.embedded]:
        if (header_all(msg, "X-ARF") or [""])[0].strip().lower() == "yes":
            return "an X-ARF report"
    from .spamcop import names_source as spamcop_names_source

    if spamcop_names_source(message):
        return "a SpamCop report ('Email from')"
    return None


def _wrappers(message: Any) -> set[int]:
    """Embedded messages that carry another message (a forwarded report): their chain is transport."""
    out: set[int] = set()
    depth_of: dict[int, int] = {}
    for b in message.blocks:
        if b.headers is None:
            continue
        if b.kind == "headers":
            depth_of.setdefault(id(b.headers), b.depth)
        elif b.kind in ("body", "forward", "html") and next(chains_in_text(b.text), None):
            out.add(id(b.headers))
    embedded = message.embedded
    for i, inner in enumerate(embedded[:-1]):
        d, nxt = depth_of.get(id(inner)), depth_of.get(id(embedded[i + 1]))
        if d is not None and nxt is not None and nxt > d:
            out.add(id(inner))
    return out
