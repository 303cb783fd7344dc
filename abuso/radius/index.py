"""The on-disk session index: SQLite, built once, refreshed incrementally, shared by processes.

Mail::Abuse re-read every detail file for every report. Here logs are folded
into sessions once; a refresh reads only what changed since the last one:
appended bytes of a growing file, nothing of an unchanged one, and a rotated
file (renamed or gzipped) is recognised by the digests of its first bytes and
of the last bytes read, so that only what was not yet read is parsed. Folding
is idempotent (start = min, last/stop = max, address sets union), so reading a
record twice - a replaced file, an unterminated tail re-read once complete, a
refresh resumed from its last checkpoint - never changes the result.

Schema: ``sessions`` (one row per session), ``nets`` (one row per session and
address/prefix, keyed by prefix length + network bytes, ordered by start) and
``long`` (sessions over a day), so that a lookup is a few exact index probes -
one per prefix length present - reaching back at most a day.

Concurrency: one refresher at a time (``flock`` on ``<index>.lock``); a first
build is written to ``<index>.building`` and renamed into place when complete;
refreshes commit every few seconds and stop at a deadline, so that a
per-message time limit never throws work away.
"""

from __future__ import annotations

import errno
import fnmatch
import gzip
import hashlib
import io
import ipaddress
import json
import os
import sqlite3
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .. import sqlite
from .detail import ACCT_OFF, ACCT_ON, START, STOP, Event, key_network, parse_block

HEAD = 4096
CHUNK = 8 << 20
#: Events of one session closer than this are the same event (retransmissions, rounding).
TOL = 2.0
#: Sessions longer than this are listed apart (table ``long``): the scan of ``nets`` reaches back
#: at most this far, so one months-long business line does not slow every lookup down.
LONG = 86400.0
#: Seconds between commits of a long refresh: what an interruption can cost.
CHECKPOINT = 10.0
#: A "record" bigger than this without a blank line is garbage, not something to wait for.
MAX_RECORD = 64 << 20

#: Ordered migrations (abuso/sqlite.py); the first is the schema of indexes made before versions were kept.
MIGRATIONS: tuple[str, ...] = ("""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, dev INTEGER, ino INTEGER, size INTEGER, mtime_ns INTEGER,
    head BLOB, head_len INTEGER, consumed INTEGER, records INTEGER, corrupt INTEGER, tail BLOB);
CREATE INDEX IF NOT EXISTS files_head ON files(head);
CREATE TABLE IF NOT EXISTS sessions (
    sid INTEGER PRIMARY KEY, skey TEXT NOT NULL, user TEXT, nas TEXT, session TEXT,
    start REAL NOT NULL, last REAL NOT NULL, stop REAL, started INTEGER NOT NULL, cause TEXT, until REAL);
CREATE INDEX IF NOT EXISTS sessions_skey ON sessions(skey);
CREATE INDEX IF NOT EXISTS sessions_open ON sessions(nas) WHERE stop IS NULL;
CREATE TABLE IF NOT EXISTS nets (
    net BLOB NOT NULL, start REAL NOT NULL, sid INTEGER NOT NULL, PRIMARY KEY (net, start, sid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS long (net BLOB NOT NULL, sid INTEGER NOT NULL, PRIMARY KEY (net, sid)) WITHOUT ROWID;
""",)
#: Also in ``meta.version``, which older abuso versions check.
SCHEMA_VERSION = len(MIGRATIONS)


_FILE_COLUMNS = "path, dev, ino, size, mtime_ns, head, head_len, consumed, records, corrupt, tail"
_SESSION_COLUMNS = "sid, skey, user, nas, session, start, last, stop, started, cause, until"
_S_COLUMNS = ", ".join("s." + c for c in _SESSION_COLUMNS.split(", "))


