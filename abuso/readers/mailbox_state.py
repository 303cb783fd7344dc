"""What the mailbox readers must remember between runs, in one small SQLite file.

A mailbox cannot hold all of it: POP3 has no flags, an IMAP folder can be recreated with a new UIDVALIDITY, and a
message that kills abuso leaves no trace on the server. So, per account (``scope``):

- ``folders``: the last UIDVALIDITY seen per folder, so that a reset UID space is noticed and reported;
- ``moves``: IMAP messages that are finished but not yet moved (moves are sent in batches); a UID is never
  reused within a UIDVALIDITY, so after a crash exactly these messages are moved without being processed again;
- ``messages``: per message key (Message-ID, else the sha256 of the bytes; POP3: the UIDL) its status
  (``pending`` while being processed, ``done``, ``failed``) and how many attempts were *started*. An attempt that
  never ended (``kill -9``, segfault, out of memory) still counts at the next run, which is how a message that
  crashes the worker is recognised and sent to ``failed`` instead of being re-read for ever.

Every change is one committed transaction (WAL, ``synchronous=FULL``, abuso/sqlite.py): a crash loses at most the
change that was being made, never the file. Several processes on one host may share the file: each waits for the
others' locks, and retries where SQLite does not wait by itself.

Also here: what both mailbox readers need to reach an account (password, TLS context), checked the same way.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from .. import sqlite
from ..errors import TransientError

if TYPE_CHECKING:
    import ssl

#: Ordered migrations of the state file (abuso/sqlite.py); the first is what files made before versions held.
MIGRATIONS = ("""
CREATE TABLE IF NOT EXISTS folders (
    scope TEXT NOT NULL, folder TEXT NOT NULL, uidvalidity INTEGER NOT NULL,
    PRIMARY KEY (scope, folder));
CREATE TABLE IF NOT EXISTS messages (
    scope TEXT NOT NULL, key TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    reason TEXT, updated REAL NOT NULL,
    PRIMARY KEY (scope, key));
CREATE TABLE IF NOT EXISTS moves (
    scope TEXT NOT NULL, folder TEXT NOT NULL, uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL,
    target TEXT NOT NULL, msgkey TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    PRIMARY KEY (scope, folder, uidvalidity, uid));
""",)


def default_path(reader: str, account: str) -> Path:
    """``$XDG_STATE_HOME/abuso/<reader>-<account>.sqlite`` (``~/.local/state`` when unset)."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    safe = "".join(c if c.isalnum() or c in "@.-_" else "_" for c in account)
    return base / "abuso" / f"{reader}-{safe}.sqlite"


