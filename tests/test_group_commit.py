"""Group commit: a batch worker's store holds the reports of a chunk of messages and commits them together
(one disk wait, one index transaction) before it says any of those messages is done."""

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from abuso.config import load
from abuso.errors import EX_OK, EX_TEMPFAIL
from abuso.readers.base import Item
from abuso.runner import Runner
from abuso.storage import Store
from abuso.storage.store import digest_of
from tests.pg import pg_server, pg_url  # noqa: F401  (fixtures)
from tests.test_runner import ListReader
from tests.test_store import files_under, incident, options, report  # noqa: F401 - options is a fixture

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def held(options):  # noqa: F811 - the fixture imported above
    s = Store.open(options["path"], options.get("url"))
    s.hold()
    yield s
    s.close()


def finals(root: Path) -> list[Path]:
    return [p for p in files_under(root) if not p.name.startswith(".")]


def temps(root: Path) -> list[Path]:
    return [p for p in files_under(root) if p.name.startswith(".") and p.name.endswith(".tmp")]


def test_held_reports_are_neither_named_nor_indexed_until_the_commit(held):
    a, b = report("first", incident("192.0.2.7")), report("second", incident("192.0.2.8"))
    where_a, new_a = held.put(a)
    where_b, new_b = held.put(b)
    assert new_a and new_b and held.held == 2
    assert finals(held.root) == [] and len(temps(held.root)) == 4          # written, under hidden names
    assert held.index.has(digest_of(a.raw)) is None                         # not indexed yet
    assert held.has(digest_of(a.raw)) == where_a                             # but this store knows it
    assert held.put(a) == (where_a, False)                                   # a repeat is a duplicate
    assert held.commit() == 2 and held.held == 0
    assert temps(held.root) == []
    assert sorted(p.name for p in finals(held.root)) == sorted(
        digest_of(r.raw) + ext for r in (a, b) for ext in (".eml", ".json"))
    for r, where in ((a, where_a), (b, where_b)):
        got = held.get(digest_of(r.raw))
        assert got is not None and got.raw == r.raw and held.index.has(digest_of(r.raw)) == where
    assert len(held.search()) == 2
    assert held.commit() == 0                                                # nothing held: nothing to do


def test_a_commit_that_fails_stores_none_of_them_and_the_next_writer_repairs(held, options):  # noqa: F811
    a, b = report("first", incident("192.0.2.7")), report("second", incident("192.0.2.8"))
    held.put(a)
    held.put(b)

    def refuse(*args, **kw):
        raise OSError("disk full")

    held.index.add_many = refuse
    with pytest.raises(OSError, match="disk full"):
        held.commit()
    assert held.held == 0 and temps(held.root) == []
    assert held.search() == []
    assert finals(held.root)           # renamed before the index refused: the marker names them
    with Store.open(options["path"], options.get("url")) as other:       # the next writer repairs
        assert finals(other.root) == []
        assert other.put(a)[1] and other.put(b)[1]                        # and the retry stores them whole
        assert len(other.search()) == 2


def test_close_commits_what_is_held(options):  # noqa: F811
    r = report("closing", incident("192.0.2.9"))
    with Store.open(options["path"], options.get("url")) as s:
        s.hold()
        s.put(r)
    with Store.open(options["path"], options.get("url")) as s:
        assert s.get(digest_of(r.raw)) is not None


def test_re_processing_is_never_held(held):
    r = report("again", incident("192.0.2.7"))
    held.put(r)
    location, new = held.put(r, update=True)   # commits what is held, then rewrites in place
    assert not new and held.held == 0 and held.index.has(digest_of(r.raw)) == location


_KILLED_IN_COMMIT = """
import os, signal, sys
from abuso.storage import Store
from tests.test_store import report, incident
store = Store.open(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
store.hold()
for n in range(3):
    store.put(report(f"killed {n}", incident(f"192.0.2.{n + 1}")))
def add_many(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)   # power cut after the renames, before the index names them
store.index.add_many = add_many
store.commit()
"""