class Session:
    """A session as folded from its events; ``end(grace)`` is where its window closes.

    ``until`` bounds a session without a Stop when its NAS said Accounting-On/Off:
    it ended by then at the latest (but maybe long before, so it stays open-ended).
    """

    __slots__ = ("sid", "skey", "user", "nas", "session", "start", "last", "stop", "started", "cause", "until",
                 "nets", "stored_nets", "stored_start", "stored", "dirty")

    def __init__(self, sid: int, skey: str, user: str | None, nas: str, session: str, start: float, last: float,
                 stop: float | None = None, started: bool = False, cause: str | None = None,
                 until: float | None = None, nets: Iterable[bytes] = (), stored: bool = False) -> None:
        self.sid, self.skey, self.user, self.nas, self.session = sid, skey, user, nas, session
        self.start, self.last, self.stop, self.started, self.cause = start, last, stop, started, cause
        self.until = until
        self.nets = set(nets)
        self.stored_nets = set(self.nets) if stored else set()
        self.stored_start = start if stored else None
        self.stored = stored
        self.dirty = not stored

    def merge(self, ev: Event) -> None:
        t = ev.time
        if ev.user and not self.user:
            self.user = ev.user
        if ev.kind == START:
            self.started = True
        elif ev.kind == STOP:
            self.stop = t if self.stop is None else max(self.stop, t)
            self.cause = None
        if t < self.start:
            self.start = t
        if ev.since is not None and ev.since < self.start:
            self.start = ev.since
        if t > self.last:
            self.last = t
        self.nets.update(ev.nets)
        self.dirty = True

    @classmethod
    def from_row(cls, r: tuple) -> Session:
        """From a row of ``_SESSION_COLUMNS``."""
        sid, skey, user, nas, session, start, last, stop, started, cause, until = r
        return cls(sid, skey, user, nas, session, start, last, stop, started=bool(started), cause=cause, until=until,
                   stored=True)

    def end(self, grace: float) -> float:
        if self.stop is not None:
            return self.stop
        end = self.last + grace
        return min(end, self.until) if self.until is not None else end


@dataclass
class RefreshStats:
    """What one refresh of the RADIUS index read."""

    files: int = 0
    files_read: int = 0
    bytes_read: int = 0
    records: int = 0
    corrupt: int = 0
    ignored: int = 0
    events: int = 0
    unreadable: list[str] = field(default_factory=list)
    rebuilt: bool = False
    seconds: float = 0.0

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "seconds"}
        d["seconds"] = round(self.seconds, 3)
        return d


@dataclass
class Lookup:
    """Result of one (address, time) lookup: ``status`` is matched, ambiguous or none."""

    status: str
    sessions: list[Session]
    reason: str

    @property
    def users(self) -> list[str | None]:
        seen: list[str | None] = []
        for s in self.sessions:
            if s.user not in seen:
                seen.append(s.user)
        return seen


class IndexBusy(Exception):
    """Another process held the index lock for longer than the timeout."""


class IndexNotReady(Exception):
    """The refresh ran out of time; what it read is saved and the next refresh continues."""

    def __init__(self, message: str, stats: RefreshStats) -> None:
        super().__init__(message)
        self.stats = stats


def _open_building(path: Path, zone: str) -> sqlite.Connection:
    """The index being built: resumed if it is ours and read with the same zone, else begun anew."""
    if path.exists():
        try:
            conn = _connect(path, synchronous="OFF")
            if _meta(conn) == {"version": str(SCHEMA_VERSION), "zone": zone}:
                conn.migrate("radius-index", MIGRATIONS)
                return conn
            conn.close()
        except (sqlite3.DatabaseError, sqlite.SchemaError):
            pass
        path.unlink()
    conn = _connect(path, synchronous="OFF")
    conn.migrate("radius-index", MIGRATIONS)
    conn.write_many("INSERT OR REPLACE INTO meta VALUES (?, ?)", [("version", str(SCHEMA_VERSION)), ("zone", zone)])
    return conn


def _connect(path: Path, synchronous: str = "NORMAL") -> sqlite.Connection:
    """The index for writing: 0640 (it names users), busy timeout (abuso/sqlite.py). Not WAL: a first build is
    renamed over the index, and WAL's ``-wal``/``-shm`` files would then outlive the file they belong to while a
    reader still has it open; one writer at a time is the ``.lock``'s job anyway."""
    conn = sqlite.connect(path, timeout=30, mode=0o640, wal=False, synchronous=synchronous)
    conn.execute("PRAGMA cache_size = -65536")
    return conn


