"""The data that flows through the pipeline: incidents, verdicts and reports.

Kept free of heavy imports: every piped message pays for what this module imports.
"""

from __future__ import annotations

import ipaddress
import operator
from dataclasses import dataclass, field, replace
from datetime import datetime

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any, Iterable, Mapping

    from .normalize import Message

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_key(ip: IPAddress) -> Any:
    """A dict key equal for equal addresses, unequal otherwise, hashed in C: an ``ipaddress`` object
    hashes in Python (``hash(hex(int(self)))``), which hot loops over thousands of incidents feel.
    IPv4: its int; IPv6: (int, scope id), never equal to an int, as an IPv6 address never equals an IPv4 one.
    """
    return ip._ip if ip._version == 4 else (ip._ip, ip._scope_id)  # type: ignore[union-attr]


#: Where an incident's UTC offset came from (design.md, incident schema); "default"
#: is the config's ``defaults.zone``, used when the report has no Date offset.
ZONES = ("explicit", "stated", "date-header", "default", "assumed-utc", "none")


@dataclass(frozen=True)
class Incident:
    """One (source ip, type, time) a report accuses our network of.

    Frozen so that filters and processors cannot change an incident behind
    another stage's back; processors that enrich one use :meth:`with_extra`.
    """

    ip: IPAddress
    type: str
    time: datetime | None
    parser: str
    zone: str = "none"
    port: int | None = None
    evidence: str = ""
    #: Processor results (customer, user, ...) and parser details (``derived``).
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            object.__setattr__(self, "ip", ipaddress.ip_address(self.ip))
        if self.time is not None and self.time.tzinfo is None:
            raise ValueError("Incident.time must be timezone-aware (UTC)")
        if self.zone not in ZONES:
            raise ValueError(f"unknown zone {self.zone!r}")

    @property
    def taxonomy(self) -> str:
        return _taxonomy_of()(self.type)

    @property
    def key(self) -> tuple:
        """Identity used to merge duplicates found by several parsers."""
        return (self.ip, self.type, self.time)

    def with_extra(self, **values: Any) -> Incident:
        merged = dict(self.extra)
        merged.update(values)
        # dataclasses.replace without re-running __init__/__post_init__ on fields already checked
        # (a processor enriches every incident of a report: 1,000 per long log).
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__["extra"] = merged
        return new

    def to_dict(self) -> dict[str, Any]:
        return _incident_dict(self, str(self.ip), self.taxonomy)


@dataclass
class Verdict:
    """What one parser made of a report: did its format apply, what it found, or why not."""

    parser: str
    applied: bool
    reason: str
    incidents: list[Incident] = field(default_factory=list)
    #: Set by a parser that declares ``authority`` (parsers/base.py) when the report states its
    #: source itself in that parser's format ("an ARF report"); parsers later in the chain that
    #: would only guess the source (``received``) leave it to that statement.
    source_stated: str = ""
    #: The report's own words that only restate what this parser found (an ARF report's
    #: human-readable part): free-text incidents read there add nothing (merge_duplicates).
    restated: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.incidents:
            n = len(self.incidents)
            return f"{n} incident{'s' if n != 1 else ''}" + (f" ({self.reason})" if self.reason else "")
        return self.reason


@dataclass
class Dropped:
    """An incident a filter removed, with the filter's name and its reason."""

    incident: Incident
    filter: str
    reason: str


