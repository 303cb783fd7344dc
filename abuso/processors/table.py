"""``table``: map incidents to the customer or network that held the address, from a text file.

One line per block (``#`` starts a comment at the start of a line or after a blank)::

    192.0.2.0/24      id=ACME;name=ACME Ltd;contact.email=noc@acme.example
    192.0.2.128/25    id=BETA;from=2026-07-01                     # re-assigned from ACME
    192.0.2.128/25    id=ACME;until=2026-06-30
    2001:db8:1::/48   id=GAMMA;contact.email=abuse@gamma.example;contact.phone=+1 555 0100

The longest prefix that was valid at the incident's time wins (``from`` and
``until`` are inclusive days in UTC, or ISO times); a block held by nobody at that
time falls back to its parent block. Dotted keys become nested dicts. The match
is attached as ``incident.extra["customer"]`` (plus ``network``, the matching
block), which explain, JSON output and the store's ``customer`` column use. Each report gets
its own copy of a customer, shared by its incidents in that block (incidents are frozen:
nothing changes it; were a processor to, the table and other reports would not see it).
"""

from __future__ import annotations

import _socket as socket  # not socket.py: its enums cost start-up ~4 ms
import copy
import ipaddress
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from time import monotonic as time_monotonic

from ..errors import ConfigError
from ..lazy import lazy_compile
from ..model import Report, address_key
from ..options import Option
from .base import Processor

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any, Mapping

_KEY = lazy_compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$")
_COMMENT = lazy_compile(r"(?:^|\s)#.*$")
#: Parsed tables by resolved path, with the bytes they were parsed from (one version per file).
_CACHE: dict[str, tuple[bytes, NetworkTable]] = {}
MAX_REASONS = 10


@dataclass(frozen=True)
class Entry:
    """One network of the table and its customer."""

    version: int
    prefix: int  # the network address as an int
    prefixlen: int
    customer: dict[str, Any]
    line: int
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive

    @property
    def network(self) -> str:
        return self.customer["network"]

    def valid_at(self, when: datetime | None) -> bool:
        if when is None:
            return self.start is None and self.end is None
        return (self.start is None or when >= self.start) and (self.end is None or when < self.end)

    def window(self) -> str:
        start = self.start.isoformat() if self.start else "the beginning"
        end = self.end.isoformat() if self.end else "now"
        return f"from {start} until {end}"