def _meta(conn: sqlite3.Connection) -> dict[str, str]:
    """``version`` and ``zone`` of an index (empty for a file that is no index)."""
    try:
        return dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('version', 'zone')").fetchall())
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return {}
        raise


class RadiusIndex:
    """Sessions from RADIUS detail logs, kept in the SQLite file ``path``.

    ``refresh`` takes an exclusive lock (``path`` + ``.lock``) so that two
    worker processes starting together index once; a fresh build is written to
    a temporary file and renamed into place, so readers never see half an index.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._conn: sqlite.Connection | None = None
        self._plens: list[tuple[int, int]] = []
        self._maxdur = 0.0

    # -- refresh ---------------------------------------------------------------------------------------------
    def refresh(self, sources: Iterable[str | os.PathLike], pattern: str = "detail*", zone: str = "local",
                lock_timeout: float = 600.0, deadline: float | None = None) -> RefreshStats:
        """Bring the index up to date with ``sources`` (files or folder trees).

        ``zone`` is how date lines without a ``Timestamp`` attribute are read; an
        index built with another zone holds other times, so it is rebuilt.
        ``deadline`` (``time.monotonic()`` value) bounds the work: past it, what
        was read is saved and :class:`IndexNotReady` raised; the next refresh goes
        on from there. A per-message timeout can then never make a first build of
        gigabytes of logs start over for ever.
        """
        from .detail import zone_converter

        to_epoch = zone_converter(zone)
        if zone.lower() == "local":  # cron and procmail may not share TZ: "local" alone would hide that
            zone = f"local {time.tzname[0]}/{time.tzname[1]} {-time.timezone}"
        began = time.monotonic()
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        wait = lock_timeout if deadline is None else max(0.0, min(lock_timeout, deadline - began))
        with _locked(self.path.with_name(self.path.name + ".lock"), wait):
            stats = RefreshStats()
            conn = self._connect_existing(zone)
            if conn is not None:
                try:
                    _Refresher(conn, to_epoch, stats, os.path.abspath(self.path), deadline).run(sources, pattern)
                except sqlite3.OperationalError:  # locked, disk full: worth a retry, not a rebuild
                    raise
                except sqlite3.DatabaseError:  # not a database, malformed: rebuild it
                    stats = RefreshStats()
                    conn.close()
                    conn = None
                finally:
                    if conn is not None:
                        conn.close()  # without COMMIT: back to the last checkpoint
            if conn is None:
                stats.rebuilt = True
                self._build(sources, pattern, zone, to_epoch, stats, deadline)
        stats.seconds = time.monotonic() - began
        return stats

    def _build(self, sources: Iterable[str | os.PathLike], pattern: str, zone: str, to_epoch: Callable[..., float],
               stats: RefreshStats, deadline: float | None) -> None:
        """A whole new index, built beside the old one (resumed if a build was cut short) and renamed
        over it when complete: nobody ever looks anything up in half an index."""
        building = self.path.with_name(self.path.name + ".building")
        conn = _open_building(building, zone)
        try:
            _Refresher(conn, to_epoch, stats, os.path.abspath(self.path), deadline).run(sources, pattern)
            conn.close()
        except sqlite3.OperationalError:
            conn.close()
            raise
        except sqlite3.DatabaseError:
            conn.close()
            building.unlink(missing_ok=True)
            raise
        except BaseException:  # out of time, killed by a timeout: the last checkpoint is kept
            conn.close()
            raise
        fd = os.open(building, os.O_RDONLY)
        try:
            os.fsync(fd)  # synchronous=OFF while building: make it durable once, before it takes the real name
        finally:
            os.close(fd)
        os.replace(building, self.path)

    def _connect_existing(self, zone: str) -> sqlite.Connection | None:
        """The index if it exists, is ours, readable and read with ``zone``; None means rebuild it."""
        if not self.path.exists():
            return None
        try:
            conn = _connect(self.path)
            if _meta(conn) != {"version": str(SCHEMA_VERSION), "zone": zone}:
                conn.close()
                return None
            conn.migrate("radius-index", MIGRATIONS)  # an index made before schema_version: adopted as it is
            return conn
        except sqlite3.OperationalError:  # locked, disk full: worth a retry, not a rebuild
            raise
        except (sqlite3.DatabaseError, sqlite.SchemaError):
            return None

    # -- lookup ----------------------------------------------------------------------------------------------
    def open(self) -> None:
        if self._conn is not None:
            return
        if not self.path.exists():
            raise FileNotFoundError(errno.ENOENT, "RADIUS index not built yet", str(self.path))
        # Read-only: lookups must never take a write lock other processes wait for.
        conn = sqlite.connect(self.path, timeout=30, readonly=True)
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        self._plens = [tuple(p) for p in json.loads(meta.get("plens", "[]"))]
        self._maxdur = float(meta.get("maxdur", 0))
        self._conn = conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _keys(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[bytes]:
        bits = ip.max_prefixlen
        n = int(ip)
        keys = []
        for version, plen in self._plens:
            if version == ip.version:
                net = (n >> (bits - plen)) << (bits - plen)
                keys.append(bytes((plen,)) + net.to_bytes(bits // 8, "big"))
        return keys

    def lookup(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, t: float, slack: float = 0.0,
               grace: float = 3600.0) -> Lookup:
        """Who held ``ip`` at epoch ``t``: sessions whose [start, stop] (or [start, last seen + grace]
        while no Stop is known) contains ``t`` within ``slack`` seconds."""
        self.open()
        assert self._conn is not None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        keys = self._keys(ip)
        if not keys:
            return Lookup("none", [], f"no session in the RADIUS logs holds any IPv{ip.version} address")
        lo, hi = t - slack - min(self._maxdur, LONG) - grace, t + slack
        marks = ",".join("?" * len(keys))
        rows = self._conn.execute(
            f"SELECT {_S_COLUMNS} FROM nets n JOIN sessions s ON s.sid = n.sid"
            f" WHERE n.net IN ({marks}) AND n.start BETWEEN ? AND ?", (*keys, lo, hi)).fetchall()
        rows += self._conn.execute(
            f"SELECT {_S_COLUMNS} FROM long l JOIN sessions s ON s.sid = l.sid"
            f" WHERE l.net IN ({marks}) AND s.start <= ?", (*keys, hi)).fetchall()
        found = [Session.from_row(r) for r in {r[0]: r for r in rows}.values()]
        cands = [s for s in found if s.start - slack <= t <= s.end(grace) + slack]
        # A session without a Stop ended, at the latest, when another session on the address began.
        cands = [a for a in cands if a.stop is not None
                 or not any(a.last < b.start <= t + slack and b.sid != a.sid for b in found)]
        cands.sort(key=lambda s: s.start)
        users = {s.user for s in cands}
        if len(users) > 1:
            names = ", ".join(sorted(str(u) for u in users))
            return Lookup("ambiguous", cands, f"{len(cands)} sessions of different users cover {ip} then: {names}")
        if cands:
            s = cands[-1]
            how = "Stop" if s.stop is not None else f"no Stop yet, last seen {_ago(t - s.last)} before"
            return Lookup("matched", cands, f"session {s.session} on {s.nas or '?'} ({how})")
        return Lookup("none", [], self._near_miss(ip, keys, t, grace))

    def networks(self, s: Session) -> list[str]:
        """The addresses and prefixes a session held (for the incident's ``radius`` details)."""
        assert self._conn is not None
        keys = [k for (k,) in self._conn.execute("SELECT net FROM nets WHERE sid = ?", (s.sid,))]
        return sorted(str(key_network(k)) for k in keys)

    def _near_miss(self, ip: object, keys: list[bytes], t: float, grace: float) -> str:
        """Why nothing matched, naming the nearest session before and after: what a human checks next."""
        assert self._conn is not None
        before = after = None
        for k in keys:
            r = self._conn.execute(
                f"SELECT {_S_COLUMNS} FROM nets n JOIN sessions s ON s.sid = n.sid WHERE n.net = ? AND n.start <= ?"
                " ORDER BY n.start DESC LIMIT 1", (k, t)).fetchone()
            if r and (before is None or r[5] > before.start):
                before = Session.from_row(r)
            r = self._conn.execute(
                f"SELECT {_S_COLUMNS} FROM nets n JOIN sessions s ON s.sid = n.sid WHERE n.net = ? AND n.start > ?"
                " ORDER BY n.start LIMIT 1", (k, t)).fetchone()
            if r and (after is None or r[5] < after.start):
                after = Session.from_row(r)
        if before is None and after is None:
            return f"no session in the RADIUS logs for {ip}"
        parts = []
        if before is not None:
            if before.stop is not None:
                parts.append(f"last session before (user {before.user}) stopped {_ago(t - before.stop)} earlier")
            elif before.until is not None and before.until < t:
                parts.append(f"last session before (user {before.user}) has no Stop; its NAS restarted "
                             f"{_ago(t - before.until)} earlier")
            else:
                parts.append(f"last session before (user {before.user}) has no Stop and was last seen "
                             f"{_ago(t - before.last)} earlier, beyond the grace of {_ago(grace)}")
        if after is not None:
            parts.append(f"next session (user {after.user}) started {_ago(after.start - t)} later")
        return f"no session for {ip} at that time: " + "; ".join(parts)


def _ago(seconds: float) -> str:
    seconds = int(abs(seconds))
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    if d:
        return f"{d}d {h}h"
    if h:
        return f"{h}h {m}m"
    if m:
        return f"{m}m {s}s"
    return f"{s}s"


@contextmanager
def _locked(lock_path: Path, timeout: float) -> Iterator[None]:
    import fcntl

    with open(lock_path, "a+b") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IndexBusy(f"{lock_path} held by another process for more than {timeout:.0f}s")
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# -- reading files -------------------------------------------------------------------------------------------

def _walk(sources: Iterable[str | os.PathLike], pattern: str, errors: list[str],
          exclude: str = "") -> list[tuple[str, os.stat_result]]:
    """Regular files to index, oldest first (rotation order); a named file is taken whatever its name.

    Folders that cannot be read are listed in ``errors``: a silently missing NAS would look like "no session".
    """
    found: dict[str, os.stat_result] = {}
    for src in sources:
        src = os.fspath(src)
        if os.path.isdir(src):
            def unreadable(e: OSError) -> None:
                errors.append(f"{e.filename}: {e.strerror}")

            for folder, dirs, names in os.walk(src, onerror=unreadable):
                dirs.sort()
                for name in names:
                    p = os.path.join(folder, name)
                    if fnmatch.fnmatch(name, pattern) and not (exclude and os.path.abspath(p).startswith(exclude)):
                        try:
                            st = os.stat(p)
                        except OSError:
                            continue
                        if _isreg(st):
                            found[p] = st
        else:
            st = os.stat(src)  # a missing named file is the caller's problem, not silence
            if _isreg(st):
                found[src] = st
    return sorted(found.items(), key=lambda kv: (kv[1].st_mtime_ns, kv[0]))


def _isreg(st: os.stat_result) -> bool:
    import stat

    return stat.S_ISREG(st.st_mode)


def _open(path: str) -> tuple[io.BufferedIOBase, bool]:
    """The decompressed byte stream of ``path``; gzip recognised by its magic, not its name."""
    fh = open(path, "rb")
    magic = fh.read(2)
    fh.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=fh, mode="rb"), True
    return fh, False


