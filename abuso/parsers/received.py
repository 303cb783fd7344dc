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
* its address is private (RFC 1918, CGN, ULA) *and* it handed the message to
  an intranet host (``store155a.mail.ord1a``, ``compute6.internal``) or the
  next real hop below was received by a host of the reporter's (a domain of a
  receiving host above it, content filters included, or ``trusted``). Internal
  10.x relays inside the reporter are skipped that way, while a private address
  with nothing of the reporter's below it -- the innermost hop, or a hop under
  which the spammer forged ``from [242.21.16.157] by 207.44.214.92`` -- is the
  source. This also gives the right answer for corpora that use 10.x as
  stand-ins for public addresses (received-01: ``from [10.0.0.1] (helo=ibm.com)
  by relay.victim.net``, the innermost hop).

A copy that a mailbox re-sent (a feedback loop, a ``.forward`` script) carries
a local re-submission in mid-chain (``by mstore010 (Postfix, from userid
3118234)``); when a hop below was received by that same mailbox host, the walk
starts there. On the 33 feedback-loop samples of the AbuseIO corpus that state
a Source-IP, :func:`source_of` finds that address in 29.

When every hop is the reporter's, the innermost client is the source (the mail
was written inside the reporter's network). When the entry hop recorded no
address at all, there is no answer: the headers below it were written by the
sender and prove nothing.

The parser stays out of reports that state the source themselves (a parser
with declared ``authority`` that ran before it says so in its verdict: ARF
Source-IP, X-ARF, SpamCop "Email from"; the ``arf`` parser falls back to
:func:`source_of` itself) and out of bounces (the carried
message is one we sent). A carried message that itself carries one (a
forwarded complaint with the spam attached) is a wrapper: only the innermost
message's chain is evidence. Exchange Online's internal hops (public IPv6
addresses, one machine named in several Microsoft domains) are followed by the
machine's name; when a chain still stops inside a provider's network, name its
domains in ``trusted``.

One header is read by :mod:`abuso.parsers.received_line` (every MTA dialect).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from datetime import datetime
from email.message import Message as _StdMessage

from ..errors import INPUT_ERRORS
from ..lazy import lazy_compile
from ..model import Incident, IPAddress, Verdict
from ..normalize import Message, header_all
from ..options import Option
from ..zones import Zones
from .base import TIME_OPTIONS, Parser, stated_by_authority
from .received_line import Received, _address, parse_received

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any, Iterable, Iterator, Mapping, Sequence

__all__ = ["Hop", "Received", "parse_received", "entry_hop", "source_of", "chains_in_text", "carried_chains",
           "ReceivedParser"]

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


#: RFC 5321 loop detection rejects mail with ~100 hops; more headers than that are stuffing.
MAX_HOPS = 100
#: At most this many carried messages / pasted chains are read per report.
MAX_CHAINS = 50
_DOMAIN = lazy_compile(r"^\.?(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9-]{1,63}$")


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
    hops = [h if isinstance(h, Received) else parse_received(h, default_zone) for h in headers[:MAX_HOPS]]
    domains: set[str] = set()
    last: tuple[int, Received] | None = None
    for i in range(max(0, _resubmitted(hops)), len(hops)):
        hop = hops[i]
        d = domain_of(hop.by)
        if d:
            domains.add(d)
        if hop.ip is None:
            if hop.has_from and hop.claimed and not _ipless_relay(hops, i, hop, domains, trust):
                return None  # the entry hop recorded no address: nothing below it was verified by anyone
            continue
        if _never_source(hop.ip):
            continue
        if hop.by is None and hop.time is None:  # truncated header: neither receiver nor date
            last = last or (i, hop)
            continue
        last = (i, hop)
        if trust.has_ip(hop.ip) or trust.has_name(hop.name) or hop.retrieval:
            continue
        if hop.name and not hop.microsoft and domain_of(hop.name) in domains and not hop.from_helo:
            continue
        if _continues(hops, i, hop.name or hop.claimed, domains, hop.microsoft):
            continue
        if _internal(hop.ip) and _relayed_below(hops, i, domains, trust):
            continue
        return _hop(i, hop)
    return _hop(*last) if last else None


_SERVER_LABEL = lazy_compile(r"^(?=.*\d)[a-z0-9-]{8,}$")


def _same_machine(a: str, b: str) -> bool:
    """Two names of one server: the same first label, long and numbered like a server name."""
    la, lb = a.split(".", 1)[0], b.split(".", 1)[0]
    return la == lb and bool(_SERVER_LABEL.match(la))


