"""The store's index: one schema and one SQL layer over SQLite (default) and PostgreSQL.

Both backends get the same statements; only the placeholder style, a few column
types and the error classes differ (:class:`_Dialect`). Addresses are indexed as
a version byte plus the big-endian address (5 or 17 bytes) so that a CIDR query is a
``BETWEEN`` on bytes, which SQLite (BLOB, memcmp) and PostgreSQL (BYTEA) order the
same way. Times are fixed-width UTC text (``2026-11-22T02:14:07.000000Z``) whose
byte order is time order; PostgreSQL gets ``COLLATE "C"`` so no locale reorders them.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time as _time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from ..errors import AbusoError, ConfigError, TransientError
from ..lazy import lazy_compile
from .columns import (  # noqa: F401  (the index's helpers, used from here since before columns.py)
    _clean,
    _cleaned,
    _incident_rows,
    _row,
    customer_label,
    ip_key,
    net_range,
    parse_time_text,
    time_text,
    user_label,
    utc,
)
from .schema import POSTGRESQL, SCHEMA_VERSION, SQLITE, _Dialect, postgresql_tables, sqlite_migrations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any, Iterator, Sequence

#: Connections inherited across fork(): kept referenced so they are never closed in the child.
_INHERITED: list[Any] = []


def one_line(e: BaseException) -> str:
    """A driver's error in one line: libpq's is the error, then a tab-indented hint; both are kept."""
    parts = [" ".join(line.split()) for line in str(e).strip().splitlines()]
    return " ".join(p for p in parts if p).removeprefix("connection failed: ") or type(e).__name__


def redact_url(url: str) -> str:
    """A database URL fit for an error message (no password)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparsable url>"


#: Refused login, unknown role or database: the config is wrong, not the network.
_PG_CONFIG_ERRORS = {"28P01", "28000", "3D000"}
#: libpq gives no SQLSTATE for a refused connection: its message is all there is.
_PG_CONFIG_TEXT = lazy_compile(r"password authentication failed|no password supplied|"
                             r'(role|database) "[^"]*" does not exist')

#: The SQLite index's settings beyond abuso/sqlite.py's. synchronous: FULL when the store fsyncs (in WAL mode
#: NORMAL does not fsync a commit: a power cut could take back reports whose messages were already done),
#: NORMAL without. A bigger page cache than SQLite's 2 MB, and the WAL checkpointed every ~40 MB instead of
#: every 4: the four indexes' hot pages are copied back to the file once per checkpoint, not once per 4 MB
#: (~20% less CPU inserting the bench corpus into an index of 370,000 incidents). Writers only: a search
#: (``create=False``) keeps SQLite's defaults, whose sorter would otherwise hold up to the cache's size in
#: memory (a /16 streamed: 29 -> 57 MB peak RSS).
SQLITE_PRAGMAS = ("PRAGMA cache_size = -16000", "PRAGMA wal_autocheckpoint = 10000")