class NetworkTable:
    """Longest-prefix match over per-prefix-length dicts of integer prefixes.

    A lookup is at most one dict probe per prefix length in use (a handful in
    practice), whatever the number of lines.
    """

    def __init__(self, entries: list[Entry], name: str = "<table>") -> None:
        self.name = name
        self.entries = entries
        levels: dict[int, dict[int, dict[int, list[Entry]]]] = {4: {}, 6: {}}
        for e in entries:
            key = e.prefix >> ((32 if e.version == 4 else 128) - e.prefixlen)
            levels[e.version].setdefault(e.prefixlen, {}).setdefault(key, []).append(e)
        self._levels = {v: sorted(d.items(), reverse=True) for v, d in levels.items()}

    def __len__(self) -> int:
        return len(self.entries)

    def candidates(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[Entry]:
        """Every entry whose block holds ``ip``, longest prefix first (any time)."""
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        n, bits = int(ip), ip.max_prefixlen
        out: list[Entry] = []
        for plen, table in self._levels[ip.version]:
            out.extend(table.get(n >> (bits - plen), ()))
        return out

    def lookup(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, when: datetime | None) -> Entry | None:
        """The most specific entry holding ``ip`` at ``when`` (None: only undated entries count)."""
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        n, bits = int(ip), ip.max_prefixlen
        for plen, table in self._levels[ip.version]:
            found = table.get(n >> (bits - plen))
            if found:
                for e in found:
                    if e.valid_at(when):
                        return e
        return None

    # -- loading -------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> NetworkTable:
        """Parse a table file once; parsed again only when its content changes.

        Compared by the bytes, not the mtime: two edits within one clock tick (same size, same
        mtime) must not leave the old table in use. (Not by a digest either: hashlib's import
        costs a piped message ~5 ms.)
        """
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError("no such file", str(path))
        except OSError as e:
            raise ConfigError(f"cannot read: {e.strerror or e}", str(path))
        key = str(path.resolve())
        cached = _CACHE.get(key)
        if cached is not None and cached[0] == data:
            return cached[1]
        try:
            text = data.decode("utf-8-sig")  # editors on Windows add a BOM
        except UnicodeDecodeError as e:
            raise ConfigError(f"not UTF-8 text ({e.reason} at byte {e.start})", str(path))
        table = cls.parse(text, str(path))
        _CACHE[key] = (data, table)
        return table

    @classmethod
    def parse(cls, text: str, name: str = "<table>") -> NetworkTable:
        entries: list[Entry] = []
        same_block: dict[tuple[int, int, int], list[Entry]] = {}
        for lineno, line in enumerate(text.splitlines(), 1):
            if "#" in line:
                line = _COMMENT.sub("", line)
            parts = line.split(None, 1)
            if not parts:
                continue

            def err(message: str, lineno: int = lineno) -> ConfigError:
                return ConfigError(message, name, lineno)

            version, prefix, plen, canonical = _block(parts[0], err)
            customer, start, end = _fields(parts[1] if len(parts) > 1 else "", err)
            customer["network"] = canonical
            entry = Entry(version, prefix, plen, customer, lineno, start, end)
            key = (version, prefix, plen)
            others = same_block.get(key)
            if others is None:
                same_block[key] = [entry]
            else:
                for other in others:
                    if _overlap(entry, other):
                        raise err(f"{canonical} is already assigned on line {other.line} for an overlapping time"
                                  f" ({other.window()}); give both lines from=/until= dates that do not overlap")
                others.append(entry)
            entries.append(entry)
        return cls(entries, name)


def _block(block: str, err: Any) -> tuple[int, int, int, str]:
    """(version, network int, prefix length, canonical text) of ``a.b.c.d/n``, ``x::/n`` or a bare address.

    inet_pton is strict (no octal, no short forms) and ten times faster than ipaddress.
    """
    addr, slash, plen_text = block.partition("/")
    family, version, bits = (socket.AF_INET6, 6, 128) if ":" in addr else (socket.AF_INET, 4, 32)
    try:
        packed = socket.inet_pton(family, addr)
        if "%" in addr:
            raise ValueError
    except (OSError, ValueError):
        raise err(f"{block!r} is not a CIDR block (e.g. 192.0.2.0/24 or 2001:db8::/32)")
    if not slash:
        plen = bits
    elif plen_text.isdigit() and plen_text.isascii() and int(plen_text) <= bits:
        plen = int(plen_text)
    else:
        raise err(f"{block!r}: the prefix length must be 0 to {bits}")
    prefix = int.from_bytes(packed, "big")
    host = (1 << (bits - plen)) - 1
    canonical = f"{socket.inet_ntop(family, packed)}/{plen}"
    if prefix & host:
        fixed = socket.inet_ntop(family, (prefix & ~host).to_bytes(bits // 8, "big"))
        raise err(f"{block}: host bits set (did you mean {fixed}/{plen}?)")
    return version, prefix, plen, canonical


def _copy_tree(value: Any) -> Any:
    """A copy of a customer's fields (nested dicts of strings, built by _fields: no shared parts), each
    report its own; what copy.deepcopy gives, at a tenth of its cost (it was 5% of a long log's)."""
    if isinstance(value, dict):  # strings, the leaves, taken as they are without a call each
        return {k: v if type(v) is str else _copy_tree(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    return copy.deepcopy(value)


def _fields(rest: str, err: Any) -> tuple[dict[str, Any], datetime | None, datetime | None]:
    customer: dict[str, Any] = {}
    start = end = None
    for field in rest.split(";"):
        field = field.strip()
        if not field:
            continue
        key, eq, value = field.partition("=")
        key, value = key.strip(), value.strip()
        if not eq:
            raise err(f"{field!r}: expected key=value")
        if not _KEY.match(key):
            raise err(f"{key!r}: a key is letters, digits, '_' or '-', dotted for nesting (contact.email)")
        if key == "from":
            start = _when(value, False, err, key)
            continue
        if key == "until":
            end = _when(value, True, err, key)
            continue
        if key == "network":
            raise err("'network' is set by the table itself (the matching block)")
        node = customer
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise err(f"{key!r}: {'.'.join(parts[:i + 1])!r} already has a value, it cannot also hold keys")
            node = child
        if parts[-1] in node:
            what = "holds keys" if isinstance(node[parts[-1]], dict) else "is given twice"
            raise err(f"{key!r} {what}")
        node[parts[-1]] = value
    if start is not None and end is not None and start >= end:
        raise err("from= must be before until=")
    return customer, start, end


def _when(value: str, end: bool, err: Any, key: str) -> datetime:
    """A day (``until`` includes all of it) or an ISO time; UTC unless it says otherwise."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            t = datetime.combine(day, time(0), timezone.utc)
            return t + timedelta(days=1) if end else t
        t = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError:
        raise err(f"{key}={value!r}: expected a date (2026-06-30) or an ISO time (2026-06-30T12:00:00Z)")
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


_EARLIEST = datetime.min.replace(tzinfo=timezone.utc)
_LATEST = datetime.max.replace(tzinfo=timezone.utc)


def _overlap(a: Entry, b: Entry) -> bool:
    return max(a.start or _EARLIEST, b.start or _EARLIEST) < min(a.end or _LATEST, b.end or _LATEST)


class TableProcessor(Processor):
    name = "table"
    OPTIONS = (Option("file", "file", required=True, help="the path of the network table"),)

    #: How often a long run (--watch, a big batch) looks whether the table file was edited.
    RECHECK = 10.0

    def __init__(self, options: Mapping[str, Any] | None = None, base: Path | None = None) -> None:
        super().__init__(options, base)
        self.check_options(self.options)
        self.file = self.path(self.options["file"])
        self.table = NetworkTable.load(self.file)
        self._checked = time_monotonic()

    def _refresh(self) -> str | None:
        """Pick up an edited table; a broken edit keeps the old table working and says why."""
        now = time_monotonic()
        if now - self._checked < self.RECHECK:
            return None
        self._checked = now
        try:
            self.table = NetworkTable.load(self.file)
        except ConfigError as e:
            return f"kept the table loaded before; the edited file is broken: {e}"
        return None

    def process(self, report: Report) -> None:
        if not report.incidents:
            return
        problem = self._refresh()
        matched = unmatched = 0
        why: list[str] = []
        now = None
        table = self.table
        # Per report: the blocks holding each address (a long log names a few addresses thousands of
        # times), and one copy of each matching customer, shared by that report's incidents.
        blocks: dict[Any, list[Entry]] = {}
        customers: dict[int, dict[str, Any]] = {}
        for i, inc in enumerate(report.incidents):
            when = inc.time or report.date
            if when is None:
                when = now = now or datetime.now(timezone.utc)
            key = address_key(inc.ip)
            held = blocks.get(key)
            if held is None:
                held = blocks[key] = table.candidates(inc.ip)
            # What table.lookup gives: candidates are longest prefix first, as lookup tries them.
            entry = next((e for e in held if e.valid_at(when)), None)
            if entry is None:
                unmatched += 1
                if len(why) < MAX_REASONS:
                    why.append(self._why_not(inc.ip, when))
                continue
            matched += 1
            customer = customers.get(id(entry))
            if customer is None:
                customer = customers[id(entry)] = _copy_tree(entry.customer)
            report.incidents[i] = inc.with_extra(customer=customer)
        note: dict[str, Any] = {"matched": matched, "unmatched": unmatched}
        if problem:
            note["problem"] = problem
        if why:
            note["why"] = why  # the first few; a CSV report may hold thousands of incidents
        report.notes[self.name] = note

    def _why_not(self, ip: Any, when: datetime) -> str:
        others = self.table.candidates(ip)
        if not others:
            return f"{ip}: no block in {self.file.name} holds it"
        held = "; ".join(f"line {e.line} ({e.network}) {e.window()}" for e in others[:3])
        return f"{ip}: nobody held it at {when.isoformat()} ({held})"
