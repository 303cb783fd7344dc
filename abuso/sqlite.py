"""The one way abuso opens and changes the SQLite files it keeps.

Store index (``storage/index.py``), RADIUS index (``radius/index.py``), mailer state
(``processors/mailer/state.py``) and mailbox state (``readers/mailbox_state.py``) all come here for:

- :func:`connect`: the parent folder made, a new file created with ``mode`` (0640: some of these files name
  people) *before* SQLite opens it, a busy timeout, WAL where the file is on a local file system (WAL needs
  shared memory, which NFS and SMB do not give: there the rollback journal stays), autocommit (transactions
  are explicit), and the switch to WAL retried: SQLite answers ``database is locked`` at once, without waiting
  for its busy timeout, when two processes open a new file together and both switch it.
- :meth:`Connection.transaction`: ``BEGIN IMMEDIATE`` (the write lock up front, so two writers queue instead
  of deadlocking) and ``COMMIT``, each retried while the database is locked, until the connection's timeout;
  nested uses join the outer transaction.
- :meth:`Connection.migrate`: a ``schema_version`` table (one row per kind of file) and ordered migrations,
  applied once, in one transaction, whoever of several processes gets there first. A file written by a newer
  abuso is refused with a clear message; a file of another kind (the mailer pointed at the store index) too.

Writers that outlive the timeout get the driver's ``OperationalError``; each caller turns it into its own
:class:`~abuso.errors.TransientError` (the message is retried later, never lost).
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import AbusoError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator, Sequence, TypeVar

    T = TypeVar("T")
    #: One migration: SQL text (one or more statements) or a function given the cursor of the migration's
    #: transaction.
    Migration = str | Callable[[sqlite3.Cursor], None]


#: Default seconds to wait for another process's lock.
TIMEOUT = 30.0
#: File systems where WAL's shared memory does not work across machines: the rollback journal is kept there.
NETWORK_FS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "ceph", "glusterfs", "fuse.glusterfs", "lustre",
    "gpfs", "fuse.sshfs", "sshfs", "davfs", "fuse.davfs", "beegfs", "ocfs2", "gfs2", "fuse.s3fs", "fuse.rclone",
})

#: Primary result codes (the extended ones, such as SQLITE_BUSY_RECOVERY, carry them in their low byte).
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


class SchemaError(AbusoError):
    """The file holds a schema this abuso cannot use (newer, or another kind of file)."""


def is_locked(e: BaseException) -> bool:
    """``database is locked`` (SQLITE_BUSY) or ``database table is locked`` (SQLITE_LOCKED): worth waiting for."""
    if not isinstance(e, sqlite3.OperationalError):
        return False
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return "locked" in str(e) or "busy" in str(e)


def retry(action: Callable[[], T], timeout: float) -> T:
    """``action()``, again after a short random pause while it finds the database locked, for ``timeout`` s."""
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        try:
            return action()
        except sqlite3.OperationalError as e:
            left = deadline - time.monotonic()
            if not is_locked(e) or left <= 0:
                raise
        # Random pauses: processes that collided once must not collide again in step.
        time.sleep(min(left, pause * (0.5 + random.random())))
        pause = min(pause * 2, 0.25)


def is_local(path: str | os.PathLike[str], mounts: str | None = None) -> bool:
    """Is ``path`` (or the folder it would be created in) on a local file system? True when unknown.

    ``mounts``: the text of ``/proc/self/mounts`` (read when None)."""
    if mounts is None:
        try:
            mounts = Path("/proc/self/mounts").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return True
    p = Path(path)
    real = os.path.realpath(p if p.is_dir() else p.parent)
    best, kind = "", ""
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = _unescape(fields[1])
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind.lower() not in NETWORK_FS


def _unescape(field: str) -> str:
    """Mount points escape space, tab, newline and backslash as octal (``\\040``)."""
    if "\\" not in field:
        return field
    import re

    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


class Connection(sqlite3.Connection):
    """A :class:`sqlite3.Connection` (autocommit) that knows its file and timeout; made by :func:`connect`."""

    path: Path
    lock_timeout: float
    wal: bool
    readonly: bool
    _depth: int

    def begin(self) -> None:
        """``BEGIN IMMEDIATE``, retried while another process holds the write lock."""
        retry(lambda: self.execute("BEGIN IMMEDIATE"), self.lock_timeout)

    def commit_now(self) -> None:
        """``COMMIT``, retried while readers keep it from finishing (rollback journal mode)."""
        retry(lambda: self.execute("COMMIT"), self.lock_timeout)

    def rollback_quietly(self) -> None:
        """Undo the open transaction, if any; an error here must not hide the one on its way out."""
        if self.in_transaction:
            try:
                self.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction: committed at the end of the block, rolled back if it raises.

        The write lock is taken at the start, so the statements inside never meet a lock; only taking it and
        committing wait (and are retried). Inside another ``transaction()``, it is part of that one."""
        if self._depth:
            self._depth += 1
            try:
                yield self.cursor()
            finally:
                self._depth -= 1
            return
        self.begin()
        self._depth = 1
        try:
            yield self.cursor()
            self.commit_now()
        except BaseException:
            self.rollback_quietly()
            raise
        finally:
            self._depth = 0

    def write(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """One statement in a transaction of its own."""
        with self.transaction() as cur:
            return cur.execute(sql, params)

    def write_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.transaction() as cur:
            cur.executemany(sql, rows)

    def schema_version(self, kind: str) -> int:
        """The version of ``kind``'s schema in this file: 0 when none was ever made."""
        try:
            row = self.execute("SELECT version FROM schema_version WHERE kind = ?", (kind,)).fetchone()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return 0
            raise
        return int(row[0]) if row else 0

    def migrate(self, kind: str, migrations: Sequence[Migration]) -> int:
        """Bring ``kind``'s schema to version ``len(migrations)``, applying the ones not yet applied, in order.

        Migration N (1-based) runs only on a file at version N - 1, all in one transaction, so two processes
        opening a new file together apply each migration once. Write the first one with ``IF NOT EXISTS``:
        a file made before this table existed then gets its version without losing anything."""
        latest = len(migrations)
        current = retry(lambda: self.schema_version(kind), self.lock_timeout)  # most opens stop here, no write
        if current == latest:
            return current
        self._check(kind, current, latest)
        if self.readonly:
            raise SchemaError(f"{self.path}: schema of {kind} is at version {current}, not {latest}, and this "
                              "connection may not change it")
        with self.transaction() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (kind TEXT PRIMARY KEY, version INTEGER NOT NULL,"
                        " updated REAL NOT NULL)")
            others = [r[0] for r in cur.execute("SELECT kind FROM schema_version WHERE kind != ?", (kind,))]
            if others:
                raise SchemaError(f"{self.path} is a {', '.join(others)} file, not a {kind} file")
            current = self.schema_version(kind)
            self._check(kind, current, latest)
            for number in range(current + 1, latest + 1):
                step = migrations[number - 1]
                if callable(step):
                    step(cur)
                else:
                    for statement in statements(step):
                        cur.execute(statement)
            cur.execute("INSERT INTO schema_version VALUES (?, ?, ?) ON CONFLICT (kind) DO UPDATE "
                        "SET version = excluded.version, updated = excluded.updated", (kind, latest, time.time()))
        return latest

    def _check(self, kind: str, current: int, latest: int) -> None:
        if current > latest:
            raise SchemaError(f"{self.path}: the {kind} schema is at version {current}, made by a newer abuso "
                              f"(this one knows up to {latest}): upgrade abuso")


def statements(script: str) -> list[str]:
    """The statements of an SQL script, each complete (a ``;`` inside a string or a trigger does not cut).

    Not ``executescript``: it would COMMIT the transaction a migration runs in."""
    out, acc = [], ""
    for piece in script.split(";"):
        acc += piece + ";"
        if sqlite3.complete_statement(acc):
            if acc.strip(" \t\r\n;"):
                out.append(acc.strip())
            acc = ""
    if acc.strip(" \t\r\n;"):
        out.append(acc.rstrip(";").strip())
    return out


def connect(path: str | os.PathLike[str], *, timeout: float = TIMEOUT, mode: int = 0o640, dir_mode: int = 0o750,
            wal: bool = True, synchronous: str = "NORMAL", readonly: bool = False,
            foreign_keys: bool = False) -> Connection:
    """Open (or create) the SQLite file ``path`` as abuso keeps its files.

    ``mode``: permissions of a file this creates (its journal and WAL files get the same from SQLite).
    ``wal``: False for a file replaced by rename while others may have it open (the RADIUS index), where WAL's
    side files would outlive the file they belong to. ``readonly``: never writes, never creates; also no WAL
    switch (a reader must not need the write lock). ``check_same_thread`` is off: a reader may be built in one
    thread and used in another (never both at once)."""
    p = Path(path).expanduser()
    if readonly:
        conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout, isolation_level=None,
                               check_same_thread=False, factory=Connection)
        _ready(conn, p, timeout, wal=False)
        conn.readonly = True
        return conn
    p.parent.mkdir(parents=True, exist_ok=True, mode=dir_mode)
    try:  # created with its mode before SQLite sees it: never readable by others, not even for a moment
        os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode))
        os.chmod(p, mode)  # the umask may have taken bits away that mode asked for
    except FileExistsError:
        pass
    conn = sqlite3.connect(str(p), timeout=timeout, isolation_level=None, check_same_thread=False,
                           factory=Connection)
    try:
        _ready(conn, p, timeout, wal and is_local(p))
        if conn.wal:
            got = retry(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone()[0], timeout)
            if str(got).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot switch {p} to WAL mode (it stays {got})")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        if foreign_keys:
            conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _ready(conn: Connection, path: Path, timeout: float, wal: bool) -> Connection:
    conn.path, conn.lock_timeout, conn.wal, conn.readonly, conn._depth = path, timeout, wal, False, 0
    conn.execute(f"PRAGMA busy_timeout = {max(0, int(timeout * 1000))}")
    return conn
