"""Which network an address belongs to, offline: RouteViews prefix-to-AS tables and MaxMind ASN databases.

``PrefixTable`` reads CAIDA's RouteViews ``prefix2as`` format (``1.0.0.0<TAB>24<TAB>13335``, plain or gzip;
multi-origin ``13335_4826`` and AS sets ``13335,4826`` keep their first AS), for IPv4 and IPv6. Nested
prefixes are flattened once into non-overlapping ranges, so a look-up is one bisect over a flat array: the
longest prefix wins, in microseconds, whatever the table's size.

Parsing a full table (~1 M prefixes) costs about a second; a piped message cannot pay that each time, so
the flattened arrays are cached in the user's cache folder, keyed by the file's path, size, mtime, ctime
and inode (as the parsed config is), and a later process reads them with ``array.fromfile``.
"""

from __future__ import annotations

import ipaddress
import os
import zlib
from _socket import AF_INET, AF_INET6, inet_ntop, inet_pton  # not socket.py: its enums cost start-up ~4 ms
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

#: Bumped when the cache layout changes.
_CACHE_VERSION = 1


@dataclass(frozen=True)
class AsInfo:
    """The autonomous system an address belongs to."""

    asn: int
    network: str
    as_name: str | None = None

    def as_extra(self) -> dict[str, Any]:
        out: dict[str, Any] = {"asn": self.asn, "network": self.network}
        if self.as_name:
            out["as_name"] = self.as_name
        return out


class _Family:
    """Flat, sorted, non-overlapping ranges of one address family: start, end, prefix length, AS."""

    def __init__(self, bits: int) -> None:
        self.bits = bits
        # IPv4 bounds fit 32-bit arrays; IPv6 ones are Python ints in lists (bisect takes both).
        self.starts: Any = array("I") if bits == 32 else []
        self.ends: Any = array("I") if bits == 32 else []
        self.lengths = array("B")
        self.asns = array("I")

    def build(self, prefixes: list[tuple[int, int, int]]) -> None:
        """``prefixes``: (network int, prefix length, asn). Longer prefixes win inside shorter ones."""
        prefixes.sort(key=lambda p: (p[0], p[1]))
        stack: list[tuple[int, int, int, int]] = []  # (start, end, length, asn) of enclosing prefixes
        cursor = 0  # the first address not yet assigned to a range

        def emit(start: int, end: int, length: int, asn: int) -> None:
            if start <= end:
                self.starts.append(start)
                self.ends.append(end)
                self.lengths.append(length)
                self.asns.append(asn)

        def close_until(limit: int) -> None:
            """Emit what the enclosing prefixes still cover below ``limit``, popping those that end there."""
            nonlocal cursor
            while stack and stack[-1][1] < limit:
                start, end, length, asn = stack.pop()
                emit(max(cursor, start), end, length, asn)
                cursor = max(cursor, end + 1)
            if stack and cursor < limit:
                start, end, length, asn = stack[-1]
                emit(max(cursor, start), limit - 1, length, asn)
                cursor = limit

        host = self.bits
        for net, length, asn in prefixes:
            start = net
            end = net + (1 << (host - length)) - 1
            if stack and stack[-1][0] == start and stack[-1][1] == end:
                continue  # the same prefix twice: the first one stays
            close_until(start)
            cursor = max(cursor, start)
            stack.append((start, end, length, asn))
        close_until(1 << host)

    def lookup(self, value: int) -> tuple[int, int] | None:
        """(prefix length, AS) of the longest prefix holding ``value``, or None."""
        i = bisect_right(self.starts, value) - 1
        if i < 0 or value > self.ends[i]:
            return None
        return self.lengths[i], self.asns[i]