def _seek_tail(stream: io.BufferedIOBase, gz: bool, head: bytes, offset: int) -> tuple[bytes, bytes] | None:
    """Position ``stream`` at ``offset`` (``head`` already read); return the HEAD bytes before
    ``offset`` and what of ``head`` lies after it, or None if the stream is shorter."""
    if offset <= len(head):
        return head[max(0, offset - HEAD):offset], head[offset:]
    if not gz:
        stream.seek(offset - HEAD)
        tail = stream.read(HEAD)
        return (tail, b"") if len(tail) == HEAD else None
    keep, left = head, offset - len(head)
    while left > 0:  # gzip cannot seek: decompress and drop, keeping the last HEAD bytes
        got = stream.read(min(left, CHUNK))
        if not got:
            return None
        left -= len(got)
        keep = (keep + got[-HEAD:])[-HEAD:]
    return keep, b""


def _cut(buf: bytes) -> int:
    """Length of the leading part of ``buf`` that ends with a blank line (0 if none)."""
    a = buf.rfind(b"\n\n")
    b = buf.rfind(b"\n\r\n")
    return max(a + 2 if a >= 0 else 0, b + 3 if b >= 0 else 0)


class _Refresher:
    """One refresh: walks the sources, parses what is new, folds events into sessions."""

    def __init__(self, conn: sqlite.Connection, to_epoch: Callable[..., float], stats: RefreshStats,
                 exclude: str = "", deadline: float | None = None) -> None:
        self.conn, self.to_epoch, self.stats, self.deadline = conn, to_epoch, stats, deadline
        #: The index's own files (index, lock, build in progress) if they live among the logs.
        self.exclude = exclude
        conn.begin()
        #: Nothing stored yet: a session key not met in this run needs no look-up.
        self.fresh = conn.execute("SELECT 1 FROM sessions LIMIT 1").fetchone() is None
        self.saved = time.monotonic()
        self.open: dict[str, list[Session]] = {}
        self.evicted: set[str] = set()
        self.next_sid = (conn.execute("SELECT max(sid) FROM sessions").fetchone()[0] or 0) + 1
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        self.plens = {tuple(p) for p in json.loads(meta.get("plens", "[]"))}
        self.maxdur = float(meta.get("maxdur", 0))

    def run(self, sources: Iterable[str | os.PathLike], pattern: str) -> None:
        """Read what is new and COMMIT; raises IndexNotReady (after saving) when past the deadline."""
        files = _walk(sources, pattern, self.stats.unreadable, self.exclude)
        known = {r[0]: r for r in self.conn.execute(f"SELECT {_FILE_COLUMNS} FROM files")}
        self.stats.files = len(files)
        for done, (path, st) in enumerate(files):
            if self.deadline is not None and time.monotonic() >= self.deadline and self.stats.bytes_read:
                self.checkpoint()  # (every run reads something first: a late start still makes progress)
                raise IndexNotReady(f"reading the RADIUS logs: {done} of {len(files)} files, "
                                    f"{self.stats.bytes_read / 1e6:.0f} MB read in this run; the next run goes on",
                                    self.stats)
            row = known.get(path)
            if row and (row[1], row[2], row[3], row[4]) == (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns):
                continue
            try:
                self._read(path, st, row)
            except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as e:
                self.stats.unreadable.append(f"{path}: {e}")
        current = {p for p, _ in files}
        self.conn.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in known if p not in current])
        self._save_sessions()
        self.conn.commit_now()

    def _save_sessions(self) -> None:
        for rows in self.open.values():
            for s in rows:
                self._write(s)
        if self.stats.files_read or self.fresh:  # an unchanged tree costs no write (procmail runs this per message)
            self.conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [
                ("plens", json.dumps(sorted(self.plens))), ("maxdur", repr(self.maxdur))])

    def checkpoint(self) -> None:
        """Make what was read so far durable, so that an interrupted refresh resumes from here."""
        self._save_sessions()
        self.conn.commit_now()
        self.conn.begin()
        self.saved = time.monotonic()

    def _read(self, path: str, st: os.stat_result, row: tuple | None) -> None:
        """Parse what is new in one file: from where the same stream was left, else from the start.

        "The same stream" means the first bytes and the last bytes read so far
        are unchanged, whatever the file is called now and whether it was
        gzipped since: a rotated log is not parsed twice, an edited one is.
        """
        stream, gz = _open(path)
        with stream:
            head = stream.read(HEAD)
            digest = hashlib.sha256(head).digest()
            prior = row if row is not None and row[5] == hashlib.sha256(head[:row[6]]).digest() else None
            if prior is None:  # new path or new content: a stream we read under another name (rotation)?
                prior = self.conn.execute(f"SELECT {_FILE_COLUMNS} FROM files WHERE head = ? AND head_len = ?",
                                          (digest, len(head))).fetchone()
            offset, buf, last = 0, head, b""
            if prior is not None and prior[7] and (gz or st.st_size >= prior[7]):
                found = _seek_tail(stream, gz, head, prior[7])
                if found is not None and hashlib.sha256(found[0]).digest() == prior[10]:
                    offset, last, buf = prior[7], found[0], found[1]
                else:
                    stream.seek(0)
                    buf = b""
            records, corrupt = (prior[8], prior[9]) if offset else (0, 0)
            self.stats.files_read += 1
            self.stats.bytes_read += len(buf)
            consumed = offset
            while True:
                data = stream.read(CHUNK)
                self.stats.bytes_read += len(data)
                buf += data
                cut = _cut(buf)
                if not data:
                    break
                if cut == 0:
                    if len(buf) < MAX_RECORD:
                        continue
                    cut = len(buf)
                block, buf = buf[:cut], buf[cut:]
                n, bad = self._fold(block)
                records, corrupt, consumed, last = records + n, corrupt + bad, consumed + cut, (last + block[-HEAD:])
                last = last[-HEAD:]
                now = time.monotonic()
                if now - self.saved >= CHECKPOINT or (self.deadline is not None and now >= self.deadline):
                    # Size and mtime unknown (-1): the next refresh sees a changed file and resumes at ``consumed``.
                    self._save_file(path, st, digest, len(head), consumed, records, corrupt, last, complete=False)
                    self.checkpoint()
                    if self.deadline is not None and now >= self.deadline:
                        raise IndexNotReady(f"reading the RADIUS logs: in {path}, {consumed / 1e6:.0f} MB read;"
                                            " the next run goes on", self.stats)
            block = buf[:cut]
            n, bad = self._fold(block)
            records, corrupt, consumed, last = records + n, corrupt + bad, consumed + cut, (last + block)[-HEAD:]
            # The unterminated tail (minus a partial last line) is folded but not counted as consumed:
            # if it was half-written, it is read again, whole, next time.
            rest = buf[cut:]
            self._fold(rest[:rest.rfind(b"\n") + 1])
        self._save_file(path, st, digest, len(head), consumed, records, corrupt, last, complete=True)

    def _save_file(self, path: str, st: os.stat_result, digest: bytes, head_len: int, consumed: int, records: int,
                   corrupt: int, last: bytes, complete: bool) -> None:
        size, mtime = (st.st_size, st.st_mtime_ns) if complete else (-1, -1)
        self.conn.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          (path, st.st_dev, st.st_ino, size, mtime, digest, head_len, consumed, records, corrupt,
                           hashlib.sha256(last).digest()))

    def _fold(self, block: bytes) -> tuple[int, int]:
        if not block:
            return 0, 0
        res = parse_block(block, self.to_epoch)
        self.stats.records += res.records
        self.stats.corrupt += res.corrupt
        self.stats.ignored += res.ignored
        self.stats.events += len(res.events)
        for ev in res.events:
            self.apply(ev)
        return res.records, res.corrupt

    # -- folding events into sessions ------------------------------------------------------------------------
    def apply(self, ev: Event) -> None:
        if ev.kind in (ACCT_ON, ACCT_OFF):
            self._nas_restart(ev)
            return
        rows = self.open.get(ev.skey)
        if rows is None:
            rows = self._load(ev.skey) if (not self.fresh or ev.skey in self.evicted) else []
            self.open[ev.skey] = rows
        s = _pick(rows, ev)
        if s is None:
            s = Session(self.next_sid, ev.skey, ev.user, ev.nas, ev.session, ev.time, ev.time)
            self.next_sid += 1
            rows.append(s)
            rows.sort(key=lambda r: r.start)
        s.merge(ev)
        if ev.kind == STOP and all(r.stop is not None for r in rows):
            # Finished: write it out so memory holds only sessions still running.
            for r in rows:
                self._write(r)
            del self.open[ev.skey]
            if self.fresh:
                self.evicted.add(ev.skey)

    def _load(self, skey: str) -> list[Session]:
        out = []
        for r in self.conn.execute(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE skey = ? ORDER BY start", (skey,)):
            s = Session.from_row(r)
            s.nets = {k for (k,) in self.conn.execute("SELECT net FROM nets WHERE sid = ?", (s.sid,))}
            s.stored_nets = set(s.nets)
            out.append(s)
        return out

    def _nas_restart(self, ev: Event) -> None:
        """Accounting-On/Off: the NAS (re)booted, so every session it still had open ended by then."""
        if not ev.nas:
            return
        t = ev.time
        for rows in self.open.values():
            for s in rows:
                if s.nas == ev.nas and s.stop is None and s.last <= t and (s.until is None or t < s.until):
                    s.until, s.cause, s.dirty = t, "nas-restart", True
        if not self.fresh:
            self.conn.execute("UPDATE sessions SET until = ?, cause = 'nas-restart' WHERE nas = ? AND stop IS NULL"
                              " AND last <= ? AND (until IS NULL OR until > ?)", (t, ev.nas, t, t))

    def _write(self, s: Session) -> None:
        if not s.dirty or not s.nets:  # a session that never had an address cannot be matched
            return
        c = self.conn
        if not s.stored:
            c.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (s.sid, s.skey, s.user, s.nas, s.session, s.start, s.last, s.stop, int(s.started), s.cause,
                       s.until))
        else:
            c.execute("UPDATE sessions SET user = ?, start = ?, last = ?, stop = ?, started = ?, cause = ?, until = ?"
                      " WHERE sid = ?", (s.user, s.start, s.last, s.stop, int(s.started), s.cause, s.until, s.sid))
            if s.stored_start != s.start:
                c.executemany("UPDATE nets SET start = ? WHERE net = ? AND start = ? AND sid = ?",
                              [(s.start, k, s.stored_start, s.sid) for k in s.stored_nets])
        new = s.nets - s.stored_nets
        if new:
            c.executemany("INSERT OR IGNORE INTO nets VALUES (?, ?, ?)", [(k, s.start, s.sid) for k in new])
            for k in new:
                self.plens.add((4 if len(k) == 5 else 6, k[0]))
        s.stored, s.stored_start, s.stored_nets, s.dirty = True, s.start, set(s.nets), False
        dur = (s.stop if s.stop is not None else s.last) - s.start
        if dur > LONG:
            c.executemany("INSERT OR IGNORE INTO long VALUES (?, ?)", [(k, s.sid) for k in s.nets])
        elif dur > self.maxdur:
            self.maxdur = dur


def _pick(rows: list[Session], ev: Event) -> Session | None:
    """The session ``ev`` belongs to among those sharing its key, or None for a new one.

    NASes reuse Acct-Session-Id (counters reset on reboot): a Start after the
    previous session's Stop, or a second Start, begins a new session. A record
    read again matches the session it built, so re-reading changes nothing.
    """
    if not rows:
        return None
    best = rows[0]
    for r in rows:
        if r.start <= ev.time + TOL:
            best = r
    t = ev.time
    if best.stop is not None and t > best.stop + TOL:
        if ev.kind != STOP or ev.since is None or ev.since > best.stop - TOL:
            return None
    if ev.kind == START and best.started and abs(t - best.start) > TOL and t > best.start:
        return None
    if best.stop is None and best.until is not None and t > best.until + TOL:
        return None  # its NAS restarted since: the same Acct-Session-Id now is another session
    return best