def _ipless_relay(hops: Sequence[Received], i: int, hop: Received, domains: set[str], trust: _Trust) -> bool:
    """A hop without an address ("from mailstore by imap"): walk on only if it is the reporter's own."""
    return (hop.retrieval or _internal_host(hop.claimed) or _internal_host(hop.by) or trust.has_name(hop.claimed)
            or domain_of(hop.claimed) in domains or _continues(hops, i, hop.claimed, domains))


def _continues(hops: Sequence[Received], i: int, name: str | None, domains: set[str], microsoft: bool = False) -> bool:
    """An unverified client name of the reporter's that the next lower header confirms as its receiver.

    Big providers write internal hops as ``from helo ([addr])`` (Comcast, Cox,
    RoadRunner); such a hop is the reporter's when its claimed name is the
    receiving host of the header below, or both are in the reporter's domains.
    Exchange Online names one machine under several domains
    (``DU2PR04CA0123.eurprd04.prod.outlook.com`` hands over what
    ``DU2PR04CA0123.outlook.office365.com`` received): between Microsoft SMTP
    hops a shared, server-like first label is the same machine.
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
    if microsoft and _same_machine(n, b):
        return True
    return domain_of(n) in domains and (domain_of(b) in domains or _internal_host(b))


def _relayed_below(hops: Sequence[Received], i: int, domains: set[str], trust: _Trust) -> bool:
    """Is hop i's private client one of the reporter's relays?

    It is when it handed the message to an intranet host (``store155a.mail.ord1a``,
    ``compute6.internal``, a private address literal), or when the next real hop
    below was received by a host of the reporter's: one of its domains learnt on
    the way down (content filters on the same machine included) or a ``trusted``
    one. The client's own names prove nothing: below the entry the sender
    writes the headers, ``by server.domain4.tld`` included.
    """
    if _intranet_host(hops[i].by):
        return True
    seen = set(domains)
    for lower in hops[i + 1:]:
        if lower.by is None:  # "(qmail 123 invoked from network)", truncated headers
            continue
        if lower.ip is not None and _never_source(lower.ip):  # a content filter on the same machine
            d = domain_of(lower.by)
            if d:
                seen.add(d)
            continue
        if lower.ip is None and not lower.has_from:  # "by host (from userid 48)": written on the client
            return False
        return domain_of(lower.by) in seen or trust.has_name(lower.by)
    return False


def _intranet_host(host: str | None) -> bool:
    """A name or literal only an intranet uses: .internal/.local/..., a TLD with digits, a private address."""
    if not host:
        return False
    h = host.strip("[]").lower().rstrip(".")
    ip = _address(h)
    if ip is not None:
        return _internal(ip)
    tld = h.rsplit(".", 1)[-1]
    return "." in h and (tld in _INTERNAL_TLDS or not tld.isalpha())


_LOCAL_SUBMIT = lazy_compile(r"\bfrom userid\b|\binvoked by uid\b|\bwith local\b|/Submit\)", re.I)


def _resubmitted(hops: Sequence[Received]) -> int:
    """Index of the deepest local re-submission that has the original chain below it, else -1.

    A mailbox that re-sends what it received (a feedback loop's copy, a
    ``.forward`` script) writes ``by mstore010.roc2.bluetie.com (Postfix, from
    userid 3118234)`` between the re-sending hops above and the original hops
    below. The walk then starts there: the hops above only moved the copy. Only
    a host that also received the message below counts (the mailbox itself).
    """
    for j in range(len(hops) - 2, 0, -1):
        h = hops[j]
        if h.ip is not None or h.by is None or not _LOCAL_SUBMIT.search(h.text):
            continue
        below = hops[j + 1:]
        if not any(x.ip is not None and not _never_source(x.ip) for x in below):
            continue
        host, d = h.by.lower(), domain_of(h.by)
        if any(x.by and (x.by.lower() == host or (d and domain_of(x.by) == d)) for x in below):
            return j
    return -1


def _hop(i: int, r: Received) -> Hop:
    assert r.ip is not None
    return Hop(ip=r.ip, time=r.time, zone=r.zone if r.time else "none", evidence="Received: " + r.text,
               name=r.name, by=r.by, index=i)


def source_of(msg: _StdMessage, trusted: Iterable[str] = (), default_zone: Any = None) -> Hop | None:
    """Entry hop of a message's own Received chain (for an *attached* message, not the report)."""
    return entry_hop(header_all(msg, "Received"), trusted, default_zone)


# --- chains pasted into text ----------------------------------------------------

