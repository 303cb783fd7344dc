"""The report store: raw bytes and what abuso made of them, on disk, plus a searchable index.

Layout under the store folder::

    index.sqlite                      (unless the index is at a url:)
    2026/11/22/<sha256>.eml           raw message, byte for byte (re-processable with `abuso run`)
    2026/11/22/<sha256>.json          normalized text, incidents, verdicts, notes
    empty/2026/11/22/<sha256>.eml     reports without incidents, by their Date (else arrival)

The day is the earliest incident's (UTC). Names are the digest of the raw bytes and
never come from the message; the same bytes are stored once. Every file is written
to a temporary name in its final folder, fsynced, then renamed, so a crash leaves
either the whole file or none under the final name; a report is in the index only
after its files are complete, and the index decides what is a duplicate. A writer
killed mid-write leaves a hidden ``.<digest>.*.tmp`` file, never read by abuso; the
next run stores the report again. Sweep them with
``find STORE -name '.*.tmp' -mtime +1 -delete``.
"""

from __future__ import annotations

import json
import os
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..output.encode import dumps_with, incidents_json
from .index import Index, parse_time_text, time_text, utc

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any, Iterator

FILE_MODE = 0o640
DIR_MODE = 0o750


def digest_of(raw: bytes) -> str:
    """The SHA-256 of ``raw`` in hex. A process's first message is digested by the interpreter's own SHA-256:
    importing hashlib loads OpenSSL, ~5 ms of a piped message's store; the later ones of a batch by
    OpenSSL's, ~2.5x faster on a 10 KB message. The same digest either way."""
    global _first
    if _sha256 is None and _first:
        _first = False
        own = _own_sha256()
        if own is not None:
            return own(raw).hexdigest()
    return _openssl_sha256()(raw).hexdigest()


#: Whether :func:`digest_of` has not been called yet in this process; hashlib's sha256 once it was.
_first = True
_sha256: Any = None


def _own_sha256() -> Any:
    """The interpreter's built-in SHA-256 (``_sha2`` from Python 3.12, ``_sha256`` before), or None when
    this build has none."""
    for name in ("_sha2", "_sha256"):
        try:
            return __import__(name).sha256
        except (ImportError, AttributeError):
            continue
    return None


def _openssl_sha256() -> Any:
    global _sha256
    if _sha256 is None:
        import hashlib

        _sha256 = hashlib.sha256
    return _sha256


@dataclass
class StoredReport:
    """A report read back from the store: the original bytes and the saved analysis."""

    digest: str
    path: Path
    raw: bytes
    meta: dict[str, Any]


@dataclass
class _Held:
    """A report put while holding: where it goes, and its files under their temporary names."""

    location: str
    report: Any
    stored: datetime
    files: list[tuple[Path, int, Path]]            # (temporary, its open descriptor or -1, final)


