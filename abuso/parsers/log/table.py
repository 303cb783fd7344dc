"""Tables with a header row, read by column name: a destination column is never taken for the source.

myNetWatchman's "AgentName, Event Date Time, Destination IP, ...", W3C "#Fields:" (IIS), and any
tab-, semicolon-, bar- or comma-separated table whose header names a time or an address column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...addresses import find_addresses, source_address
from ...lazy import lazy_compile
from ...model import IPAddress
from ...taxonomy import type_from_text
from ...timestamps import Stamp

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Callable

_TIMEISH = lazy_compile(r"\d:\d\d")
_COL_TIME = lazy_compile(r"time|date|\bseen\b|timestamp|\bwhen\b|epoch|\bts\b", re.I)
_COL_VICTIM = lazy_compile(r"dest|dst|target|victim|sensor|agent|reporter|honeypot|\bto\b|local|^s-ip$|^server", re.I)
_COL_SOURCE = lazy_compile(r"source|\bsrc|attacker|offend|origin|remote|client|^c-ip$|"
                           r"^(?:ip|ip[ _-]?addr(?:ess)?|address"
                           r"|host|from|ipv[46]|addr)$", re.I)
_COL_PORT = lazy_compile(r"port", re.I)
#: Other column names of a whitespace-aligned table: every cell of its header must be a column name.
_COL_OTHER = lazy_compile(r"(?:proto(?:col)?|count|hits|packets|pkts|bytes|flags|service|type|action|country|asn?"
                          r"|attempts|user(?:name)?|events?|info|description|comment|no\.?|#|id|signature|rule"
                          r"|reason|category|url|domain|hostname|method|status|size|duration|tcp|udp|ports?)",
                          re.I)
_SEPARATORS = ("\t", ";", "|", ",")
_ADDRESSISH = lazy_compile(r"\[?[0-9A-Fa-f]*[.:][0-9A-Fa-f.:]+\]?(?::\d{1,5})?")


@dataclass
class Table:
    """The shape of a log table: separator, cell count and the columns of each role."""

    sep: str
    cells: int
    time: list[int] = field(default_factory=list)
    source: list[int] = field(default_factory=list)
    victim: list[int] = field(default_factory=list)
    source_port: int | None = None
    epoch: bool = False
    hint: str | None = None
    #: The format defines its times as UTC (W3C extended logs).
    utc: bool = False
    #: Columns aligned with spaces ("Date  Sourceip  port  destips"): a row's cells cannot be split (a
    #: date holds a space, a list of addresses too), so its addresses fill the address columns in order.
    spaced: list[str] | None = None
    #: Where each of those address columns starts in the header line.
    spaced_at: list[int] = field(default_factory=list)

    def cells_of(self, line: str) -> list[str] | None:
        """The row's cells, or None when the line is not a row of this table (the table ended).

        Extra cells that are all addresses belong to the last column when it is an address column
        ("Destination IPs" listing several, comma-separated in a comma-separated table)."""
        cells = [c.strip() for c in line.split(self.sep)]
        if self.sep == "|":
            cells = [c for c in cells if c] or cells
        last = self.cells - 1
        if len(cells) > self.cells and last in self.victim + self.source:
            tail = cells[last:]
            if all(_ADDRESSISH.fullmatch(c) for c in tail):
                cells = cells[:last] + [" ".join(tail)]
        return cells if abs(len(cells) - self.cells) <= 1 else None


@dataclass
class Row:
    """What one row says: its stamp, source port, type, accused and victim addresses."""

    stamp: Stamp | None
    port: int | None
    hint: str | None
    sources: list[tuple[IPAddress, int | None]]
    victims: list[IPAddress]


def header(line: str) -> Table | None:
    """A table header row: 3+ word cells, naming a time or an address column.

    Also the W3C extended log header (IIS): ``#Fields: date time s-ip ... c-ip``,
    space separated, times in UTC by the format's definition.
    """
    w3c = line.startswith("#Fields:")
    if not line or not w3c and (line.count(":") > 2 or _TIMEISH.search(line)):
        return None
    for sep in (" ",) if w3c else _SEPARATORS:
        if not w3c and line.count(sep) < 2:
            continue
        cells = line[8:].split() if w3c else [c.strip() for c in line.split(sep)]
        if sep == "|":
            cells = [c for c in cells if c] or cells
        if max(map(len, cells)) > 42:
            continue  # a sentence with commas, not column names
        wordy = sum(1 for c in cells if c and re.fullmatch(r"[A-Za-z][\w .#/()-]{0,40}", c))
        if wordy < max(3, len(cells) * 2 // 3):
            continue
        t = Table(sep, len(cells), utc=w3c)
        for i, c in enumerate(cells):
            if _COL_PORT.search(c):
                if re.search(r"source|src|^c-", c, re.I) and t.source_port is None:
                    t.source_port = i
            elif _COL_VICTIM.search(c):
                t.victim.append(i)
            elif _COL_TIME.search(c):
                t.time.append(i)
                t.epoch = t.epoch or bool(re.search(r"epoch|unix|\bts\b", c, re.I))
            elif _COL_SOURCE.search(c):
                t.source.append(i)
        if t.time or t.source:
            t.hint = type_from_text(line)
            return t
    return spaced_header(line)


def _kind(cell: str) -> str | None:
    if _COL_PORT.search(cell):
        return "port"
    if _COL_VICTIM.search(cell):
        return "victim"
    if _COL_TIME.search(cell):
        return "time"
    if _COL_SOURCE.search(cell):
        return "source"
    return "other" if _COL_OTHER.fullmatch(cell) else None


#: A cheap first test: the line names a destination-like and a source-like column somewhere
#: (a "To" column alone is too common a word to be worth the full test).
_DEST_WORDS = ("dest", "dst", "target", "victim", "sensor", "agent", "reporter", "honeypot", "local", "server")
_SOURCE_WORDS = ("source", "src", "attacker", "offend", "origin", "remote", "client", "ip", "addr", "host", "from")
_PROSE_WORDS = frozenset({"to", "from", "ip", "ips", "address", "addresses", "addr", "host", "and", "or", "the",
                          "of", "at", "on", "by", "in"})


def _kinds(cells: list[str]) -> list[str] | None:
    """Each cell's column kind, if every cell is a column name and both ends are named."""
    if not 3 <= len(cells) <= 16 or any(len(c) > 30 for c in cells):
        return None
    kinds = []
    for c in cells:
        k = _kind(c)
        if k is None:
            return None
        kinds.append(k)
    return kinds if "source" in kinds and "victim" in kinds else None


