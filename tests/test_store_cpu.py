"""The store's cheaper paths give what their plain readings give: the day a report is filed under, the
group commit's fsyncs from threads kept between commits (and a forked worker's own)."""

from __future__ import annotations

import ipaddress
import os
import random
from datetime import datetime, timedelta, timezone

from abuso.model import Incident
from abuso.storage import store as store_module
from abuso.storage.columns import utc
from abuso.storage.store import _earliest, _fsync_all, _fsync_pool

UTC = timezone.utc


def _plain_earliest(incidents: list[Incident]) -> datetime | None:
    """What Store.location read before: every time converted to UTC, the least of those that convert."""
    times = [u for u in (utc(i.time) for i in incidents if i.time is not None) if u]
    return min(times) if times else None


def _time(rng: random.Random) -> datetime | None:
    pick = rng.randrange(8)
    if pick == 0:
        return None
    if pick == 1:   # out of year 1..9999 once in UTC
        return rng.choice([datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-12))),
                           datetime(1, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=13)))])
    zone = rng.choice([UTC, timezone(timedelta(hours=rng.randint(-12, 14))), timezone(timedelta(minutes=-150))])
    return datetime(2026, 11, rng.randint(1, 3), rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59),
                    rng.choice([0, rng.randrange(10**6)]), tzinfo=zone)


def test_the_earliest_time_equals_the_plain_reading():
    rng = random.Random(8)
    ip = ipaddress.ip_address("192.0.2.7")
    for _ in range(3000):
        incidents = [Incident(ip, "spam", _time(rng), "log") for _ in range(rng.randint(0, 6))]
        got, want = _earliest(incidents), _plain_earliest(incidents)
        assert got == want and (got is None or got.tzinfo is UTC), [i.time for i in incidents]


def test_fsyncs_share_one_pool_and_a_forked_child_makes_its_own(tmp_path):
    fds = [os.open(tmp_path / f"f{n}", os.O_WRONLY | os.O_CREAT, 0o600) for n in range(5)]
    try:
        _fsync_all(fds)
        pool = _fsync_pool()
        _fsync_all(fds)
        assert _fsync_pool() is pool and store_module._POOL == (os.getpid(), pool)
        pid = os.fork()
        if pid == 0:   # the parent's threads are not in the child: with the parent's pool this would hang
            code = 1
            try:
                _fsync_all(fds)
                code = 0 if store_module._POOL[0] == os.getpid() and _fsync_pool() is not pool else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert _fsync_pool() is pool
    finally:
        for fd in fds:
            os.close(fd)


def test_a_failed_fsync_is_raised(tmp_path):
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    try:
        _fsync_all([fd, fd])     # closed: EBADF from the pool's threads, raised here
    except OSError:
        pass
    else:
        raise AssertionError("no error")


def test_a_sqlite_index_fsyncs_its_commits_when_the_store_fsyncs(tmp_path):
    """In WAL mode synchronous=NORMAL does not fsync a commit: a power cut could take back an indexed report
    whose message was already done. FULL with fsync (the default), NORMAL without."""
    from abuso.storage import Store

    for fsync, level in ((True, 2), (False, 1)):
        with Store.open(tmp_path / f"s{fsync}", fsync=fsync) as s:
            conn = s.index.conn
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == level
            assert conn.execute("PRAGMA cache_size").fetchone()[0] == -16000
            assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 10000
            s.index._pid = -1          # as in a forked worker: its own connection, made the same way
            s.index._ready()
            assert s.index.conn is not conn
            assert s.index.conn.execute("PRAGMA synchronous").fetchone()[0] == level


def test_a_search_keeps_sqlites_memory_defaults(tmp_path):
    """The bigger cache is for writers: a search's sorter would hold up to its size in memory."""
    from abuso.storage import Store

    Store.open(tmp_path / "s").close()
    with Store.open(tmp_path / "s", create=False) as s:
        assert s.index.conn.execute("PRAGMA cache_size").fetchone()[0] == -2000
        assert s.index.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000


def test_the_digest_is_sha256_whichever_implementation_gives_it(monkeypatch):
    import hashlib

    data = [b"", b"abc", bytes(range(256)) * 400, "é".encode() * 10_000]
    want = [hashlib.sha256(d).hexdigest() for d in data]
    assert store_module._own_sha256() is not None           # CPython's own is there on this interpreter
    for own in (store_module._own_sha256, lambda: None):     # a build without the interpreter's own
        monkeypatch.setattr(store_module, "_first", True)
        monkeypatch.setattr(store_module, "_sha256", None)
        monkeypatch.setattr(store_module, "_own_sha256", own)
        assert [store_module.digest_of(d) for d in data] == want
        assert store_module._first is False and store_module._sha256 is hashlib.sha256