class Store:
    """Files plus index. Open with :meth:`open`; safe for several processes at once.

    ``remember(key, period)`` is a small shared key/value memory for rate limits
    (the mailer answers a sender at most once per period). It claims the key
    atomically, so two workers (or machines sharing a PostgreSQL index) never both
    get True; ``release(key)`` gives the claim back when the action failed::

        if store.remember(f"mailer:{sender}", 86400):   # first time in 24 h
            try:
                send_answer()
            except Exception:
                store.release(f"mailer:{sender}")       # the retry may answer
                raise
    """

    def __init__(self, root: Path, index: Index, fsync: bool = True) -> None:
        self.root = root
        self.index = index
        #: fsync each file and its folder before the index names it (durable across a power cut).
        #: Off, renames stay atomic against crashes but the OS decides when data reaches the disk.
        self.fsync = fsync
        #: This writer's marker under .pending/: (descriptor, path, pid), made on the first put.
        self._marker: tuple[int, Path, int] | None = None
        #: Reports put while holding (:meth:`hold`), by digest: files under temporary names, not yet indexed.
        self._held: dict[str, _Held] = {}
        self._holding = False

    @classmethod
    def open(cls, path: str | Path | None = None, url: str | None = None, base: Path | None = None,
             timeout: float = 30.0, create: bool = True, fsync: bool = True,
             password: str | None = None) -> Store:
        """``create=False`` opens an existing store only (for searching)."""
        root = Path(path or "~/abuso/store").expanduser()
        if not root.is_absolute():
            root = (base or Path.cwd()) / root
        if create:
            _makedirs(root)
        store = cls(root, Index.open(url, root / "index.sqlite", base, timeout, create, password, fsync),
                    fsync)
        if create:
            store.recover()
        return store

    # -- crash safety ---------------------------------------------------------------
    # A report's files are written before its index row. Between the two, a marker under ``.pending/`` holds
    # its location: a crash there (kill -9, a full disk failing the insert) leaves the marker, and the next
    # writer to open the store removes the files the index never named. The message itself was not
    # marked done (nor answered 250 over LMTP), so it comes again and is stored whole.
    # One marker per writer (``writer.<pid>.<random>``), locked (flock) for the writer's life and rewritten
    # per report: a file made and removed per report cost a fifth of the store's time on a batch.

    def _pending(self) -> Path:
        return self.root / ".pending"

    def recover(self) -> int:
        """Make files and index agree after a crash; returns how many half-stored reports were removed.

        A marker whose lock can be taken belongs to a writer that died (or closed it after a failure);
        one still locked is a live writer's, left alone. An empty marker is a writer that finished."""
        import fcntl

        folder = self._pending()
        try:
            markers = sorted(folder.iterdir())
        except FileNotFoundError:
            return 0
        removed = 0
        for marker in markers:
            try:
                fd = os.open(marker, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            except OSError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue                          # its writer is alive and storing
                text = b""
                while chunk := os.read(fd, 1 << 16):
                    text += chunk
                for location in text.decode("ascii", "replace").split():   # several after a group commit
                    digest = location.rpartition("/")[2]
                    if (len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)
                            and ".." not in location and self.index.has(digest) is None):
                        for ext in (".eml", ".json"):
                            with suppress(FileNotFoundError):
                                (self.root / location).with_name(digest + ext).unlink()
                        removed += 1
                with suppress(FileNotFoundError):
                    marker.unlink()
            finally:
                os.close(fd)
        return removed

    def _intend(self, location: str) -> None:
        """Say in this writer's marker (made and locked on first use) which report it is storing (which
        reports, one location a line, in a group commit)."""
        import fcntl

        if self._marker is None or self._marker[2] != os.getpid():  # a forked child has its own
            folder = self._pending()
            folder.mkdir(exist_ok=True, mode=0o750)
            # os.urandom, not secrets.token_hex (the same bytes): its import costs a piped message ~3 ms.
            path = folder / f"writer.{os.getpid()}.{os.urandom(4).hex()}"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o640)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._marker = (fd, path, os.getpid())
        fd = self._marker[0]
        os.ftruncate(fd, 0)
        # Not fsynced: the marker serves a writer's crash (kill -9, a full disk), after which the page cache
        # still holds it. A power cut may lose it; then at worst a half-stored report's files stay unnamed by
        # the index (the message was not marked done: it comes again and is stored whole).
        os.pwrite(fd, location.encode("ascii"), 0)

    def _done(self) -> None:
        """The report is in the index: nothing of it to repair (a stale location is harmless: indexed)."""
        if self._marker is not None:
            os.ftruncate(self._marker[0], 0)

    def _abandon(self) -> None:
        """A report failed half-way: its marker is left, unlocked, for the next writer to repair."""
        if self._marker is not None:
            fd, self._marker = self._marker[0], None
            os.close(fd)

    def _close_marker(self) -> None:
        if self._marker is not None and self._marker[2] == os.getpid():
            fd, path, _ = self._marker
            self._marker = None
            with suppress(OSError):
                if os.fstat(fd).st_size == 0:
                    path.unlink()
            os.close(fd)

    # -- writing -----------------------------------------------------------------

    def location(self, report: Any, digest: str) -> str:
        """Where a report goes, relative to the root and without extension: ``YYYY/MM/DD/<digest>``."""
        date = utc(report.date) if report.date else None
        if report.incidents:
            day = _earliest(report.incidents) or date
            prefix = ""
        else:
            day = date
            prefix = "empty/"
        day = day or datetime.now(timezone.utc)
        return f"{prefix}{day.year:04d}/{day.month:02d}/{day.day:02d}/{digest}"

    def put(self, report: Any, digest: str | None = None, location: str | None = None,
            update: bool = False) -> tuple[str, bool]:
        """Store a report unless its bytes are already stored; (location, newly stored).

        ``update=True`` re-processes: a report already stored gets this analysis (JSON file,
        index rows) and moves if its day changed (e.g. out of ``empty/`` once a parser learnt it).
        """
        digest = digest or digest_of(report.raw)
        if update and self._held:
            self.commit()                     # re-processing rewrites in place: nothing of it may be held
        found = self.has(digest)
        stored = datetime.now(timezone.utc)
        if found is not None:
            if not update:
                return found, False
            moved = location or self.location(report, digest)
            self.write_files(moved, report, digest, stored, raw=moved != found)
            self.index.add(digest, moved, report, stored, replace=True)
            if moved != found:  # the index names the new place: the old files can go
                for ext in (".eml", ".json"):
                    with suppress(FileNotFoundError):
                        (self.root / (found + ext)).unlink()
            return moved, False
        location = location or self.location(report, digest)
        if self._holding and not update:
            self._hold(location, report, digest, stored)
            return location, True
        self._intend(location)
        try:
            self.write_files(location, report, digest, stored)
            added = self.index.add(digest, location, report, stored, replace=update)
        except BaseException:
            self._abandon()                   # the marker stays: the next writer to open the store repairs
            raise
        self._done()
        if not added:  # another process won the race
            return self.index.has(digest) or location, False
        return location, True

    def write_files(self, location: str, report: Any, digest: str, stored: datetime, raw: bool = True) -> None:
        final = self.root / location
        _makedirs(final.parent)
        if raw:
            _atomic_write(final.with_name(digest + ".eml"), report.raw, self.fsync)
        _atomic_write(final.with_name(digest + ".json"), _meta_bytes(report, digest, stored), self.fsync)
        if self.fsync:
            _fsync_dir(final.parent)

    def has(self, digest: str) -> str | None:
        """Where a report with this digest is stored (or held, see :meth:`hold`), or None."""
        held = self._held.get(digest)
        return held.location if held is not None else self.index.has(digest)

    # -- group commit ----------------------------------------------------------------
    # fsync waits for the disk: ~2-10 ms a report (its two files and their folder), as long as the
    # analysis of a report itself. A batch worker holds the reports of a chunk of messages and commits
    # them together, before it says any of those messages is done: one disk wait for the chunk, one
    # index transaction. The durability order stays the same: files whole and on disk, then renamed,
    # then named by the index.

    def hold(self) -> None:
        """From now on :meth:`put` writes a new report's files under temporary names and returns at once;
        :meth:`commit` makes every held report durable and indexes them in one transaction. A held report
        counts as stored (:meth:`has`) for this Store only; its message must not be marked done before
        the commit. Re-processing (``update=True``) is never held."""
        self._holding = True

    @property
    def held(self) -> int:
        """Reports held (put, not yet committed)."""
        return len(self._held)

    def _hold(self, location: str, report: Any, digest: str, stored: datetime) -> None:
        final = self.root / location
        _makedirs(final.parent)
        files: list[tuple[Path, int, Path]] = []
        try:
            for path, data in ((final.with_name(digest + ".eml"), report.raw),
                               (final.with_name(digest + ".json"), _meta_bytes(report, digest, stored))):
                files.append((*_open_temp(path, data), path))
        except BaseException:
            for tmp, fd, _ in files:
                _discard(tmp, fd)
            raise
        self._held[digest] = _Held(location, report, stored, files)

    def commit(self) -> int:
        """Make every held report durable, then index them in one transaction; how many were new (another
        writer may have stored the same bytes meanwhile). On failure none of them is stored and the error
        is raised: their messages must be retried."""
        if not self._held:
            return 0
        held, self._held = list(self._held.items()), {}
        try:
            self._intend("\n".join(h.location for _, h in held))
            if self.fsync:
                _fsync_all([fd for _, h in held for _, fd, _ in h.files])
            for _, h in held:
                for k, (tmp, fd, path) in enumerate(h.files):
                    h.files[k] = (tmp, -1, path)
                    os.close(fd)
            for _, h in held:
                for tmp, _, path in h.files:
                    os.replace(tmp, path)
            if self.fsync:
                for folder in sorted({(self.root / h.location).parent for _, h in held}):
                    _fsync_dir(folder)
            added = self.index.add_many([(digest, h.location, h.report, h.stored) for digest, h in held])
        except BaseException:
            for _, h in held:
                for tmp, fd, _ in h.files:
                    _discard(tmp, fd)                 # gone already once renamed
            self._abandon()                   # renamed files the index lacks: the next writer to open repairs
            raise
        self._done()
        return sum(added)

    # -- reading -----------------------------------------------------------------

    def get(self, digest: str) -> StoredReport | None:
        """A stored report by digest (None if the index does not know it)."""
        if not (len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
            raise ValueError("a digest is 64 lowercase hex digits")
        location = self.index.has(digest)
        if location is None:
            return None
        base = self.root / location
        raw = base.with_name(digest + ".eml").read_bytes()
        meta = json.loads(base.with_name(digest + ".json").read_text(encoding="utf-8"))
        return StoredReport(digest, base.with_name(digest + ".eml"), raw, meta)

    def search(self, **criteria: Any) -> list[dict[str, Any]]:
        """See :meth:`Index.search`; each row gets ``file``, the absolute path of its raw message."""
        return list(self.rows(**criteria))

    def rows(self, **criteria: Any) -> Iterator[dict[str, Any]]:
        """:meth:`search`, streamed (see :meth:`Index.rows`)."""
        root = str(self.root)
        for row in self.index.rows(**criteria):
            row["file"] = os.path.join(root, row["path"] + ".eml")   # str(root / …) for the store's own paths
            yield row

    def search_count(self, **criteria: Any) -> int:
        """See :meth:`Index.search_count`."""
        return self.index.search_count(**criteria)

    def remember(self, key: str, period: float) -> bool:
        """True the first time ``key`` is asked for in ``period`` seconds (and remembers it); else False."""
        return self.index.remember(key, period)

    def release(self, key: str) -> None:
        """Forget ``key`` at once (undo a :meth:`remember` whose action failed)."""
        self.index.release(key)

    def close(self) -> None:
        """Commit what is held, then close; the index closes even when the commit fails (then raised)."""
        try:
            self.commit()
        finally:
            self._close_marker()
            self.index.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _earliest(incidents: Any) -> datetime | None:
    """The earliest incident time in UTC (None without one that has a UTC reading): the earliest time
    converted, one conversion instead of one per incident; the plain reading when that one has none (out of
    year 1..9999 in UTC) or the times do not compare (a naive one)."""
    times = [i.time for i in incidents if i.time is not None]
    if not times:
        return None
    try:
        first = utc(min(times))
    except TypeError:
        first = None
    if first is not None:
        return first
    converted = [u for u in map(utc, times) if u]
    return min(converted) if converted else None


def _meta_bytes(report: Any, digest: str, stored: datetime) -> bytes:
    msg = report.message
    meta = {
        "digest": digest,
        "stored": time_text(stored),
        "origin": report.origin,
        "message_id": report.message_id,
        "subject": report.subject,
        "sender": report.sender,
        "date": report.date.isoformat() if report.date else None,
        "valid": report.valid,
        "incidents": None,   # written by dumps_with: the incidents' text, made once, shared with the JSON output
        "verdicts": {n: str(v) for n, v in report.verdicts.items()},
        "filtered": report.filtered,
        "dropped": [{"filter": d.filter, "reason": d.reason, "incident": d.incident.to_dict()}
                    for d in report.dropped],
        "notes": {k: v for k, v in report.notes.items() if k not in ("store", "explain")},  # explain: a rendering
        "problems": list(getattr(msg, "problems", []) or []),
        "text": msg.text if msg is not None else None,
    }
    # A lone surrogate (undecodable header bytes) is written as its JSON escape, which reads back the same.
    # One line, no indent: json's C encoder then does the work (indented, it falls back to pure Python and
    # cost more than everything else the store does; `jq . FILE` shows it indented).
    return dumps_with(meta, "incidents", incidents_json(report)).encode("utf-8", "backslashreplace")


def _makedirs(path: Path) -> None:
    """mkdir -p with DIR_MODE on every folder it creates, whatever the umask."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:  # another worker made it first
            continue
        os.chmod(d, DIR_MODE)


def _atomic_write(path: Path, data: bytes, sync: bool = True) -> None:
    tmp, fd = _open_temp(path, data)
    try:
        if sync:
            os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        _discard(tmp, fd)
        raise


def _open_temp(path: Path, data: bytes) -> tuple[Path, int]:
    """``data`` in a new hidden temporary file beside ``path``: its name, and its descriptor, still open (an
    fsync must come through a descriptor open since the write: Linux reports a failed write-back only to
    those)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        _discard(tmp, fd)
        raise
    return tmp, fd


def _fsync_all(fds: list[int]) -> None:
    """fsync every descriptor, all at once from a few threads: the file system folds fsyncs that wait
    together into one journal commit, where one after the other each waits for its own. The first failure
    is raised once every one is done. The threads are this process's, kept from one commit to the next:
    starting 16 threads per commit cost ~3 ms of CPU, three times the fsyncs' own."""
    if len(fds) <= 1:
        for fd in fds:
            os.fsync(fd)
        return
    pool = _fsync_pool()
    for done in [pool.submit(os.fsync, fd) for fd in fds]:
        done.result()


#: (pid, pool) of :func:`_fsync_pool`: a forked child gets a pool of its own (its parent's threads are not
#: there).
_POOL: tuple[int, Any] | None = None
#: At most this many fsyncs wait at once (a group commit holds two files per report).
FSYNC_THREADS = 16


def _fsync_pool() -> Any:
    global _POOL
    if _POOL is None or _POOL[0] != os.getpid():
        from concurrent.futures import ThreadPoolExecutor

        _POOL = (os.getpid(), ThreadPoolExecutor(FSYNC_THREADS, thread_name_prefix="abuso-fsync"))
    return _POOL[1]


def _discard(tmp: Path, fd: int = -1) -> None:
    """Close (when open) and remove a temporary file, quietly: a failure is on its way out already."""
    if fd >= 0:
        with suppress(OSError):
            os.close(fd)
    with suppress(OSError):
        os.unlink(tmp)


def _fsync_dir(path: Path) -> None:
    """Make the renames durable (a power cut after rename must not lose the file)."""
    with suppress(OSError):
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


__all__ = ["Store", "StoredReport", "digest_of", "parse_time_text"]