@dataclass
class Report:
    """One message that reached the abuse mailbox, and everything abuso made of it."""

    raw: bytes
    origin: str = "-"
    message_id: str | None = None
    subject: str | None = None
    sender: str | None = None
    date: datetime | None = None
    incidents: list[Incident] = field(default_factory=list)
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    dropped: list[Dropped] = field(default_factory=list)
    #: Per-processor notes for explain/JSON (e.g. store path, mailer action).
    notes: dict[str, Any] = field(default_factory=dict)
    #: The normalized message (abuso.normalize.Message); None before normalizing.
    message: Message | None = None
    error: str | None = None

    @property
    def valid(self) -> bool:
        """A valid report yields at least one incident after the filters."""
        return bool(self.incidents)

    @property
    def filtered(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for d in self.dropped:
            counts[d.filter] = counts.get(d.filter, 0) + 1
        return counts

    def incident_dicts(self) -> list[dict[str, Any]]:
        """Each incident's :meth:`Incident.to_dict`, built once while the incidents stay the same objects:
        the store's JSON file and the JSON output share them (a long log has thousands). Read-only:
        callers that change what they get use :meth:`to_dict`, which copies them."""
        incidents = self.incidents
        cached = self.__dict__.get("_incident_dicts")
        if (cached is not None and len(cached[0]) == len(incidents)
                and all(map(operator.is_, cached[0], incidents))):
            return cached[1]
        names: dict[int, str] = {}       # an address's text by object: a log's incidents share a few
        taxonomy = _taxonomy_of()
        out = []
        for inc in incidents:
            ip = inc.ip
            text = names.get(id(ip))
            if text is None:
                text = names[id(ip)] = str(ip)
            out.append(_incident_dict(inc, text, taxonomy(inc.type)))
        self.__dict__["_incident_dicts"] = (tuple(incidents), out)
        return out

    def to_dict(self) -> dict[str, Any]:
        return self._as_dict([dict(i) for i in self.incident_dicts()])

    def _as_dict(self, incidents: Any) -> dict[str, Any]:
        """:meth:`to_dict` with ``incidents`` as its incidents (the JSON output puts their text there)."""
        d: dict[str, Any] = {
            "file": self.origin,
            "message_id": self.message_id,
            "valid": self.valid,
            "incidents": incidents,
            "verdicts": {name: str(v) for name, v in self.verdicts.items()},
            "filtered": self.filtered,
        }
        if self.error:
            d["error"] = self.error
        problems = getattr(self.message, "problems", None)
        if problems:  # what the normalizer cut or could not read (caps on hostile input, bad charsets)
            d["problems"] = list(problems)
        for k, v in self.notes.items():
            if k != "arrival":
                d.setdefault(k, v)
        return d


def _incident_dict(inc: Incident, ip: str, taxonomy: str) -> dict[str, Any]:
    """What :meth:`Incident.to_dict` gives, with the address's text and the taxonomy given."""
    time = inc.time
    d: dict[str, Any] = {
        "ip": ip,
        "type": inc.type,
        "taxonomy": taxonomy,
        "time": time.isoformat() if time else None,
        "zone": inc.zone,
        "parser": inc.parser,
    }
    if inc.port is not None:
        d["port"] = inc.port
    d["evidence"] = inc.evidence
    d.update(inc.extra)
    return d


_TAXONOMY_OF: Any = None


def _taxonomy_of() -> Any:
    """abuso.taxonomy.taxonomy_of, imported on first use (this module stays light to import)."""
    global _TAXONOMY_OF
    if _TAXONOMY_OF is None:
        from .taxonomy import taxonomy_of

        _TAXONOMY_OF = taxonomy_of
    return _TAXONOMY_OF


def merge_duplicates(incidents: Iterable[Incident], fallback: Iterable[str] = (),
                     restated: Iterable[str] = ()) -> list[Incident]:
    """Merge incidents with the same (ip, type, time); the first parser's evidence wins.

    Order is kept (first seen first) so that output is stable. An ``undetermined``
    incident with the same (ip, time) as a typed one is the same event told by a
    parser that could not name it (free text beside an ARF report): it merges
    into the typed one. Incidents of ``fallback`` parsers (free text) about an
    address a structured parser also reported yield to that parser, which knows
    its format's type and time better; they stand where no other parser looked.
    They enrich it first: a structured incident without a time takes the
    earliest time the free text gives for that address (``extra.time_from``
    names the parser), and its port if it has none. Free-text incidents read
    in ``restated`` texts (a structured report's own human-readable part, see
    :attr:`Verdict.restated`) are that report told again: they vanish whatever
    address they name (the receiving MX, a relay, a sanitised copy).
    """
    weak = set(fallback)
    # Addresses by address_key throughout (an ipaddress object hashes in Python): a long log gives
    # tens of thousands of incidents.
    strong: dict[Any, list[Incident]] = {}
    incidents = list(incidents)
    if weak:
        incidents = _enriched(incidents, weak)
        texts = [" ".join(t.split()) for t in restated if t and t.strip()]
        if texts:  # about a reported address they merge below (the parser label keeps "+log")
            reported = {address_key(i.ip) for i in incidents if i.parser not in weak}
            incidents = [i for i in incidents if i.parser not in weak or address_key(i.ip) in reported
                         or not _restates(i.evidence, texts)]
        for inc in incidents:
            if inc.parser not in weak:
                strong.setdefault(address_key(inc.ip), []).append(inc)
    seen: dict[tuple, Incident] = {}
    for inc in incidents:
        ip = inc.ip
        at = ip._ip if ip._version == 4 else (ip._ip, ip._scope_id)  # type: ignore[union-attr]  # address_key
        key = (at, inc.type, inc.time)  # Incident.key, the address by its key
        if strong and inc.parser in weak and at in strong and key not in seen:
            same = next(((at, s.type, s.time) for s in strong[at] if s.time == inc.time), None)
            if same is not None and same in seen and inc.parser not in seen[same].parser.split("+"):
                seen[same] = replace(seen[same], parser=f"{seen[same].parser}+{inc.parser}")
            continue
        first = seen.get(key)
        if first is None:
            seen[key] = inc
        elif inc.parser not in first.parser.split("+"):
            seen[key] = replace(first, parser=f"{first.parser}+{inc.parser}")
    typed: dict[tuple, tuple] = {}
    for key, inc in seen.items():
        if inc.type != "undetermined":
            typed.setdefault((key[0], key[2]), key)
    for key in [k for k, inc in seen.items() if inc.type == "undetermined" and (k[0], k[2]) in typed]:
        vague, into = seen.pop(key), typed[(key[0], key[2])]
        if vague.parser not in seen[into].parser.split("+"):
            seen[into] = replace(seen[into], parser=f"{seen[into].parser}+{vague.parser}")
    return list(seen.values())


def _enriched(incidents: list[Incident], weak: set[str]) -> list[Incident]:
    """Structured incidents without a time take the earliest time free text gives for their address."""
    if not any(inc.time is None and inc.parser not in weak for inc in incidents):
        return incidents  # nothing to enrich
    timed: dict = {}
    for inc in incidents:
        if inc.parser in weak and inc.time is not None:
            key = address_key(inc.ip)
            first = timed.get(key)
            if first is None or inc.time < first.time:
                timed[key] = inc
    if not timed:
        return incidents
    out = []
    for inc in incidents:
        donor = timed.get(address_key(inc.ip)) if inc.time is None and inc.parser not in weak else None
        if donor is not None:
            inc = replace(inc, time=donor.time, zone=donor.zone, port=inc.port if inc.port is not None else donor.port,
                          extra={**inc.extra, "time_from": donor.parser})
        out.append(inc)
    return out


def _restates(evidence: str, texts: list[str]) -> bool:
    """Is every line of a free-text incident's evidence inside one of these texts?

    The log parser joins a stamp's line and the address's line with `` | `` and
    cuts long ones with ``…``: each piece is looked up on its own.
    """
    pieces = (p for ln in evidence.splitlines() for p in ln.split(" | "))
    lines = [" ".join(p.rstrip("…").split()) for p in pieces if p.strip(" …")]
    return bool(lines) and all(any(ln in t for t in texts) for ln in lines)
