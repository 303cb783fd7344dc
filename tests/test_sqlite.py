"""abuso/sqlite.py: the one helper every SQLite file of abuso goes through (locks, WAL, modes, migrations)."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from abuso import sqlite
from abuso.sqlite import SchemaError, connect, is_local, statements

COUNTER = ("CREATE TABLE IF NOT EXISTS counter (n INTEGER NOT NULL); INSERT INTO counter VALUES (0);",
           "CREATE TABLE IF NOT EXISTS log (pid INTEGER NOT NULL, i INTEGER NOT NULL)")


def _hammer(path: str, barrier, rounds: int, queue) -> None:  # type: ignore[no-untyped-def]
    try:
        barrier.wait(30)
        db = connect(path, timeout=30)  # every process opens the new file at the same moment
        db.migrate("test", COUNTER)
        for i in range(rounds):
            with db.transaction() as cur:
                n = cur.execute("SELECT n FROM counter").fetchone()[0]
                cur.execute("UPDATE counter SET n = ?", (n + 1,))  # lost updates would show in the total
                cur.execute("INSERT INTO log VALUES (?, ?)", (os.getpid(), i))
        db.close()
        queue.put("ok")
    except BaseException as e:  # the parent shows what went wrong
        queue.put(f"{type(e).__name__}: {e}")


def test_processes_opening_a_new_file_together_never_see_database_is_locked(tmp_path: Path) -> None:
    """The failure of issue 13: two workers starting at once, one dies with ``database is locked``
    (SQLite does not wait when two connections switch a new file to WAL together). 10 rounds of 4."""
    ctx = multiprocessing.get_context("fork")
    for r in range(10):
        path = tmp_path / f"race{r}.sqlite"
        barrier, queue = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_hammer, args=(str(path), barrier, 20, queue)) for _ in range(4)]
        for p in procs:
            p.start()
        results = [queue.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(30)
        assert results == ["ok"] * 4, f"round {r}: {results}"
        db = connect(path)
        assert db.execute("SELECT n FROM counter").fetchone()[0] == 80
        assert db.execute("SELECT count(*) FROM log").fetchone()[0] == 80
        assert db.schema_version("test") == 2
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.close()


def test_new_files_are_0640_whatever_the_umask_and_wal_files_follow(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        db = connect(tmp_path / "sub" / "people.sqlite")
        db.write("CREATE TABLE t (x)")
        with db.transaction() as cur:
            cur.execute("INSERT INTO t VALUES (1)")
        files = sorted((tmp_path / "sub").iterdir())
        assert [f.name for f in files] == ["people.sqlite", "people.sqlite-shm", "people.sqlite-wal"]
        assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == dict.fromkeys(
            (f.name for f in files), 0o640)
        assert stat.S_IMODE((tmp_path / "sub").stat().st_mode) == 0o750 & ~0o077
        db.close()
    finally:
        os.umask(old)
    existing = tmp_path / "mine.sqlite"
    existing.touch(mode=0o600)
    existing.chmod(0o600)
    connect(existing).close()
    assert stat.S_IMODE(existing.stat().st_mode) == 0o600  # an operator's choice on an existing file is kept


def test_a_write_waits_for_a_lock_held_a_while_and_gives_up_after_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite"
    db = connect(path, timeout=0.3)
    db.write("CREATE TABLE t (x)")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        db.write("INSERT INTO t VALUES (1)")
    assert not db.in_transaction
    patient = connect(path, timeout=60)
    released = threading.Event()

    def release() -> None:
        holder.execute("ROLLBACK")
        released.set()

    threading.Timer(0.5, release).start()
    patient.write("INSERT INTO t VALUES (2)")  # waited for the holder instead of failing
    assert released.is_set()
    assert [r[0] for r in patient.execute("SELECT x FROM t")] == [2]
    for c in (db, patient, holder):
        c.close()


def test_transaction_rolls_back_on_error_and_nested_ones_join_the_outer(tmp_path: Path) -> None:
    db = connect(tmp_path / "x.sqlite")
    db.write("CREATE TABLE t (x)")
    with pytest.raises(ZeroDivisionError):
        with db.transaction() as cur:
            cur.execute("INSERT INTO t VALUES (1)")
            raise ZeroDivisionError("boom")
    assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 0 and not db.in_transaction
    with pytest.raises(KeyError):
        with db.transaction() as cur:
            cur.execute("INSERT INTO t VALUES (1)")
            db.write("INSERT INTO t VALUES (2)")  # part of the outer one: undone with it
            raise KeyError("x")
    assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    with db.transaction():
        db.write("INSERT INTO t VALUES (3)")
        assert db.in_transaction  # the inner block did not commit the outer one
    assert [r[0] for r in db.execute("SELECT x FROM t")] == [3]
    db.close()


def test_migrations_run_once_in_order_and_a_newer_or_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    ran: list[int] = []

    def second(cur: sqlite3.Cursor) -> None:
        ran.append(2)
        cur.execute("INSERT INTO t VALUES ('from 2')")

    db = connect(path)
    assert db.migrate("thing", ["CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('a;b')"]) == 1
    assert db.migrate("thing", ["CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('a;b')", second]) == 2
    assert db.migrate("thing", ["CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('a;b')", second]) == 2
    assert ran == [2]
    assert [r[0] for r in db.execute("SELECT x FROM t")] == ["a;b", "from 2"]
    with pytest.raises(SchemaError, match="version 2, made by a newer abuso .* upgrade abuso"):
        db.migrate("thing", ["CREATE TABLE t (x TEXT)"])
    with pytest.raises(SchemaError, match="is a thing file, not a other file"):
        db.migrate("other", ["CREATE TABLE u (x)"])
    db.close()


def test_a_failed_migration_changes_nothing(tmp_path: Path) -> None:
    db = connect(tmp_path / "m.sqlite")
    db.migrate("thing", ["CREATE TABLE t (x)"])
    with pytest.raises(sqlite3.OperationalError):
        db.migrate("thing", ["CREATE TABLE t (x)", "CREATE TABLE u (y); INSERT INTO nowhere VALUES (1)"])
    assert db.schema_version("thing") == 1
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'u'").fetchone() is None
    db.close()


def test_a_file_from_before_versions_is_adopted_by_its_first_migration(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE t (x)")
    old.execute("INSERT INTO t VALUES (42)")
    old.commit()
    old.close()
    db = connect(path)
    assert db.schema_version("thing") == 0
    assert db.migrate("thing", ["CREATE TABLE IF NOT EXISTS t (x)"]) == 1
    assert [r[0] for r in db.execute("SELECT x FROM t")] == [42]
    db.close()


def test_readonly_connection_never_creates_or_writes(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError):
        connect(tmp_path / "none.sqlite", readonly=True)
    assert not (tmp_path / "none.sqlite").exists()
    connect(tmp_path / "x.sqlite").migrate("thing", ["CREATE TABLE t (x)"])
    ro = connect(tmp_path / "x.sqlite", readonly=True)
    assert ro.schema_version("thing") == 1
    with pytest.raises(SchemaError, match="may not change it"):
        ro.migrate("thing", ["CREATE TABLE t (x)", "CREATE TABLE u (x)"])
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        ro.write("INSERT INTO t VALUES (1)")
    ro.close()


MOUNTS = """\
/dev/sda1 / ext4 rw,relatime 0 0
server:/export /srv/shared nfs4 rw 0 0
//nas/abuse /mnt/smb\\040share cifs rw 0 0
/dev/sdb1 /srv/shared/local ext4 rw 0 0
"""


@pytest.mark.parametrize("path, local", [
    ("/home/abuse/state.sqlite", True),
    ("/srv/shared/index.sqlite", False),
    ("/srv/shared/deeper/index.sqlite", False),
    ("/srv/shared/local/index.sqlite", True),  # the longest mount point holding the path decides
    ("/srv/sharedx/index.sqlite", True),  # a prefix of the name is not a parent folder
    ("/mnt/smb share/state.sqlite", False),
])
def test_is_local_reads_the_mount_table(path: str, local: bool) -> None:
    assert is_local(path, MOUNTS) is local


def test_no_wal_on_a_network_file_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite, "is_local", lambda p, mounts=None: False)
    db = connect(tmp_path / "nfs.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete" and not db.wal
    db.write("CREATE TABLE t (x)")  # and it works, with the rollback journal
    db.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nfs.sqlite"]


def test_statements_split_where_sqlite_would() -> None:
    script = """
        CREATE TABLE t (x TEXT);
        INSERT INTO t VALUES ('semi;colon');
        CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO t VALUES ('a'); UPDATE t SET x = x; END;
        """
    got = statements(script)
    assert len(got) == 3
    assert got[1] == "INSERT INTO t VALUES ('semi;colon');"
    assert got[2].startswith("CREATE TRIGGER") and got[2].endswith("END;")


def test_every_sqlite_file_abuso_keeps_goes_through_the_helper(tmp_path: Path) -> None:
    """Store index, RADIUS index, mailer state, mailbox state: 0640 under a lax umask, a schema version each."""
    from abuso.processors.mailer.state import AnswerState
    from abuso.radius.index import RadiusIndex
    from abuso.readers.mailbox_state import MailboxState
    from abuso.storage import Store

    old = os.umask(0o002)
    try:
        Store.open(tmp_path / "store").close()
        answers = AnswerState(tmp_path / "mailer" / "mailer.sqlite", 86400)
        answers.db()
        answers.close()
        MailboxState(tmp_path / "imap.sqlite", "imap://u@h").close()
        (tmp_path / "detail").write_text("")
        RadiusIndex(tmp_path / "radius.idx").refresh([tmp_path / "detail"], zone="UTC")
    finally:
        os.umask(old)
    from abuso.storage.schema import sqlite_migrations

    files = {"store/index.sqlite": ("store-index", len(sqlite_migrations())),
             "mailer/mailer.sqlite": ("mailer-state", 1), "imap.sqlite": ("mailbox-state", 1),
             "radius.idx": ("radius-index", 1)}
    for name, (kind, version) in files.items():
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name
        db = connect(tmp_path / name, readonly=True)
        assert db.schema_version(kind) == version, name
        db.close()
    assert stat.S_IMODE((tmp_path / "mailer").stat().st_mode) == 0o700