def spaced_header(line: str) -> Table | None:
    """A header whose columns are aligned with spaces and which names both ends: ``Date  Sourceip  port
    destips``, ``time protocol src_ip src_port dest_ip dest_port``. Every cell must be a column name
    (a sentence is not a header), with a source column and a destination column."""
    if len(line) > 200:
        return None
    low = line.lower()  # most lines fail here: substring tests in C
    if not any(w in low for w in _DEST_WORDS) or not any(w in low for w in _SOURCE_WORDS):
        return None
    text = line.strip().lstrip("#").strip()
    if not text or _TIMEISH.search(text):
        return None
    splits = [text.split()]
    if re.search(r"\s{2,}|\t", text):  # "Source IP  Dest IP": cells of several words, else one word each
        splits.insert(0, re.split(r"\s{2,}|\t", text))
    for cells in splits:
        if cells is splits[-1] and any(c.lower() in _PROSE_WORDS for c in cells):
            continue  # one word a cell: "source ip to destination ip" is a phrase, not five columns
        kinds = _kinds(cells)
        if kinds is not None:
            break
    else:
        return None
    t = Table(" ", len(cells), spaced=[k for k in kinds if k in ("source", "victim")])
    pos = 0
    for c, k in zip(cells, kinds, strict=True):
        pos = line.index(c, pos)
        if k in ("source", "victim"):
            t.spaced_at.append(pos)
        pos += len(c)
    t.hint = type_from_text(line)
    return t


def read_spaced_row(table: Table, line: str, line_stamps: list[Stamp]) -> Row:
    """A row of a space-aligned table: its addresses in order fill the header's address columns, the
    last column taking any more (a list of destinations). A row with fewer addresses than address
    columns (one end masked as "XXX.X.XX.XX") puts each in the column whose header starts nearest."""
    assert table.spaced is not None
    sources: list[tuple[IPAddress, int | None]] = []
    victims: list[IPAddress] = []
    found = find_addresses(line)
    for n, f in enumerate(found):
        ip = source_address(f.ip)
        if len(found) < len(table.spaced):
            col = min(range(len(table.spaced)), key=lambda c: abs(table.spaced_at[c] - f.start))
        else:
            col = min(n, len(table.spaced) - 1)
        if table.spaced[col] == "source":
            sources.append((ip, f.port))
        else:
            victims.append(ip)
    return Row(line_stamps[0] if line_stamps else None, None, type_from_text(line) or table.hint, sources, victims)


def read_row(table: Table, cells: list[str], line: str, line_stamps: list[Stamp],
             parse_cell: Callable[[str], Stamp | None], utc_stamps: Callable[[str], list[Stamp]]) -> Row:
    """Read one row: ``parse_cell`` reads a time cell the line's stamps missed, ``utc_stamps`` reads
    the line with the format's UTC (W3C)."""
    stamp = None
    if table.time:
        # The stamp read from the line that lies in a time column (not a "last seen" elsewhere).
        starts, pos = [], 0
        for c in line.split(table.sep):
            starts.append(pos)
            pos += len(c) + len(table.sep)
        spans = [(starts[ci], starts[ci + 1] if ci + 1 < len(starts) else len(line))
                 for ci in table.time if ci < len(starts)]
        stamp = next((st for st in line_stamps if any(a <= st.start < b for a, b in spans)), None)
        for ci in table.time if stamp is None else ():
            if ci < len(cells) and cells[ci]:
                stamp = parse_cell(cells[ci])
                if stamp is not None:
                    break
    if stamp is None and line_stamps:
        stamp = line_stamps[0]
    if stamp is not None and table.utc and stamp.zone != "explicit":
        # W3C extended logs are UTC by definition: read the same stamp again, the format's UTC first.
        start = stamp.start
        stamp = next((st for st in utc_stamps(line) if st.start == start), stamp)
    port = None
    if table.source_port is not None and table.source_port < len(cells) and cells[table.source_port].isdigit():
        port = int(cells[table.source_port])
    sources: list[tuple[IPAddress, int | None]] = []
    victims: list[IPAddress] = []
    for ci, cell in enumerate(cells):
        for f in find_addresses(cell) if ("." in cell or ":" in cell) else []:
            ip = source_address(f.ip)
            if ci in table.victim:
                victims.append(ip)
            elif ci in table.source or not table.source:
                sources.append((ip, f.port))
    return Row(stamp, port, type_from_text(line) or table.hint, sources, victims)
