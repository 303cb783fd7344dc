"""CSV attachments (plain, zipped, gzipped or inline ``name=*.csv`` parts): one incident per row.

Shadowserver, AbuseHub and the sheets abuse desks get from other CERTs and SOCs.

Columns are recognised by name, never by position: vendors order them
differently and re-order them between report versions. Zip members, total
uncompressed bytes and rows are capped because the attachment is hostile input;
the verdict says when a cap cut the data short. Filtering rows to our address
space is the ``ip`` filter's job, not this parser's.
"""

from __future__ import annotations

import codecs
import io
import itertools
import re
from datetime import datetime, timezone

from ..errors import INPUT_ERRORS
from ..lazy import lazy_compile, lazy_import
from ..model import Incident, Verdict, merge_duplicates
from ..options import Option
from ..taxonomy import type_from_text
from ..zones import Zones, resolve
from .base import TIME_OPTIONS, Parser
from .csv_cells import (
    DATE_COLUMNS,
    IP_COLUMNS,
    PORT_COLUMNS,
    STAMP_COLUMNS,
    TIME_COLUMNS,
    TYPE_COLUMNS,
    UTC_SUFFIX,
    cell_ip,
    cell_type,
    column_key,
    decode_csv,
    parse_stamp,
    sniff_delimiter,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from email.message import Message as _StdMessage
    from typing import Any, Mapping

    from ..normalize import Message

__all__ = ["CsvParser", "column_key", "decode_csv", "parse_stamp", "shadowserver_type", "sniff_delimiter"]

zipfile = lazy_import('zipfile')
gzip = lazy_import('gzip')
csv = lazy_import('csv')
zlib = lazy_import('zlib')  # its error class, on a broken archive only
#: Defaults for the caps (parser options ``max_rows``, ``max_bytes``, ``max_members``).
MAX_ROWS = 200_000
MAX_BYTES = 50 * 1024 * 1024
MAX_MEMBERS = 20
#: A zip member that claims to inflate more than this many times and is big is a bomb:
#: real CSV compresses 5-30x.
MAX_RATIO = 200
RATIO_MIN_SIZE = 10 * 1024 * 1024

CSV_TYPES = {"text/csv", "application/csv", "text/comma-separated-values", "text/x-csv", "application/x-csv",
             "text/tab-separated-values"}
ZIP_TYPES = {"application/zip", "application/x-zip-compressed", "application/x-zip"}
GZIP_TYPES = {"application/gzip", "application/x-gzip"}

#: Shadowserver report names (file name ``2015-01-01-scan_ntp-…csv``) -> type, first prefix wins.
SHADOWSERVER_REPORTS: tuple[tuple[str, str], ...] = (
    ("botnet_cc", "c2-server"),
    ("cc_ip", "c2-server"),
    ("sinkhole", "infected-system"),
    ("microsoft_sinkhole", "infected-system"),
    ("event4_sinkhole", "infected-system"),
    ("botnet", "infected-system"),
    ("drone", "infected-system"),
    ("compromised", "system-compromise"),
    ("honeypot_brute_force", "brute-force"),
    ("event4_honeypot_brute_force", "brute-force"),
    ("brute_force", "brute-force"),
    ("darknet", "scanner"),
    ("honeypot_darknet", "scanner"),
    ("event4_darknet", "scanner"),
    ("event4_honeypot_darknet", "scanner"),
    ("spam_url", "spam"),
    ("phish_url", "phishing"),
    ("malware_url", "malware-distribution"),
    ("ddos", "ddos"),
    ("event4_ddos", "ddos"),
    # Amplifiers (IntelMQ: ddos-amplifier, taxonomy vulnerable), before the other scan_* reports.
    ("dns_openresolver", "ddos-amplifier"),
    ("scan_dns", "ddos-amplifier"),
    ("scan_ntpmonitor", "ddos-amplifier"),
    ("scan_ssdp", "ddos-amplifier"),
    ("scan_memcached", "ddos-amplifier"),
    ("scan_chargen", "ddos-amplifier"),
    ("scan_qotd", "ddos-amplifier"),
    ("scan", "vulnerable-system"),
    ("ssl_", "vulnerable-system"),
    ("open_", "vulnerable-system"),
    ("accessible", "vulnerable-system"),
    ("vulnerable", "vulnerable-system"),
    ("cisco_smart_install", "vulnerable-system"),
    ("blocklist", "blacklist"),
)

_SS_FILE = lazy_compile(r"^(\d{4}-\d{2}-\d{2}-)?([a-z0-9]+(?:_[a-z0-9]+)*)-", re.I)
_SS_SUBJECT = lazy_compile(r"\bShadowserver\s+([A-Za-z0-9_]+)", re.I)



def shadowserver_type(name: str) -> str | None:
    """The type a Shadowserver report name (``scan_ntp``, ``sinkhole_http_drone``) stands for."""
    key = name.lower()
    for prefix, type_ in SHADOWSERVER_REPORTS:
        if key.startswith(prefix):
            return type_
    return None


class _Budget:
    """What is left of the caps for one message, shared by all its attachments."""

    def __init__(self, rows: int, nbytes: int) -> None:
        self.rows, self.bytes = rows, nbytes
        self.capped: list[str] = []


class _Table:
    """One CSV file's decoded text and where it came from (attachment, zip member, gzip)."""

    def __init__(self, name: str, text: str) -> None:
        self.name, self.text = name, text


class CsvParser(Parser):
    """Incidents from CSV attachments: plain, zipped, gzipped or inline."""

    name = "csv"
    priority = 60

    OPTIONS = (
        Option("max_rows", "int", MAX_ROWS, min=1, help="rows read per message"),
        Option("max_bytes", "int", MAX_BYTES, min=1, help="CSV bytes read per message (after unzipping)"),
        Option("max_members", "int", MAX_MEMBERS, min=1, help="files read per zip archive"),
    ) + TIME_OPTIONS

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.max_rows = int(self.setting("max_rows"))
        self.max_bytes = int(self.setting("max_bytes"))
        self.max_members = int(self.setting("max_members"))

    # -- finding the tables ---------------------------------------------------

    def parse(self, message: Message) -> Verdict:
        candidates = [(a.filename or f"part {a.part}", a.data, k)
                      for a in message.attachments if (k := _attachment_kind(a))]
        inline = _inline_csv_parts(message.email)
        candidates += inline
        if not candidates:
            return self.not_applicable("no CSV or zipped CSV attachment")
        notes: list[str] = []
        budget = _Budget(self.max_rows, self.max_bytes)
        tables: list[_Table] = []
        for label, data, kind in candidates:
            if kind == "zip":
                tables.extend(self._unzip(data, label, budget, notes))
                continue
            if kind == "gzip":
                unpacked = self._gunzip(data, label, budget, notes)
                if unpacked is None:
                    continue
                data = unpacked
            elif len(data) > budget.bytes:
                budget.capped.append(f"{label} cut at max_bytes={self.max_bytes}")
                data = data[: data.rfind(b"\n", 0, budget.bytes) + 1]
            budget.bytes -= len(data)
            tables.append(_Table(label, decode_csv(data)))
        if not tables:
            # A CSV-ish attachment was there: say why it gave nothing (applied, so the reason is shown).
            return self.found([], "; ".join(notes + budget.capped) or "no CSV member in the zip attachment(s)")
        context = _Context(message, self)
        incidents: list[Incident] = []
        used = 0
        for table in tables:
            found, note = self._rows(table, context, budget)
            if note:
                notes.append(note)
            if found is not None:
                used += 1
                incidents.extend(found)
        if not used:
            return self.found([], "; ".join(notes + budget.capped))
        rows = self.max_rows - budget.rows
        # Files that repeat each other (AbuseHub sends its CSV and Shadowserver's) are merged here so the
        # verdict counts incidents, not rows; within one file the pipeline's merge is enough.
        unique = merge_duplicates(incidents) if used > 1 else incidents
        summary = f"{rows} row{'s' if rows != 1 else ''} in {used} CSV file{'s' if used != 1 else ''}"
        if len(unique) < len(incidents):
            summary += f", {len(incidents) - len(unique)} repeated"
        verdict = self.found(unique, "; ".join([summary] + notes + budget.capped))
        # A feed the normalizer also read as text (attached as .txt, or the body itself): what the free-text
        # parser reads there only restates these rows (and takes the sinkhole or C2 column for the source).
        verdict.restated = [decode_csv(data) for _, data, _ in inline]
        return verdict

    def _gunzip(self, data: bytes, label: str, budget: _Budget, notes: list[str]) -> bytes | None:
        """A ``.csv.gz`` inflated up to the byte budget (a gzip stream cannot say its size up front).

        Like a zip member, a stream that inflates more than MAX_RATIO times and is big is a
        bomb: it is refused once that much came out, before the CSV reader spends seconds on it.
        """
        src = io.BytesIO(data)
        try:
            with gzip.GzipFile(fileobj=src) as fh:
                raw = fh.read(min(budget.bytes, RATIO_MIN_SIZE) + 1)
                if len(raw) > RATIO_MIN_SIZE and len(raw) > MAX_RATIO * src.tell():
                    notes.append(f"{label}: refused, inflates {src.tell()} bytes to more than {RATIO_MIN_SIZE} "
                                 f"(gzip bomb?)")
                    return None
                if len(raw) <= budget.bytes:
                    raw += fh.read(budget.bytes + 1 - len(raw))
        except (OSError, EOFError, zlib.error, ValueError) as e:
            notes.append(f"{label}: unreadable gzip ({e})")
            return None
        if len(raw) > budget.bytes:
            budget.capped.append(f"{label} cut at max_bytes={self.max_bytes}")
            raw = raw[: raw.rfind(b"\n", 0, budget.bytes) + 1]
        return raw

    def _unzip(self, data: bytes, label: str, budget: _Budget, notes: list[str], nested: bool = False
               ) -> list[_Table]:
        """The CSV members of a zip (and of zips one level inside it), within the caps.

        Everything else is noted and skipped; the byte budget is shared, so nesting
        cannot multiply it.
        """
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
            members = [i for i in zf.infolist() if not i.is_dir()]
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
            notes.append(f"{label}: unreadable zip ({e})")
            return []
        if len(members) > self.max_members:
            budget.capped.append(f"{label}: only the first {self.max_members} of {len(members)} members read "
                                 f"(max_members)")
            members = members[: self.max_members]
        out = []
        for info in members:
            where = f"{label}:{info.filename}"
            is_zip = info.filename.lower().endswith(".zip")
            if is_zip and nested:
                notes.append(f"{where}: zip inside a zip inside a zip, skipped")
                continue
            if not is_zip and not info.filename.lower().endswith((".csv", ".tsv", ".txt")):
                notes.append(f"{where}: not a CSV member, skipped")
                continue
            if info.flag_bits & 0x1:
                notes.append(f"{where}: encrypted, skipped")
                continue
            if info.file_size > RATIO_MIN_SIZE and info.file_size > MAX_RATIO * max(info.compress_size, 1):
                notes.append(f"{where}: refused, would inflate {info.compress_size} bytes to {info.file_size} "
                             f"(zip bomb?)")
                continue
            if budget.bytes <= 0:
                budget.capped.append(f"{where}: not read, max_bytes={self.max_bytes} reached")
                continue
            try:
                with zf.open(info) as fh:
                    raw = fh.read(budget.bytes + 1)
            except (RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error, EOFError, OSError,
                    ValueError) as e:
                notes.append(f"{where}: unreadable ({e})")
                continue
            if len(raw) > budget.bytes:
                budget.capped.append(f"{where} cut at max_bytes={self.max_bytes}")
                raw = raw[: raw.rfind(b"\n", 0, budget.bytes) + 1]
            budget.bytes -= len(raw)
            if is_zip:
                out.extend(self._unzip(raw, where, budget, notes, nested=True))
            else:
                out.append(_Table(where, decode_csv(raw)))
        return out

    # -- reading one table ----------------------------------------------------

    def _rows(self, table: _Table, context: _Context, budget: _Budget) -> tuple[list[Incident] | None, str]:
        """Incidents of one table and a note on what was odd in it; (None, why) if it is not usable."""
        found = _header_and_body(table.text)
        if found is None:
            return None, f"{table.name}: no header row naming an IP column"
        header, delimiter, body = found
        cols: dict[str, int] = {}
        utc_cols: set[int] = set()
        for i, name in enumerate(header):
            key = column_key(name)
            cols.setdefault(key, i)
            # "Date (UTC)", "timestamp_utc": the column says its zone; look it up by its plain name too
            base = UTC_SUFFIX.sub("", key)
            if base != key:
                utc_cols.add(i)
                cols.setdefault(base, i)
        ip_col = next(cols[c] for c in IP_COLUMNS if c in cols)
        date_col = next((cols[c] for c in DATE_COLUMNS if c in cols), None)
        time_col = next((cols[c] for c in TIME_COLUMNS if c in cols), None)
        port_col = next((cols[c] for c in PORT_COLUMNS if c in cols), None)
        type_cols = [cols[c] for c in TYPE_COLUMNS if c in cols]

        naive = context.naive_zone(table.name, header)
        utc = _UTC_COLUMN
        zones = context.zones
        # Where the time comes from, best first: full stamp columns, the date + time pair, either alone.
        # Each source has its own cache: cell text -> (UTC time, zone), since feeds repeat stamps.
        sources: list[tuple[tuple[int, ...], str, dict]] = [
            ((cols[c],), utc if cols[c] in utc_cols else naive, {}) for c in STAMP_COLUMNS if c in cols]
        if date_col is not None and time_col is not None:
            sources.append(((date_col, time_col), utc if {date_col, time_col} & utc_cols else naive, {}))
        for c in (time_col, date_col):
            if c is not None:
                sources.append(((c,), utc if c in utc_cols else naive, {}))

        table_type = context.table_type(table.name)
        fallback_type = context.subject_type or "undetermined"
        types: dict[str, str | None] = {}
        date_fallback = context.date_fallback
        parser = self.name

        incidents: list[Incident] = []
        bad_ip = no_time = n = 0
        error = ""
        try:
            for row in csv.reader(body, delimiter=delimiter, skipinitialspace=True):
                if not row:
                    continue
                if budget.rows <= 0:
                    note = f"stopped after {self.max_rows} rows (max_rows)"
                    if note not in budget.capped:
                        budget.capped.append(note)
                    break
                n += 1
                budget.rows -= 1
                try:
                    ip = cell_ip(row[ip_col])
                except (IndexError, ValueError):
                    bad_ip += 1
                    continue
                stamp = None
                for source_cols, naive_as, cache in sources:
                    try:
                        value = row[source_cols[0]] if len(source_cols) == 1 else \
                            f"{row[source_cols[0]].strip()} {row[source_cols[1]].strip()}"
                    except IndexError:
                        continue
                    stamp = cache[value] if value in cache else _stamp(value, naive_as, zones, cache)
                    if stamp is not None:
                        break
                if stamp is not None:
                    when, zone = stamp
                else:
                    no_time += 1
                    when, zone = (date_fallback, "date-header") if date_fallback is not None else (None, "none")
                type_ = table_type
                if type_ is None:
                    for c in type_cols:
                        try:
                            value = row[c]
                        except IndexError:
                            continue
                        type_ = types[value] if value in types else types.setdefault(value, cell_type(value))
                        if type_ is not None:
                            break
                    else:
                        type_ = fallback_type
                port = None
                if port_col is not None:
                    try:
                        port = int(row[port_col])
                    except (IndexError, ValueError):
                        pass
                    else:
                        if not 0 <= port <= 65535:
                            port = None
                incidents.append(Incident(ip, type_, when, parser, zone, port, delimiter.join(row)))
        except csv.Error as e:
            error = f"malformed CSV after row {n} ({e})"
        odd = []
        if bad_ip:
            odd.append(f"{bad_ip} of {n} rows without a valid IP")
        if no_time:
            odd.append(f"{no_time} without a time" + (" (Date header used)" if date_fallback else ""))
        if error:
            odd.append(error)
        return incidents, (f"{table.name}: " + ", ".join(odd)) if odd else ""


class _Context:
    """What every table of one message shares: subject-derived type, Date, zone defaults."""

    def __init__(self, message: Message, parser: CsvParser) -> None:
        subject = message.subject or ""
        sender = message.sender or ""
        self.shadowserver = "shadowserver" in (subject + sender).lower()
        m = _SS_SUBJECT.search(subject)
        self.subject_ss = shadowserver_type(m.group(1)) if m else None
        self.subject_type = self.subject_ss or type_from_text(subject)
        self.zones = Zones.of(message, parser.options)
        self.date_fallback = message.date if parser.options.get("date_fallback") else None

    def table_type(self, name: str) -> str | None:
        """A type the file name fixes for every row (Shadowserver report names)."""
        base = name.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
        m = _SS_FILE.match(base)
        if m and (m.group(1) or self.shadowserver):
            return shadowserver_type(m.group(2))
        return None

    def naive_zone(self, name: str, header: list[str]) -> str:
        """How stamps without an offset are read: ``_FORMAT_UTC`` or ``_REPORT``.

        Shadowserver documents its stamps as UTC (the format's zone); otherwise
        the report's zone sources in the one order (abuso.zones: what the report
        states, its Date offset -- AbuseHub writes local time --, the configured
        zone, else UTC as a visible guess).
        """
        base = name.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
        m = _SS_FILE.match(base)
        # Shadowserver's own files, also when re-sent by a clearing house (AbuseHub attaches them
        # beside its local-time CSV): a dated report name, or their columns in a Shadowserver mail.
        keys = {column_key(h) for h in header}
        is_ss = bool(m and m.group(1)) or (self.shadowserver and {"timestamp", "ip"} <= keys)
        return _FORMAT_UTC if is_ss else _REPORT


#: How a source column's naive stamps are read: the column names UTC ("Date (UTC)": explicit),
#: the format fixes UTC (Shadowserver), or the report's zone sources decide.
_UTC_COLUMN, _FORMAT_UTC, _REPORT = "utc-column", "format-utc", "report"


def _attachment_kind(att: Any) -> str | None:
    name = (att.filename or "").lower()
    ctype = (att.content_type or "").lower()
    if name.endswith(".zip") or ctype in ZIP_TYPES:
        return "zip" if att.data[:4] == b"PK\x03\x04" else None
    if name.endswith((".csv.gz", ".tsv.gz")) or (ctype in GZIP_TYPES and not name.endswith(".tar.gz")):
        return "gzip" if att.data[:2] == b"\x1f\x8b" else None
    if ctype in CSV_TYPES or name.endswith((".csv", ".tsv")):
        return "csv"
    # A feed attached under any name ("feed.txt", "ATT00001", application/octet-stream): by content.
    if (ctype in SNIFFED_TYPES or name.endswith(SNIFFED_NAMES) or "." not in name) and looks_tabular(att.data):
        return "csv"
    return None


#: Attachments whose content is looked at for a table, whatever their name says.
SNIFFED_TYPES = {"text/plain", "application/octet-stream", "application/vnd.ms-excel", "text/x-log",
                 "application/text", "text/x-comma-separated-values"}
SNIFFED_NAMES = (".txt", ".dat", ".log", ".lst", ".list", ".out", ".text")
#: How much of a part the sniffer reads, and how many rows it checks against the header.
SNIFF_BYTES = 16 * 1024
SNIFF_ROWS = 20


def looks_tabular(data: bytes, anywhere: bool = True) -> bool:
    """Is this a CSV/TSV feed whatever it is called: a header row naming an address column (among
    the first few lines with ``anywhere``, else the first), separated by , ; TAB or |, then rows
    that nearly all have the header's number of fields."""
    head = data[:SNIFF_BYTES]
    if b"\x00" in head[:512] and not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False  # binary
    text = decode_csv(head)
    if len(data) > SNIFF_BYTES:
        text = text[: text.rfind("\n") + 1]  # the last line may be cut
    if not anywhere:
        first = next((ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), "")
        if _header_and_body(first) is None:
            return False
    found = _header_and_body(text)
    if found is None:
        return False
    header, delimiter, body = found
    if len(header) < 2:
        return False
    try:
        rows = [r for r in itertools.islice(csv.reader(body, delimiter=delimiter, skipinitialspace=True),
                                            SNIFF_ROWS * 2) if r][:SNIFF_ROWS]
    except csv.Error:
        return False
    fitting = sum(1 for r in rows if len(r) == len(header))
    return bool(rows) and fitting >= max(1, 0.8 * len(rows))


def _inline_csv_parts(msg: _StdMessage) -> list[tuple[str, bytes, str]]:
    """Text parts the normalizer read as body text that are tables: ``text/plain; name=x.csv``, a feed
    attached as ``.txt``, a body that is nothing but a table. Recognised by content, not by name."""
    out = []
    try:
        for part in msg.walk():
            if part.is_multipart() or part.get_content_type() != "text/plain":
                continue
            name = part.get_filename() or ""
            attached = (part.get("Content-Disposition") or "").split(";")[0].strip().lower() == "attachment"
            lower = name.lower()
            if attached and name and not lower.endswith(".txt"):
                continue  # an attachment the normalizer kept as such: already among message.attachments
            data = part.get_payload(decode=True)
            if not isinstance(data, bytes):
                continue
            if lower.endswith((".csv", ".tsv")):
                if not attached:
                    out.append((name, data, "csv"))
            elif looks_tabular(data, anywhere=bool(name) or attached):
                out.append((name or "text part", data, "csv"))
    except INPUT_ERRORS:  # hostile MIME the normalizer tolerated: the other candidates still count
        pass
    return out


def _header_and_body(text: str) -> tuple[list[str], str, io.StringIO] | None:
    """The header row (the first of the first few non-comment lines naming an IP column) and the rest."""
    body = io.StringIO(text, newline="")
    for _ in range(5):
        line = body.readline()
        while line and (not line.strip() or line.lstrip().startswith("#")):
            line = body.readline()
        if not line:
            return None
        delimiter = sniff_delimiter(line)
        try:
            header = next(csv.reader([line], delimiter=delimiter, skipinitialspace=True))
        except (csv.Error, StopIteration):
            continue
        if any(column_key(h) in IP_COLUMNS or UTC_SUFFIX.sub("", column_key(h)) in IP_COLUMNS for h in header):
            return header, delimiter, body
    return None


def _stamp(value: str, naive_as: str, zones: Zones, cache: dict) -> tuple[datetime, str] | None:
    """(UTC time, zone) of a cell, remembered in the source's cache (bounded: hostile files vary every cell)."""
    if len(cache) > 100_000:
        cache.clear()
    dt = parse_stamp(value)
    if dt is None:
        out = None
    elif naive_as == _UTC_COLUMN and dt.tzinfo is None:
        out = resolve(dt.replace(tzinfo=timezone.utc))  # the column names its zone: explicit
    else:
        out = zones.resolve(dt, format_utc=naive_as == _FORMAT_UTC)
    cache[value] = out
    return out