class Index:
    """Reports and incidents of a store, searchable; plus the ``seen`` key/value table.

    Safe for several processes at once: SQLite runs in WAL mode with a busy
    timeout and takes the write lock up front (``BEGIN IMMEDIATE``); PostgreSQL
    relies on ``ON CONFLICT`` upserts. A backend that stays unavailable raises
    :class:`TransientError` so the message is retried, never lost.
    """

    def __init__(self, conn: Any, dialect: _Dialect, where: str, reconnect: Any) -> None:
        self.conn = conn
        self.dialect = dialect
        self.where = where
        self._reconnect = reconnect
        self._pid = os.getpid()
        self._create()

    # -- opening -----------------------------------------------------------------

    @classmethod
    def open(cls, url: str | None, default_path: Path, base: Path | None = None, timeout: float = 30.0,
             create: bool = True, password: str | None = None, fsync: bool = True) -> Index:
        """``None``: SQLite at ``default_path``; ``sqlite:///rel``, ``sqlite:////abs``; ``postgresql://…``.

        ``create=False`` (for searching) refuses to make a new, empty SQLite index. ``fsync``: the store's
        (a committed SQLite transaction survives a power cut; PostgreSQL's server decides that itself).
        """
        if url is None or url.split(":", 1)[0].lower() == "sqlite":
            path = default_path if url is None else sqlite_path(url, base)
            if not create and not path.exists():
                raise AbusoError(f"no store index at {path} (nothing stored yet?)")
            return cls._sqlite(path, timeout, fsync, create)
        kind = url.split(":", 1)[0].lower()
        if kind in ("postgresql", "postgres"):
            return cls._postgresql(url, timeout, password)
        raise ConfigError(f"unsupported index URL scheme {kind!r} (use sqlite:/// or postgresql://)", key="url")

    @classmethod
    def _sqlite(cls, path: Path, timeout: float, fsync: bool = True, writer: bool = True) -> Index:
        import sqlite3

        from .. import sqlite

        def connect() -> Any:
            try:  # the file 0640 in a 0750 folder: reports name people
                conn = sqlite.connect(path, timeout=timeout, mode=0o640, dir_mode=0o750, foreign_keys=True,
                                      synchronous="FULL" if fsync else "NORMAL")
                for pragma in SQLITE_PRAGMAS if writer else ():
                    conn.execute(pragma)
                return conn
            except (sqlite3.Error, OSError) as e:
                raise TransientError(f"store index {path}: {e}")

        return cls(connect(), SQLITE, str(path), connect)

    @classmethod
    def _postgresql(cls, url: str, timeout: float, password: str | None = None) -> Index:
        try:
            import psycopg
        except ImportError:
            raise ConfigError("a postgresql:// index needs psycopg: pip install 'abuso[postgres]'", key="url")

        def connect() -> Any:
            try:
                # password=None is left out of the connection string (the URL's or libpq's own is used)
                return psycopg.connect(url, connect_timeout=max(1, int(timeout)), autocommit=True, password=password)
            except psycopg.Error as e:
                msg = one_line(e)
                if getattr(e, "sqlstate", None) in _PG_CONFIG_ERRORS or _PG_CONFIG_TEXT.search(msg):
                    raise ConfigError(f"store index {redact_url(url)}: {msg}", key="url")
                raise TransientError(f"store index {redact_url(url)}: {msg}")

        return cls(connect(), POSTGRESQL, redact_url(url), connect)

    # -- plumbing ----------------------------------------------------------------

    def _ready(self) -> None:
        """Reconnect after a fork or a lost connection.

        A forked worker must not use (or close: SQLite would checkpoint and drop the WAL,
        PostgreSQL would end the parent's session) the connection it inherited, so it is
        left alone and the worker opens its own. A long batch outlives a database restart:
        the message that saw the connection die was retried (TransientError); the next one
        gets a new connection.
        """
        if self._pid != os.getpid():
            _INHERITED.append(self.conn)
            self.conn = self._reconnect()
            self._pid = os.getpid()
        elif self.dialect.name == "postgresql" and (self.conn.closed or getattr(self.conn, "broken", False)):
            self.conn = self._reconnect()

    def _transient(self, e: BaseException) -> bool:
        """Worth a retry (locked, unreachable, disk full, damaged file: the mail must wait for an
        operator, not be quarantined); a bad value or a bug is not."""
        if self.dialect.name == "sqlite":
            import sqlite3

            return isinstance(e, sqlite3.OperationalError) or type(e) is sqlite3.DatabaseError
        import psycopg

        return isinstance(e, (psycopg.OperationalError, psycopg.InterfaceError))

    def _db_error(self) -> type[Exception]:
        """The driver's base error class."""
        if self.dialect.name == "sqlite":
            import sqlite3

            return sqlite3.Error
        import psycopg

        return psycopg.Error

    def _fail(self, e: BaseException) -> TransientError:
        return TransientError(f"store index {self.where}: {one_line(e)}")

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """One transaction; the write lock is taken at once so writers queue instead of deadlocking."""
        self._ready()
        try:
            if self.dialect.name == "sqlite":
                with self.conn.transaction() as cur:  # abuso/sqlite.py: waits for, and retries, a locked file
                    yield cur
            else:
                with self.conn.transaction(), self.conn.cursor() as cur:
                    yield cur
        except Exception as e:
            if self._transient(e):
                raise self._fail(e)
            raise

    def _read(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        self._ready()
        try:
            if self.dialect.name == "sqlite":
                from ..sqlite import retry

                return retry(lambda: self._x(self.conn.cursor(), statement, params).fetchall(), self.conn.lock_timeout)
            cur = self.conn.cursor()
            return self._x(cur, statement, params).fetchall()
        except Exception as e:
            if self._transient(e):
                raise self._fail(e)
            raise

    def _x(self, cur: Any, statement: str, params: Sequence[Any] = ()) -> Any:
        cur.execute(self.dialect.sql(statement), tuple(params))
        return cur

    def _create(self) -> None:
        """Create the tables unless they exist; a role without CREATE rights can use a prepared database."""
        d = self.dialect
        if d.name == "postgresql":
            have_meta, have_newest = self._read("SELECT to_regclass('meta') IS NOT NULL,"
                                                " to_regclass('incidents_ipkey_time') IS NOT NULL")[0]
            if have_meta:
                self._check_version()
                if not have_newest:
                    self._pg_upgrade()
                return
            ddl = postgresql_tables()
            with self._tx() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(727113)")  # two machines starting at once
                cur.execute(ddl)
                self._x(cur, "INSERT INTO meta (name, value) VALUES ('schema', ?) ON CONFLICT (name) DO NOTHING",
                        (str(SCHEMA_VERSION),))
        else:
            try:
                self.conn.migrate("store-index", sqlite_migrations())
            except Exception as e:
                if self._transient(e):
                    raise self._fail(e)
                raise
        self._check_version()

    def _pg_upgrade(self) -> None:
        """A database an older abuso made gets the indexes added since; a role that may not create them
        (a prepared database) goes on without: searches are slower, nothing is wrong."""
        import psycopg

        try:
            with self._tx() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(727113)")
                cur.execute(postgresql_tables())
        except psycopg.errors.InsufficientPrivilege:
            pass

    def _check_version(self) -> None:
        rows = self._read("SELECT value FROM meta WHERE name = 'schema'")
        if not rows or int(rows[0][0]) > SCHEMA_VERSION:
            found = rows[0][0] if rows else "unknown"
            raise AbusoError(f"store index {self.where} has schema {found}; this abuso knows {SCHEMA_VERSION}:"
                             " upgrade abuso")

    def close(self) -> None:
        if self._pid != os.getpid():
            _INHERITED.append(self.conn)
            return
        try:
            self.conn.close()
        except self._db_error():  # a connection that already broke: nothing left to release
            pass

    # -- reports -----------------------------------------------------------------

    def has(self, digest: str) -> str | None:
        """The stored path of a report with this digest, or None."""
        rows = self._read("SELECT path FROM reports WHERE digest = ?", (digest,))
        return rows[0][0] if rows else None

    def add(self, digest: str, path: str, report: Any, stored: datetime, replace: bool = False) -> bool:
        """Index a report and its incidents in one transaction; False if the digest was already there.

        ``replace=True`` (re-processing) refreshes an existing report's analysis, incidents and
        path instead, keeping its first-stored time; it returns False then too.
        """
        return self.add_many([(digest, path, report, stored)], replace)[0]

    def add_many(self, reports: Sequence[tuple[str, str, Any, datetime]], replace: bool = False) -> list[bool]:
        """:meth:`add` for several (digest, path, report, stored) in one transaction (a group commit):
        whether each was new."""
        # Built before the transaction: the lock is held for less.
        prepared = [(digest, path, self._report_row(report, stored), _incident_rows(report.incidents))
                    for digest, path, report, stored in reports]
        added = []
        with self._tx() as cur:
            for digest, path, (meta, valid, verdicts, stored_text), rows in prepared:
                added.append(self._add_in(cur, digest, path, meta, valid, verdicts, stored_text, rows, replace))
        return added

    def _report_row(self, report: Any, stored: datetime) -> tuple[tuple[Any, ...], Any, str, str | None]:
        verdicts = json.dumps({n: str(v) for n, v in report.verdicts.items()}, ensure_ascii=False)
        valid = bool(report.valid) if self.dialect.name == "postgresql" else int(bool(report.valid))
        meta = (report.message_id, report.subject, report.sender, time_text(report.date), report.origin)
        return meta, valid, verdicts, time_text(stored)

    def _add_in(self, cur: Any, digest: str, path: str, meta: tuple[Any, ...], valid: Any, verdicts: str,
                stored: str | None, rows: list[tuple[Any, ...]], replace: bool) -> bool:
        row = self._x(cur, """
            INSERT INTO reports (digest, message_id, subject, sender, date, origin, path, valid, verdicts, stored)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (digest) DO NOTHING RETURNING id""",
            _cleaned((digest, *meta, path, valid, verdicts, stored))).fetchone()
        new = row is not None
        if not new:
            if not replace:
                return False
            row = self._x(cur, "UPDATE reports SET message_id = ?, subject = ?, sender = ?, date = ?,"
                               " origin = ?, path = ?, valid = ?, verdicts = ? WHERE digest = ? RETURNING id",
                          _cleaned((*meta, path, valid, verdicts, digest))).fetchone()
            self._x(cur, "DELETE FROM incidents WHERE report = ?", (row[0],))
        if rows:
            rid = row[0]
            cur.executemany(self.dialect.sql("""
                INSERT INTO incidents (report, ip, ipkey, type, taxonomy, time, zone, parser, port,
                                       customer, username, evidence, extra)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""), [(rid, *r) for r in rows])
        return new

    def _where(self, network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None,
               since: datetime | None = None, until: datetime | None = None, type: str | None = None,
               taxonomy: str | None = None, customer: str | Sequence[str] | None = None,
               user: str | None = None, asn: int | None = None) -> tuple[str, list[Any]]:
        """The WHERE clause (or "") and its parameters for :meth:`search` and :meth:`search_count`.

        ``asn`` is read from the asn processor's field in each incident's extra JSON (no column of its own:
        narrow by address or time as well on a large store)."""
        where: list[str] = []
        params: list[Any] = []
        if asn is not None:
            where.append(f"CAST({self.dialect.asn} AS TEXT) = ?")
            params.append(str(int(asn)))
        if network is not None:
            lo, hi = net_range(network)
            if lo == hi:   # one address: equality, so incidents_ipkey_time gives them newest first, unsorted
                where.append("i.ipkey = ?")
                params.append(lo)
            else:
                where.append("i.ipkey BETWEEN ? AND ?")
                params += [lo, hi]
        if since is not None:
            where.append("i.time >= ?")
            params.append(time_text(since))
        if until is not None:
            where.append("i.time < ?")
            params.append(time_text(until))
        if customer is not None and not isinstance(customer, str):
            names = list(dict.fromkeys(customer))          # several ids: a name held by several customers
            where.append(f"i.customer IN ({', '.join('?' * len(names))})")
            params += names
            customer = None
        for column, value in (("i.type", type), ("i.taxonomy", taxonomy), ("i.customer", customer),
                              ("i.username", user)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        return (" WHERE " + " AND ".join(where)) if where else "", params

    def search(self, *, limit: int | None = None, **criteria: Any) -> list[dict[str, Any]]:
        """Incidents matching every given criterion (see :meth:`_where`), newest first, each with its
        report's metadata. :meth:`rows` gives the same one at a time."""
        return list(self.rows(limit=limit, **criteria))

    #: Rows fetched from the database at a time while streaming.
    BATCH = 500

    def search_sql(self, *, limit: int | None = None, **criteria: Any) -> tuple[str, list[Any]]:
        """The statement and parameters of :meth:`rows`.

        A block (an address range) with a limit picks its incidents' ids first, newest first, from the
        (ipkey, time) index alone, and joins only those: the range's rows are in address order, so they are
        sorted by time, and sorting (time, id) pairs instead of joined rows makes the default ``abuso query
        --ip 198.18.0.0/16`` (--limit 100) over 60,000 matches ~20x cheaper."""
        where, params = self._where(**criteria)
        newest = self.dialect.newest
        select = ("SELECT i.ip, i.type, i.taxonomy, i.time, i.zone, i.parser, i.port, i.customer, i.username,"
                  " i.evidence, i.extra, r.digest, r.path, r.message_id, r.subject, r.sender, r.date, r.origin"
                  " FROM incidents i JOIN reports r ON r.id = i.report")
        if not limit:
            return f"{select}{where} ORDER BY {newest}", params
        network = criteria.get("network")
        if network is not None and network.num_addresses > 1:
            return (f"{select} WHERE i.id IN (SELECT i.id FROM incidents i{where} ORDER BY {newest} LIMIT ?)"
                    f" ORDER BY {newest}", [*params, int(limit)])
        return f"{select}{where} ORDER BY {newest} LIMIT ?", [*params, int(limit)]

    def rows(self, *, limit: int | None = None, **criteria: Any) -> Iterator[dict[str, Any]]:
        """:meth:`search`, streamed: rows come as the database gives them, in constant memory whatever
        matches (a /16 over years of reports). SQLite sorts what no index orders in its own bounded sorter;
        PostgreSQL gives them through a server-side cursor. Consume it before the next use of the index."""
        statement, params = self.search_sql(limit=limit, **criteria)
        self._ready()
        try:
            if self.dialect.name == "sqlite":
                from ..sqlite import retry

                cur = retry(lambda: self._x(self.conn.cursor(), statement, params), self.conn.lock_timeout)
                try:
                    while batch := cur.fetchmany(self.BATCH):
                        yield from map(_row, batch)
                finally:
                    cur.close()
            else:
                with self.conn.transaction(), self.conn.cursor(name="abuso_rows") as cur:
                    cur.itersize = self.BATCH
                    self._x(cur, statement, params)
                    while batch := cur.fetchmany(self.BATCH):
                        yield from map(_row, batch)
        except Exception as e:
            if self._transient(e):
                raise self._fail(e)
            raise

    #: What :meth:`counts` can group by, as SQL over ``incidents i JOIN reports r``.
    GROUPS = {"type": "i.type", "customer": "i.customer", "ip": "i.ip", "day": "substr(i.time, 1, 10)",
              "sender": "r.sender", "user": "i.username"}

    def counts(self, groups: Sequence[str], **criteria: Any) -> list[tuple[Any, ...]]:
        """(group values..., incidents) for the incidents matching :meth:`_where`'s criteria; ``asn`` too."""
        exprs = [self.dialect.asn if g == "asn" else self.GROUPS[g] for g in groups]
        where, params = self._where(**criteria)
        cols = ", ".join(exprs)
        join = " JOIN reports r ON r.id = i.report" if any(e.startswith("r.") for e in exprs) else ""
        return self._read(f"SELECT {cols}, count(*) FROM incidents i{join}{where} GROUP BY {cols}", params)

    def totals(self, **criteria: Any) -> tuple[int, int]:
        """(incidents, reports) matching the criteria."""
        where, params = self._where(**criteria)
        row = self._read("SELECT count(*), count(DISTINCT i.report) FROM incidents i" + where, params)[0]
        return int(row[0]), int(row[1])

    def times(self, **criteria: Any) -> list[tuple[Any, Any]]:
        """(incident time, report date) of every matching incident: time from incident to report."""
        where, params = self._where(**criteria)
        return self._read("SELECT i.time, r.date FROM incidents i JOIN reports r ON r.id = i.report" + where,
                          params)

    def repeated(self, at_least: int, **criteria: Any) -> list[tuple[Any, ...]]:
        """(ip, reports, incidents, first, last) of addresses in at least ``at_least`` distinct reports."""
        where, params = self._where(**criteria)
        return self._read("SELECT i.ip, count(DISTINCT i.report), count(*), min(i.time), max(i.time)"
                          f" FROM incidents i{where} GROUP BY i.ip HAVING count(DISTINCT i.report) >= ?",
                          [*params, at_least])

    def latest_names(self, ips: Sequence[str], **criteria: Any) -> dict[str, tuple[Any, Any]]:
        """The last customer and user named for each of ``ips`` (in time order) among matching incidents."""
        wanted = set(ips)
        where, params = self._where(**criteria)
        found: dict[str, tuple[Any, Any]] = {}
        rows = self._read("SELECT i.ip, i.customer, i.username FROM incidents i" + where
                          + (" AND" if where else " WHERE") + " (i.customer IS NOT NULL OR i.username IS NOT NULL)"
                          " ORDER BY i.time", params)
        for ip, customer, user in rows:
            if ip in wanted:
                old = found.get(ip, (None, None))
                found[ip] = (customer or old[0], user or old[1])
        return found

    def search_count(self, **criteria: Any) -> int:
        """How many incidents :meth:`search` would give without a limit."""
        where, params = self._where(**criteria)
        return int(self._read("SELECT count(*) FROM incidents i" + where, params)[0][0])

    def count(self) -> tuple[int, int]:
        """(reports, incidents) in the index."""
        reports = self._read("SELECT count(*) FROM reports")[0][0]
        incidents = self._read("SELECT count(*) FROM incidents")[0][0]
        return int(reports), int(incidents)

    # -- seen --------------------------------------------------------------------

    def remember(self, key: str, period: float, now: float | None = None) -> bool:
        """True (and remember ``key`` from now on) unless it was remembered less than ``period`` seconds ago.

        One statement, so two processes asking at once get one True between them.
        """
        now = _time.time() if now is None else now
        with self._tx() as cur:
            row = self._x(cur, """
                INSERT INTO seen (key, at) VALUES (?, ?)
                ON CONFLICT (key) DO UPDATE SET at = excluded.at WHERE seen.at <= ?
                RETURNING key""", (_clean(key), now, now - period)).fetchone()
        return row is not None

    def release(self, key: str) -> None:
        """Undo a :meth:`remember` whose action failed (the SMTP server was down): the retry may act."""
        with self._tx() as cur:
            self._x(cur, "DELETE FROM seen WHERE key = ?", (_clean(key),))

    def forget(self, older_than: float, now: float | None = None) -> int:
        """Drop ``seen`` keys older than ``older_than`` seconds; how many went."""
        now = _time.time() if now is None else now
        with self._tx() as cur:
            return self._x(cur, "DELETE FROM seen WHERE at < ?", (now - older_than,)).rowcount


def sqlite_path(url: str, base: Path | None) -> Path:
    """SQLAlchemy's convention: ``sqlite:///relative.db`` (to the config) and ``sqlite:////abs.db``."""
    rest = url.split(":", 1)[1]
    if not rest.startswith("///") or len(rest) == 3:
        raise ConfigError("a SQLite URL is sqlite:///relative/path or sqlite:////absolute/path", key="url")
    p = Path(rest[3:]).expanduser()
    if not p.is_absolute():
        p = (base or Path.cwd()) / p
    return p