def test_a_writer_killed_in_its_commit_leaves_nothing_half_stored(options):  # noqa: F811
    args = [sys.executable, "-c", _KILLED_IN_COMMIT, options["path"]] + ([options["url"]] if "url" in options else [])
    done = subprocess.run(args, cwd=ROOT, capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    root = Path(options["path"])
    assert len(finals(root)) == 6                    # three reports' files under their final names, unindexed
    with Store.open(root, options.get("url")) as store:
        assert finals(store.root) == [] and store.search() == []   # the marker named all three: removed
        for n in range(3):
            assert store.put(report(f"killed {n}", incident(f"192.0.2.{n + 1}")))[1]


# --- in a batch ---------------------------------------------------------------------------------------------


def log_item(n: int) -> Item:
    body = f"Nov 22 10:{n % 60:02d}:01 host sshd[1]: Failed password for root from 192.0.2.{n % 250 + 1} port 22\n"
    raw = (f"From: r@example.org\nSubject: ssh report {n}\nMessage-ID: <{n}@example.org>\n"
           f"Date: Sun, 22 Nov 2026 12:00:00 +0000\n\n{body}").encode()
    return Item(raw, f"m{n}")


def batch(tmp_path: Path, items, jobs: int, **kw):
    config = load({"quarantine": str(tmp_path / "q"),
                   "processors": [{"store": {"path": str(tmp_path / "store"), "fsync": True}}]})
    out, reader = io.StringIO(), ListReader(items)
    summary = Runner(config, reader, out=out, err=io.StringIO(), progress=False, fmt="json", jobs=jobs, workers=True,
                     **kw).run()
    return summary, reader, out.getvalue()


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_batch_stores_every_report_once_and_in_reader_order(tmp_path, jobs):
    items = [log_item(n) for n in range(30)] + [log_item(3)]     # the last one repeats the bytes of m3
    items[-1] = Item(items[-1].data, "m3-again")
    summary, reader, out = batch(tmp_path, items, jobs)
    assert summary.status == EX_OK and summary.total == 31
    assert [origin for origin, _ in reader.outcomes] == [i.origin for i in items]
    assert [json.loads(line)["file"] for line in out.splitlines()] == [i.origin for i in items]
    with Store.open(tmp_path / "store") as store:
        rows = store.search()
        assert len({r["digest"] for r in rows}) == 30 and len(rows) == 30
        assert temps(store.root) == []
        assert sorted(p.name for p in finals(store.root)) == sorted(
            digest_of(i.data) + ext for i in items[:30] for ext in (".eml", ".json"))


def test_a_failed_commit_makes_its_messages_temporary_failures_never_done(tmp_path, monkeypatch):
    from abuso.storage.index import Index

    def refuse(self, *a, **k):
        raise OSError("index on a full disk")

    monkeypatch.setattr(Index, "add_many", refuse)   # the workers are forked: they see it too
    summary, reader, out = batch(tmp_path, [log_item(n) for n in range(5)], jobs=2)
    assert summary.status == EX_TEMPFAIL and summary.transient == 5
    assert reader.outcomes == [] and out == ""      # nothing marked done, nothing said as found
    assert summary.quarantined == 0


def test_a_worker_that_dies_in_its_commit_costs_no_message(tmp_path, monkeypatch):
    """Killed after its renames, before its index transaction: the messages go round again, and a
    new worker stores them (repairing what the dead one left half-stored)."""
    from abuso.storage.index import Index

    original = Index.add_many
    flag = tmp_path / "died-once"

    def die_once(self, reports, replace=False):
        if not flag.exists():
            flag.write_text("x")
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, reports, replace)

    monkeypatch.setattr(Index, "add_many", die_once)
    items = [log_item(n) for n in range(6)]
    summary, reader, _ = batch(tmp_path, items, jobs=1)
    assert summary.status == EX_OK and summary.quarantined == 0
    assert sorted(origin for origin, _ in reader.outcomes) == sorted(i.origin for i in items)
    with Store.open(tmp_path / "store") as store:
        assert len(store.search()) == 6
