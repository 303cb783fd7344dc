"""Who was answered when: at most one answer per recipient per period, never two per message.

The state lives in a small SQLite file of its own (option ``state``, default
``~/abuso/mailer.sqlite``; WAL mode, so keep it on a local disk), separate from
the ``store`` so that the mailer works with or without one; parallel abuso
processes (procmail starts one per message) share it safely. Table ``answers``:
recipient (lower-cased address), report (SHA-256 of the raw message), at (Unix
time), status (pending, sent or failed), kind, message_id. Rows older than the
period (at least a week, to cover MTA retries) are pruned when the file is opened.
The file is opened, locked and migrated by abuso/sqlite.py; it is made 0640.

A claim is taken before sending and stays ``pending`` until the answer is
confirmed: a crash after sending leaves it pending, which counts as sent (a
missing answer is better than a duplicate one).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ... import sqlite
from ...errors import TransientError
from .policy import Skip

#: State rows are kept at least this long: MTAs retry deferred mail for about five days.
MIN_KEEP = 7 * 86400

#: Ordered migrations of the state file (abuso/sqlite.py); the first is what files made before versions held.
MIGRATIONS = ("""
CREATE TABLE IF NOT EXISTS answers (recipient TEXT NOT NULL, report TEXT NOT NULL, at REAL NOT NULL,
                                    status TEXT NOT NULL, kind TEXT, message_id TEXT);
CREATE INDEX IF NOT EXISTS answers_recipient ON answers(recipient, at);
CREATE INDEX IF NOT EXISTS answers_report ON answers(report);
""",)


def connect(path: Path, timeout: float) -> sqlite.Connection:
    """The state file, its schema up to date: 0640 (it names the people answered) in a 0700 folder.

    WAL with synchronous=NORMAL: a commit survives a crash of abuso without an fsync per answer (2 commits per
    answer cost ~10 ms on a busy disk); only a power cut may lose the last few."""
    db = sqlite.connect(path, timeout=timeout, mode=0o640, dir_mode=0o700)
    try:
        db.migrate("mailer-state", MIGRATIONS)
    except BaseException:
        db.close()
        raise
    return db


class AnswerState:
    """The ``answers`` table; every SQLite or file error is a TransientError (no answer without state)."""

    def __init__(self, path: Path, period: float, timeout: float = 30, period_text: str = "",
                 now: Callable[[], float] | None = None) -> None:
        import time

        self.path, self.period, self.timeout = path, period, timeout
        self.period_text = period_text or f"{period:g} s"
        self.now = now or time.time
        self._db: sqlite.Connection | None = None

    def db(self) -> sqlite.Connection:
        """The connection, opened (and the table created and pruned) on first use."""
        if self._db is None:
            try:
                db = connect(self.path, self.timeout)
                try:
                    db.write("DELETE FROM answers WHERE at < ?", (self.now() - max(self.period, MIN_KEEP),))
                except BaseException:
                    db.close()
                    raise
            except (OSError, sqlite3.Error) as e:
                raise TransientError(f"mailer: state {self.path}: {e}")
            self._db = db
        return self._db

    def claim(self, to: str, digest: str, kind: str, message_id: str) -> None:
        """Reserve the answer atomically (parallel deliveries race here), or Skip with the reason it is taken."""
        db = self.db()
        now = self.now()
        try:
            with db.transaction() as cur:  # the write lock first: of parallel deliveries, one claims at a time
                row = cur.execute("SELECT at, status FROM answers WHERE report = ? LIMIT 1", (digest,)).fetchone()
                if row:
                    raise Skip(f"this message was already handled ({row[1]} at {_iso(row[0])})", "already-handled")
                if self.period > 0:
                    row = cur.execute("SELECT at FROM answers WHERE recipient = ? AND at > ? AND status != 'failed' "
                                      "ORDER BY at DESC LIMIT 1", (to, now - self.period)).fetchone()
                    if row:
                        raise Skip(f"already answered {to} at {_iso(row[0])} (period {self.period_text})", "period")
                cur.execute("INSERT INTO answers VALUES (?, ?, ?, 'pending', ?, ?)", (to, digest, now, kind,
                                                                                     message_id))
        except sqlite3.Error as e:  # locked longer than the timeout by parallel deliveries
            raise TransientError(f"mailer: state {self.path}: {e}")

    def release(self, digest: str) -> None:
        """Forget a claim whose answer was never sent: the retry of this message may answer."""
        self._write("DELETE FROM answers WHERE report = ? AND status = 'pending'", (digest,))

    def finish(self, digest: str, status: str) -> None:
        self._write("UPDATE answers SET status = ? WHERE report = ?", (status, digest))

    def _write(self, sql: str, args: tuple) -> None:
        try:
            self.db().write(sql, args)
        except sqlite3.Error as e:
            raise TransientError(f"mailer: state {self.path}: {e}")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