class MailboxState:
    """The state file of one reader; ``scope`` separates accounts that share a file.

    Several workers share one file (``claim``): every change waits for the others' locks (abuso/sqlite.py); one
    that waits longer than ``timeout`` is a TransientError (the run stops, the message stays in the mailbox)."""

    def __init__(self, path: str | Path, scope: str, timeout: float = sqlite.TIMEOUT) -> None:
        self.path = Path(path).expanduser()
        self.scope = scope
        with self._guard():
            self.db = sqlite.connect(self.path, timeout=timeout, synchronous="FULL")
            try:
                self.db.migrate("mailbox-state", MIGRATIONS)
            except BaseException:
                self.db.close()
                raise

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as e:
            raise TransientError(f"mailbox state {self.path}: {e}")

    def _read(self, sql: str, params: tuple) -> list[tuple]:
        with self._guard():
            return sqlite.retry(lambda: self.db.execute(sql, params).fetchall(), self.db.lock_timeout)

    def _write(self, sql: str, params: tuple) -> int:
        with self._guard():
            return self.db.write(sql, params).rowcount

    # -- folders -----------------------------------------------------------

    def uidvalidity(self, folder: str) -> int | None:
        rows = self._read("SELECT uidvalidity FROM folders WHERE scope=? AND folder=?", (self.scope, folder))
        return rows[0][0] if rows else None

    def set_uidvalidity(self, folder: str, value: int) -> None:
        self._write("INSERT OR REPLACE INTO folders VALUES (?, ?, ?)", (self.scope, folder, value))

    # -- messages ----------------------------------------------------------

    def get(self, key: str) -> tuple[str, int, str | None] | None:
        """(status, attempts started, reason) or None for a message never seen."""
        rows = self._read("SELECT status, attempts, reason FROM messages WHERE scope=? AND key=?", (self.scope, key))
        return (rows[0][0], rows[0][1], rows[0][2]) if rows else None

    def begin(self, key: str) -> int:
        """Record that an attempt starts (before the message is handed out); returns the attempt number."""
        with self._guard(), self.db.transaction() as cur:
            row = cur.execute("SELECT status, attempts FROM messages WHERE scope=? AND key=?",
                              (self.scope, key)).fetchone()
            attempts = 1 if row is None or row[0] != "pending" else row[1] + 1
            cur.execute("INSERT OR REPLACE INTO messages VALUES (?, ?, 'pending', ?, NULL, ?)",
                        (self.scope, key, attempts, time.time()))
        return attempts

    def release(self, key: str) -> None:
        """The attempt ended without a verdict (transient failure, clean stop): it was not a crash."""
        self._write("UPDATE messages SET attempts = MAX(attempts - 1, 0), updated=? "
                    "WHERE scope=? AND key=? AND status='pending'", (time.time(), self.scope, key))

    def finish(self, key: str, status: str, reason: str | None = None) -> None:
        """``done`` or ``failed``: the message left the inbox (or was flagged)."""
        self._write("INSERT OR REPLACE INTO messages VALUES (?, ?, ?, "
                    "COALESCE((SELECT attempts FROM messages WHERE scope=? AND key=?), 0), ?, ?)",
                    (self.scope, key, status, self.scope, key, reason, time.time()))

    def finish_and_move(self, key: str, status: str, reason: str | None, move: tuple) -> None:
        """``finish`` and record the pending move ``(folder, uidvalidity, uid, target, msgkey, sha256, size)``."""
        with self._guard(), self.db.transaction() as cur:
            self.finish(key, status, reason)
            cur.execute("INSERT OR REPLACE INTO moves VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (self.scope, *move))

    def moves(self) -> list[tuple]:
        return self._read("SELECT folder, uidvalidity, uid, target, msgkey, sha256, size FROM moves "
                          "WHERE scope=? ORDER BY rowid", (self.scope,))

    def moved(self, slots: list[tuple[str, int, int]]) -> None:
        with self._guard():
            self.db.write_many("DELETE FROM moves WHERE scope=? AND folder=? AND uidvalidity=? AND uid=?",
                               [(self.scope, *slot) for slot in slots])

    def begin_many(self, keys: list[str]) -> None:
        with self._guard():
            self.db.write_many("INSERT OR REPLACE INTO messages VALUES (?, ?, 'pending', 1, NULL, ?)",
                               [(self.scope, k, time.time()) for k in keys])

    def forget_many(self, keys: list[str]) -> None:
        with self._guard():
            self.db.write_many("DELETE FROM messages WHERE scope=? AND key=?", [(self.scope, k) for k in keys])

    def forget(self, key: str) -> None:
        self._write("DELETE FROM messages WHERE scope=? AND key=?", (self.scope, key))

    def keys(self, status: str) -> set[str]:
        return {r[0] for r in self._read("SELECT key FROM messages WHERE scope=? AND status=?", (self.scope, status))}

    def claims(self) -> list[str]:
        """Claims recorded by ``begin("claim:…")`` and not forgotten: a worker died between claim and move."""
        return [r[0] for r in self._read("SELECT key FROM messages WHERE scope=? AND key LIKE 'claim:%'",
                                         (self.scope,))]

    def prune(self, older_than: float) -> int:
        """Forget finished messages not touched for ``older_than`` seconds (the table must not grow for ever)."""
        return self._write("DELETE FROM messages WHERE scope=? AND status!='pending' AND updated < ?",
                           (self.scope, time.time() - older_than))

    def close(self) -> None:
        self.db.close()


# -- account secrets shared by the imap and pop3 readers (their options: readers/mailbox.py) ----

def read_password(options: dict) -> str:
    """From ``password_file`` (first line) or ``password_env``; never from the command line or the config."""
    from ..errors import ConfigError

    if options.get("password_file"):
        path = Path(str(options["password_file"])).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read the password file: {e.__class__.__name__}", key="password_file")
        password = text.splitlines()[0] if text else ""
        try:
            if path.stat().st_mode & 0o077:
                import logging

                logging.getLogger("abuso.reader").warning(
                    "%s can be read by other users: chmod 600 it", path)
        except OSError:
            pass
    else:
        password = os.environ.get(str(options["password_env"]), "")
    if not password:
        raise ConfigError("the password is empty", key="password_file" if options.get("password_file")
                          else "password_env")
    return password


def tls_context(options: Mapping[str, Any]) -> ssl.SSLContext:
    """Certificates and host names verified; ``ca_file`` trusts that CA instead of the system's."""
    import ssl

    ca = options.get("ca_file")
    return ssl.create_default_context(cafile=str(Path(str(ca)).expanduser()) if ca else None)


def redact(text: str, secret: str | None) -> str:
    """A server or library message with the password taken out, for logs and errors; imaplib's and
    poplib's ``b'...'`` reprs of the server's bytes become the words the server said."""
    import re

    m = re.fullmatch(r"b(['\"])(.*)\1", text.strip(), re.S)
    if m:
        text = m.group(2)
    return text.replace(secret, "***") if secret else text


def password_key(options: Mapping[str, Any]) -> str:
    """The option a refused login points at: the one the password came from."""
    return "password_env" if options.get("password_env") else "password_file"