_RECEIVED_LINE = lazy_compile(r"Received:[ \t]*", re.I)
_OTHER_HEADER = lazy_compile(r"[A-Za-z][A-Za-z0-9-]{0,40}:")


def chains_in_text(text: str) -> Iterator[list[str]]:
    """Received chains pasted into text.

    Blank lines and other header lines do not end a chain (mail clients double-space
    pastes); a line of prose does: the next ``Received:`` belongs to another message.
    """
    if "eceived:" not in text and "ECEIVED:" not in text:
        return
    chain: list[str] = []
    prose = False
    for line in text.split("\n"):
        m = _RECEIVED_LINE.match(line)
        if m:
            if prose and chain:
                yield chain
                chain = []
            chain.append(line[m.end():].strip())
            prose = False
        elif not chain or not line.strip():
            continue
        elif line[0] in " \t" and not prose:
            chain[-1] += " " + line.strip()
        elif not _OTHER_HEADER.match(line):
            prose = True
    if chain:
        yield chain


# --- the parser ---------------------------------------------------------------


def _check_trusted(value: str) -> None:
    """A typo in ``trusted`` would silently blame the reporter's own relays: refuse it at load."""
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        if not _DOMAIN.match(value.strip()):
            raise ValueError(f"{value!r} is neither a network nor a domain")


class ReceivedParser(Parser):
    """Spam source from the Received chain of each message the report carries.

    Options: ``trusted`` (CIDRs and domains of the reporter's relays, rarely
    needed), ``zone`` (default zone for a header date without offset).
    """

    name = "received"
    priority = 30

    OPTIONS = (
        Option("trusted", "strings", each=_check_trusted,
               help="networks (192.0.2.0/24) and domains (example.net) of the reporter's relays"),
    ) + TIME_OPTIONS

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.trust = _Trust(self.options.get("trusted") or ())
        self.date_fallback = bool(self.options.get("date_fallback"))

    def parse(self, message: Message) -> Verdict:
        why_not = _names_source(message)
        if why_not:
            return self.not_applicable(why_not)
        chains = carried_chains(message)
        if not chains:
            return self.not_applicable("no forwarded message with Received headers")
        incidents: list[Incident] = []
        seen: set[tuple] = set()
        zones = Zones.of(message, self.options)
        for chain in chains[:MAX_CHAINS]:
            hop = entry_hop(chain, self.trust, zones)
            if hop is None:
                continue
            if hop.time is None and self.date_fallback and message.date is not None:
                hop = replace(hop, time=message.date, zone="date-header")
            key = (hop.ip, hop.time)
            if key in seen:
                continue
            seen.add(key)
            incidents.append(Incident(ip=hop.ip, type="spam", time=hop.time, parser=self.name, zone=hop.zone,
                                      evidence=hop.evidence, extra={"hop": hop.index}))
        n = len(chains)
        if not incidents:
            return self.found([], f"{n} Received chain{'s' if n != 1 else ''}, but no entry hop with a client "
                                  "address (local delivery only, or the entry hop recorded none)")
        return self.found(incidents, f"entry hop of {n} Received chain{'s' if n != 1 else ''}")


def carried_chains(message: Message) -> list[list[str]]:
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


_NOT_SECOND_GUESSED = "{} names the source itself; its carried Received chain is not second-guessed"


def _names_source(message: Message) -> str | None:
    """Does the report state the source itself, or is it a bounce? Then this parser stays out.

    A parser that declares ``authority`` and ran before this one (ARF Source-IP,
    X-ARF, SpamCop "Email from": see parsers/base.py) marks its verdict when the
    report states its source in that format. That statement is authoritative:
    the reporter (or SpamCop, with the reporter's configured mail hosts) knows
    its relays better than a heuristic walk, and a second, differently-timed
    incident for the same spam would only be noise. The ``arf`` parser falls
    back to :func:`source_of` itself when an ARF report lacks Source-IP.

    A bounce (delivery status notification) carries a message *we* sent,
    returned; its chain would blame our own outgoing relay.
    """
    try:
        top = message.email.get_content_type()
        report_type = str(message.email.get_param("report-type") or "").lower()
    except INPUT_ERRORS:  # a hostile Content-Type header
        top, report_type = "", ""
    if top == "multipart/report" and report_type == "delivery-status":
        return "a bounce (delivery status notification): the carried message is one we sent, not spam"
    authority = stated_by_authority(message)
    if authority is not None:
        return _NOT_SECOND_GUESSED.format(authority.source_stated)
    return None


def _wrappers(message: Message) -> set[int]:
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