class PrefixTable:
    """A RouteViews prefix2as table for IPv4 and IPv6."""

    def __init__(self) -> None:
        self.v4 = _Family(32)
        self.v6 = _Family(128)
        self.size = 0

    @classmethod
    def load(cls, path: Path) -> PrefixTable:
        try:
            stamp = _stamp(path)
        except OSError as e:
            raise ConfigError(f"cannot read the prefix table: {e.strerror or e}", str(path))
        cached = _cache_read(path, stamp)
        if cached is not None:
            return cached
        table = cls._parse(path)
        _cache_write(path, stamp, table)
        return table

    @classmethod
    def _parse(cls, path: Path) -> PrefixTable:
        import gzip

        v4: list[tuple[int, int, int]] = []
        v6: list[tuple[int, int, int]] = []
        try:
            with open(path, "rb") as raw:
                gzipped = raw.read(2) == b"\x1f\x8b"
            f = gzip.open(path, "rb") if gzipped else open(path, "rb")
            with f:
                for number, line in enumerate(f, 1):
                    entry = _prefix_line(line, number, path)
                    if entry is not None:
                        (v6 if entry[0] == 6 else v4).append(entry[1:])
        except (OSError, EOFError, zlib.error) as e:
            raise ConfigError(f"cannot read the prefix table: {getattr(e, 'strerror', None) or e}", str(path))
        if not v4 and not v6:
            raise ConfigError("no prefix in the table (expected lines like '192.0.2.0<TAB>24<TAB>64500')",
                              str(path))
        table = cls()
        table.v4.build(v4)
        table.v6.build(v6)
        table.size = len(v4) + len(v6)
        return table

    def lookup(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> AsInfo | None:
        family = self.v4 if ip.version == 4 else self.v6
        found = family.lookup(int(ip))
        if found is None:
            return None
        length, asn = found
        host = family.bits - length
        start = (int(ip) >> host << host).to_bytes(family.bits // 8, "big")
        return AsInfo(asn, f"{inet_ntop(AF_INET if ip.version == 4 else AF_INET6, start)}/{length}")


def _prefix_line(line: bytes, number: int, path: Path) -> tuple[int, int, int, int] | None:
    """(IP version, network int, length, AS) of one table line; None for blanks and comments."""
    fields = line.split()
    if not fields or fields[0].startswith(b"#"):
        return None
    if len(fields) != 3:
        raise ConfigError(f"line {number}: expected 'prefix<TAB>length<TAB>AS', got {line.strip()[:60]!r}", str(path))
    try:
        text = fields[0].decode("ascii")
        # inet_pton is C: a full table (~1 M lines) parses in seconds, not the ~20 s of ipaddress.
        version, packed = (6, inet_pton(AF_INET6, text)) if ":" in text else (4, inet_pton(AF_INET, text))
        length = int(fields[1])
        asn = int(fields[2].replace(b",", b"_").split(b"_")[0])
    except (OSError, ValueError, UnicodeDecodeError):
        raise ConfigError(f"line {number}: not a prefix and an AS number: {line.strip()[:60]!r}", str(path))
    bits = 32 if version == 4 else 128
    if not 0 <= length <= bits or not 0 <= asn < 1 << 32:
        raise ConfigError(f"line {number}: prefix length or AS number out of range: {line.strip()[:60]!r}",
                          str(path))
    host = bits - length
    return version, int.from_bytes(packed, "big") >> host << host, length, asn  # stray host bits ignored


# --- cache of the flattened table ---------------------------------------------------------------


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{_CACHE_VERSION} {path.resolve()} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino}"


def _cache_file(path: Path) -> Path | None:
    if os.environ.get("ABUSO_NO_CACHE"):
        return None
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    key = zlib.crc32(str(path.resolve()).encode("utf-8", "surrogateescape"))
    return Path(root) / "abuso" / f"asn-{key:08x}.bin"


def _cache_read(path: Path, stamp: str) -> PrefixTable | None:
    file = _cache_file(path)
    if file is None:
        return None
    try:
        with open(file, "rb") as f:
            if f.readline().decode("utf-8", "replace").rstrip("\n") != stamp:
                return None
            table = PrefixTable()
            table.size, n4, n6 = (int(x) for x in f.readline().split())
            for arr, n in ((table.v4.starts, n4), (table.v4.ends, n4), (table.v4.lengths, n4),
                           (table.v4.asns, n4), (table.v6.lengths, n6), (table.v6.asns, n6)):
                arr.fromfile(f, n)
            for _ in range(n6):
                start, end = f.readline().split()
                table.v6.starts.append(int(start, 16))
                table.v6.ends.append(int(end, 16))
            if len(table.v6.starts) != n6:
                return None
            return table
    except (OSError, ValueError, EOFError):
        return None


def _cache_write(path: Path, stamp: str, table: PrefixTable) -> None:
    import tempfile

    file = _cache_file(path)
    try:
        if file is None or _stamp(path) != stamp:  # changed while we read it: cache nothing
            return
        file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(f"{stamp}\n{table.size} {len(table.v4.starts)} {len(table.v6.starts)}\n".encode())
            for arr in (table.v4.starts, table.v4.ends, table.v4.lengths, table.v4.asns,
                        table.v6.lengths, table.v6.asns):
                arr.tofile(f)
            f.write("".join(f"{s:x} {e:x}\n" for s, e in zip(table.v6.starts, table.v6.ends, strict=True)).encode())
        os.replace(tmp, file)
    except OSError:
        pass  # a cache that cannot be written is only slower


class MmdbTable:
    """A MaxMind ASN database (GeoLite2-ASN and compatible), read with the ``maxminddb`` package."""

    def __init__(self, path: Path) -> None:
        try:
            import maxminddb
        except ImportError:
            raise ConfigError("reading .mmdb files needs the maxminddb package (pip install 'abuso[asn]')",
                              str(path))
        from maxminddb.errors import InvalidDatabaseError

        try:
            self.reader = maxminddb.open_database(str(path))
        except (OSError, ValueError, InvalidDatabaseError) as e:
            raise ConfigError(f"cannot read the ASN database: {getattr(e, 'strerror', None) or e}", str(path))

    def lookup(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> AsInfo | None:
        try:
            record, length = self.reader.get_with_prefix_len(ip)
        except ValueError:  # an IPv6 address in an IPv4-only database
            return None
        if not isinstance(record, dict):
            return None
        number = record.get("autonomous_system_number")
        if not isinstance(number, int) or isinstance(number, bool):  # absent, or not a number in this database
            return None
        net = ipaddress.ip_network(f"{ip}/{length}", strict=False)
        name = record.get("autonomous_system_organization")
        return AsInfo(number, str(net), str(name) if name else None)

    def close(self) -> None:
        self.reader.close()
