"""The store processor and its index, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import ipaddress
import json
import multiprocessing
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abuso.errors import ConfigError, TransientError
from abuso.model import Incident, Report, Verdict
from abuso.processors.store import StoreProcessor, active_store
from abuso.storage import Store, digest_of, ip_key, net_range
from tests.pg import pg_server, pg_url  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parent.parent
UTC = timezone.utc
T0 = datetime(2026, 11, 22, 2, 14, 7, tzinfo=UTC)
NAME = re.compile(r"^[0-9a-f]{64}\.(eml|json)$")
#: A writer's crash-repair marker (abuso/storage/store.py): named by the writer, never by a message.
MARKER = re.compile(r"^writer\.\d+\.[0-9a-f]{8}$")


def incident(ip: str, when: datetime | None = T0, type: str = "brute-force", **extra) -> Incident:
    inc = Incident(ipaddress.ip_address(ip), type, when, "log", zone="explicit" if when else "none", port=22,
                   evidence=f"sshd: Failed password from {ip}")
    return inc.with_extra(**extra) if extra else inc


def report(body: str, *incidents: Incident, subject: str = "abuse", date: datetime | None = T0) -> Report:
    mid = f"<{zlib.crc32(body.encode())}@example.org>"  # stable across processes, unlike hash()
    raw = f"From: reporter@example.org\nSubject: {subject}\nMessage-ID: {mid}\n\n{body}\n"
    raw = raw.encode("utf-8", "surrogateescape")
    return Report(raw=raw, origin="stdin", message_id=mid, subject=subject,
                  sender="reporter@example.org", date=date, incidents=list(incidents),
                  verdicts={"log": Verdict("log", True, "", list(incidents))})


@pytest.fixture(params=["sqlite", "postgresql"])
def options(request, tmp_path) -> dict:
    """Store options for each backend: the same tests run on both."""
    opts = {"path": str(tmp_path / "store")}
    if request.param == "postgresql":
        opts["url"] = request.getfixturevalue("pg_url")
    return opts


@pytest.fixture
def store(options):
    s = Store.open(options["path"], options.get("url"))
    yield s
    s.close()


def files_under(root: Path) -> list[Path]:
    """The stored files: not the index, nor the open writer's marker (whose name is checked apart)."""
    for marker in (root / ".pending").glob("*"):
        assert MARKER.match(marker.name), marker
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name not in ("index.sqlite",)
                  and not p.name.startswith("index.sqlite-") and p.parent.name != ".pending")


# -- files ---------------------------------------------------------------------------

def test_report_is_stored_under_the_day_of_its_earliest_incident(store):
    r = report("two lines", incident("192.0.2.7", T0), incident("192.0.2.8", T0 - timedelta(days=2)))
    location, new = store.put(r)
    digest = digest_of(r.raw)
    assert new and location == f"2026/11/20/{digest}"
    eml = store.root / f"2026/11/20/{digest}.eml"
    assert eml.read_bytes() == r.raw
    meta = json.loads((store.root / f"2026/11/20/{digest}.json").read_text())
    assert [i["ip"] for i in meta["incidents"]] == ["192.0.2.7", "192.0.2.8"]
    assert meta["verdicts"] == {"log": "2 incidents"} and meta["digest"] == digest
    back = store.get(digest)
    assert back.raw == r.raw and back.meta["subject"] == "abuse"


def test_get_takes_only_digests(store):
    assert store.get("0" * 64) is None
    with pytest.raises(ValueError):
        store.get("../../etc/passwd")


def test_times_are_filed_in_utc(store):
    cet = timezone(timedelta(hours=1))
    r = report("just after midnight in Berlin", incident("192.0.2.7", datetime(2026, 11, 22, 0, 30, tzinfo=cet)))
    assert store.put(r)[0].startswith("2026/11/21/")


def test_report_without_incidents_goes_under_empty_by_its_date(store):
    r = report("nothing here", date=datetime(2026, 3, 4, 23, 0, tzinfo=UTC))
    location, new = store.put(r)
    assert new and location == f"empty/2026/03/04/{digest_of(r.raw)}"
    assert (store.root / (location + ".eml")).read_bytes() == r.raw


def test_a_date_at_the_end_of_time_is_no_crash(store):
    edge = datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-12)))  # past 9999 in UTC
    r = report("end of time", date=edge)
    r.notes["arrival"] = edge  # not JSON: written as text
    location, new = store.put(r)
    assert new and location.startswith("empty/") and store.search() == []
    assert store.get(digest_of(r.raw)).meta["date"] == edge.isoformat()


def test_identical_bytes_are_stored_once_and_change_nothing(store):
    r = report("same", incident("192.0.2.7"))
    first = store.put(r)
    listing = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files_under(store.root)}
    again = report("same", incident("192.0.2.99"))  # same bytes, other analysis: still the same report
    assert store.put(again) == (first[0], False)
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files_under(store.root)} == listing
    assert store.index.count() == (1, 1)
    assert [row["ip"] for row in store.search()] == ["192.0.2.7"]


def test_modes_are_private(store):
    location, _ = store.put(report("modes", incident("192.0.2.7")))
    old = os.umask(0)
    try:
        location2, _ = store.put(report("modes under umask 0", incident("192.0.2.7", T0 + timedelta(days=40))))
    finally:
        os.umask(old)
    for loc in (location, location2):
        f = store.root / (loc + ".eml")
        assert stat.S_IMODE(f.stat().st_mode) == 0o640
        assert stat.S_IMODE(f.with_suffix(".json").stat().st_mode) == 0o640
        for d in (f.parent, f.parent.parent, f.parent.parent.parent):
            assert stat.S_IMODE(d.stat().st_mode) == 0o750, d
    for index_file in store.root.glob("index.sqlite*"):  # SQLite gives -wal/-shm the database's mode
        assert stat.S_IMODE(index_file.stat().st_mode) == 0o640, index_file


def test_no_file_name_comes_from_the_message(store):
    nasty = "../../../../etc/passwd\x00\n/tmp/x"
    r = report("../../../evil", incident("192.0.2.7"), subject=nasty)
    r.message_id = "<../../../../root/.ssh/authorized_keys>"
    r.origin = "../../x"
    store.put(r)
    store.put(report("no incident ../..", subject=nasty))
    for p in files_under(store.root):
        assert NAME.match(p.name), p
        assert store.root in p.resolve().parents
        assert all(re.fullmatch(r"empty|\d{2}|\d{4}", part) for part in p.relative_to(store.root).parts[:-1]), p
    assert store.search()[0]["subject"].startswith("../../../../etc/passwd")


def test_nul_surrogates_and_non_ascii_text_survive_both_backends(store):
    # \udcff is what an undecodable header byte becomes; neither database can encode it as is.
    subject = "Beschwerde \u00fcber Spam \x00 \U0001f4e7 \udcff"
    inc = Incident(ipaddress.ip_address("2001:db8::1"), "spam", T0, "log", evidence="bad \ud800 bytes")
    r = report("unicode", inc, subject=subject)
    location, new = store.put(r)
    assert new
    (row,) = store.search()
    assert row["subject"] == "Beschwerde \u00fcber Spam \ufffd \U0001f4e7 \ufffd"
    assert row["evidence"] == "bad \ufffd bytes"
    meta = store.get(digest_of(r.raw)).meta  # the JSON file keeps the text exactly
    assert meta["subject"] == subject and meta["incidents"][0]["evidence"] == "bad \ud800 bytes"
    odd = Incident(ipaddress.ip_address("192.0.2.7"), "scanner", T0, "csv", port=99_999_999_999)
    assert store.put(report("a parser's nonsense port", odd))[1]
    assert [r["port"] for r in store.search(type="scanner")] == [None]
    assert store.remember("mailer:evil\x00@example.org", 60) is True


def test_postgresql_connection_lost_is_transient_then_recovers(request, tmp_path):
    import psycopg

    url = request.getfixturevalue("pg_url")
    with Store.open(tmp_path, url) as store:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        r = report("after a restart", incident("192.0.2.7"))
        with pytest.raises(TransientError):
            store.put(r)
        assert store.put(r)[1] is True


def test_fsync_is_on_by_default_and_can_be_turned_off(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real(fd))
    with Store.open(tmp_path / "a") as s:
        s.put(report("durable", incident("192.0.2.7")))
    assert len(synced) >= 3  # both files and their folder
    synced.clear()
    with Store.open(tmp_path / "b", fsync=False) as s:
        assert s.put(report("fast", incident("192.0.2.7")))[1]
        assert s.get(digest_of(report("fast", incident("192.0.2.7")).raw)).meta["valid"] is True
    assert synced == []


# -- crash safety ----------------------------------------------------------------------

def test_failed_rename_leaves_no_half_file_and_the_next_run_stores(store, monkeypatch):
    r = report("crash", incident("192.0.2.7"))
    digest = digest_of(r.raw)
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith(".json"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError):
        store.put(r)
    folder = store.root / "2026/11/22"
    assert not (folder / f"{digest}.json").exists()
    assert [p.name for p in folder.iterdir()] == [f"{digest}.eml"]  # complete, temp file removed
    assert (folder / f"{digest}.eml").read_bytes() == r.raw
    assert store.index.has(digest) is None  # not indexed: the retry is not taken for a duplicate
    monkeypatch.setattr(os, "replace", real_replace)
    assert store.put(r) == (f"2026/11/22/{digest}", True)
    assert store.get(digest).meta["incidents"][0]["ip"] == "192.0.2.7"


_KILLED_CHILD = """
import os, signal, sys
from abuso.storage import Store
from tests.test_store import report, incident
store = Store.open(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
def replace(src, dst):
    os.kill(os.getpid(), signal.SIGKILL)   # power cut between write+fsync and rename
os.replace = replace
store.put(report("killed", incident("192.0.2.7")))
"""


def test_process_killed_between_write_and_rename(options, tmp_path):
    args = [sys.executable, "-c", _KILLED_CHILD, options["path"]] + ([options["url"]] if "url" in options else [])
    done = subprocess.run(args, cwd=ROOT, capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    root = Path(options["path"])
    r = report("killed", incident("192.0.2.7"))
    digest = digest_of(r.raw)
    folder = root / "2026/11/22"
    leftovers = list(folder.iterdir())
    assert leftovers and all(p.name.startswith(f".{digest}.eml.") and p.name.endswith(".tmp") for p in leftovers)
    assert leftovers[0].read_bytes() == r.raw  # the temp file was complete; only the rename was missing
    with Store.open(root, options.get("url")) as store:
        assert store.index.has(digest) is None
        assert store.put(r) == (f"2026/11/22/{digest}", True)
        assert store.get(digest).raw == r.raw


# -- index -------------------------------------------------------------------------------

def test_ip_keys_sort_like_addresses_and_keep_families_apart():
    addrs = ["0.0.0.0", "10.0.0.1", "192.0.2.7", "255.255.255.255", "::", "::1", "::ffff:0.0.0.1", "2001:db8::1",
             "ffff::1"]
    keys = [ip_key(ipaddress.ip_address(a)) for a in addrs]
    assert [len(k) for k in keys] == [5] * 4 + [17] * 5
    assert keys == sorted(keys)
    lo, hi = net_range(ipaddress.ip_network("192.0.2.0/24"))
    assert lo <= ip_key(ipaddress.ip_address("192.0.2.255")) <= hi
    assert not lo <= ip_key(ipaddress.ip_address("192.0.3.0")) <= hi
    assert not lo <= ip_key(ipaddress.ip_address("::c000:207")) <= hi  # IPv4-compatible v6 is not the v4 host
    lo, hi = net_range(ipaddress.ip_network("::/0"))
    assert not lo <= ip_key(ipaddress.ip_address("192.0.2.7")) <= hi


_addresses = st.one_of(st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
                       st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address),
                       st.integers(0, 2**16 - 1).map(lambda n: ipaddress.IPv6Address((0x20010DB8 << 96) + n)))


@settings(max_examples=40, deadline=None)
@given(addrs=st.lists(_addresses, min_size=1, max_size=12, unique=True), pick=st.integers(0, 11),
       plen=st.integers(0, 128))
def test_cidr_search_agrees_with_python(tmp_path_factory, addrs, pick, plen):
    anchor = addrs[pick % len(addrs)]
    network = ipaddress.ip_network((anchor, min(plen, anchor.max_prefixlen)), strict=False)
    root = tmp_path_factory.mktemp("prop")
    with Store.open(root, fsync=False) as s:
        for i, a in enumerate(addrs):
            s.index.add(f"{i:064x}", f"x/{i}", report(f"p{i}", incident(str(a))), T0)
        found = sorted(ipaddress.ip_address(r["ip"]) for r in s.search(network=network, limit=None))
    assert found == sorted(a for a in addrs if a in network)  # `in` is False across families


def test_search_by_cidr_time_type_customer_user(store):
    acme = {"id": "ACME", "contact": {"email": "noc@acme.example"}}
    store.put(report("a", incident("192.0.2.7", T0, customer=acme, user="alice")))
    store.put(report("b", incident("192.0.2.200", T0 + timedelta(hours=1), type="spam", customer={"name": "Bob"})))
    store.put(report("c", incident("198.51.100.1", T0 - timedelta(days=3), type="scanner")))
    store.put(report("d", incident("2001:db8:1::5", T0 + timedelta(hours=2), type="phishing", user=["x", "y"])))
    store.put(report("e", incident("2001:db8:2::5", None, type="ddos", radius={"user": "carol", "nas": "bras1"})))

    def ips(**kw):
        return [r["ip"] for r in store.search(**kw)]

    net = ipaddress.ip_network
    assert ips() == ["2001:db8:1::5", "192.0.2.200", "192.0.2.7", "198.51.100.1", "2001:db8:2::5"]  # newest first
    assert ips(network=net("192.0.2.0/25")) == ["192.0.2.7"]
    assert ips(network=net("192.0.2.0/24")) == ["192.0.2.200", "192.0.2.7"]
    assert ips(network=net("192.0.2.7/32")) == ["192.0.2.7"]
    assert ips(network=net("2001:db8::/32")) == ["2001:db8:1::5", "2001:db8:2::5"]
    assert ips(network=net("2001:db8:1::/48")) == ["2001:db8:1::5"]
    assert ips(network=net("0.0.0.0/0")) == ["192.0.2.200", "192.0.2.7", "198.51.100.1"]
    assert ips(since=T0, until=T0 + timedelta(hours=2)) == ["192.0.2.200", "192.0.2.7"]
    assert ips(until=T0) == ["198.51.100.1"]
    assert ips(type="spam") == ["192.0.2.200"]
    assert ips(taxonomy="intrusion-attempts") == ["192.0.2.7"]
    assert ips(customer="ACME") == ["192.0.2.7"]
    assert ips(customer="Bob") == ["192.0.2.200"]
    assert ips(user="alice") == ["192.0.2.7"]
    assert ips(user="x,y") == ["2001:db8:1::5"]
    assert ips(user="carol") == ["2001:db8:2::5"]
    assert ips(limit=2) == ["2001:db8:1::5", "192.0.2.200"]
    (row,) = store.search(customer="ACME")
    assert row["extra"]["customer"] == acme and row["time"] == "2026-11-22T02:14:07+00:00"
    assert row["port"] == 22 and row["file"].endswith(".eml") and Path(row["file"]).read_bytes().startswith(b"From:")


def test_remember_rate_limits(store):
    now = 1_800_000_000.0
    assert store.index.remember("mailer:a@example.org", 3600, now=now) is True
    assert store.index.remember("mailer:a@example.org", 3600, now=now + 10) is False
    assert store.index.remember("mailer:b@example.org", 3600, now=now + 10) is True
    assert store.index.remember("mailer:a@example.org", 3600, now=now + 3599) is False
    assert store.index.remember("mailer:a@example.org", 3600, now=now + 3600) is True
    assert store.index.remember("mailer:a@example.org", 3600, now=now + 3700) is False  # remembered anew
    assert store.index.forget(older_than=200, now=now + 3700) == 1  # b (3690 s old) goes, a (100 s) stays
    assert store.remember("mailer:b@example.org", 3600) is True
    assert store.remember("mailer:b@example.org", 3600) is False
    store.release("mailer:b@example.org")  # the answer could not be sent: let the retry answer
    assert store.remember("mailer:b@example.org", 3600) is True


def _remember_once(options, queue):
    s = Store.open(options["path"], options.get("url"))
    queue.put(s.remember("race", 3600))
    s.close()


def _store_many(options, worker, queue):
    s = Store.open(options["path"], options.get("url"))
    new = 0
    for i in range(40):
        _, fresh = s.put(report(f"worker {worker} #{i}", incident(f"192.0.2.{i}", T0 + timedelta(minutes=i))))
        new += fresh
    for i in range(10):  # the same re-sent reports, seen by both workers
        _, fresh = s.put(report(f"shared #{i}", incident("198.51.100.1")))
        new += fresh
    s.close()
    queue.put(new)


def test_two_processes_write_at_once(options):
    Store.open(options["path"], options.get("url")).close()  # schema exists before the race
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_store_many, args=(options, w, queue)) for w in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert queue.get(timeout=5) + queue.get(timeout=5) == 90  # 2 x 40 own + the 10 shared ones once
    with Store.open(options["path"], options.get("url")) as s:
        assert s.index.count() == (90, 90)
        assert len([p for p in files_under(s.root) if p.suffix == ".eml"]) == 90
    procs = [ctx.Process(target=_remember_once, args=(options, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert sorted(queue.get(timeout=5) for _ in procs) == [False, False, False, True]


def _open_and_put(options, n, queue):
    with Store.open(options["path"], options.get("url")) as s:
        queue.put(s.put(report(f"first day {n}", incident("192.0.2.7")))[1])


def test_several_machines_starting_on_an_empty_index_at_once(options):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_open_and_put, args=(options, n, queue)) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert [queue.get(timeout=5) for _ in procs] == [True] * 3
    with Store.open(options["path"], options.get("url")) as s:
        assert s.index.count() == (3, 3)


_FORKED_STORE: list[Store] = []


def _use_inherited_store(queue):
    s = _FORKED_STORE[0]  # opened by the parent before the fork
    fresh = [s.put(report(f"child {i}", incident("192.0.2.9")))[1] for i in range(5)]
    s.close()
    queue.put(fresh)


def test_a_store_opened_before_fork_works_in_parent_and_child(store):
    store.put(report("parent before", incident("192.0.2.7")))
    _FORKED_STORE[:] = [store]
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_use_inherited_store, args=(queue,))
    child.start()
    child.join(60)
    assert child.exitcode == 0 and queue.get(timeout=5) == [True] * 5
    # The child neither used nor closed the parent's connection: the parent goes on.
    assert store.put(report("parent after", incident("192.0.2.8")))[1] is True
    assert store.index.count() == (7, 7)


# -- the processor -----------------------------------------------------------------------

def test_processor_notes_then_writes_in_finish(options):
    proc = StoreProcessor(options)
    try:
        assert active_store() is proc.store
        r = report("processor", incident("192.0.2.7"))
        proc.process(r)
        note = r.notes["store"]
        assert note["duplicate"] is False and note["path"].endswith(f"2026/11/22/{digest_of(r.raw)}.eml")
        assert not Path(note["path"]).exists()  # written only once all processors have enriched it
        r.incidents[0] = r.incidents[0].with_extra(customer={"id": "ACME"})  # what `table` does later
        proc.finish(r)
        assert Path(note["path"]).read_bytes() == r.raw
        assert [row["customer"] for row in proc.store.search()] == ["ACME"]
        again = report("processor", incident("192.0.2.7"))
        proc.process(again)
        assert again.notes["store"] == {**note, "duplicate": True}
        proc.finish(again)
        assert proc.store.index.count() == (1, 1)
    finally:
        proc.close()
    assert active_store() is None


def test_reprocessing_with_duplicates_update_refreshes_and_moves(options):
    proc = StoreProcessor({**options, "duplicates": "update"})
    try:
        before = report("learnt later")  # today's parsers find nothing: stored under empty/
        proc.process(before)
        proc.finish(before)
        old = Path(before.notes["store"]["path"])
        assert "/empty/" in str(old) and old.exists()
        after = report("learnt later", incident("192.0.2.7", type="spam"))  # same bytes, better parser
        proc.process(after)
        proc.finish(after)
        note = after.notes["store"]
        assert note["duplicate"] is True and note["updated"] is True
        new = Path(note["path"])
        assert new == proc.store.root / f"2026/11/22/{digest_of(after.raw)}.eml"
        assert new.read_bytes() == after.raw and not old.exists() and not old.with_suffix(".json").exists()
        assert proc.store.index.count() == (1, 1)
        assert [(r["ip"], r["type"], r["path"]) for r in proc.store.search()] == [
            ("192.0.2.7", "spam", f"2026/11/22/{digest_of(after.raw)}")]
        assert proc.store.get(digest_of(after.raw)).meta["valid"] is True
        again = report("learnt later", incident("192.0.2.7", type="spam"), incident("192.0.2.8"))  # same place
        proc.process(again)
        proc.finish(again)
        assert Path(again.notes["store"]["path"]) == new and new.read_bytes() == after.raw
        assert sorted(r["ip"] for r in proc.store.search()) == ["192.0.2.7", "192.0.2.8"]
    finally:
        proc.close()


def test_pipeline_stores_with_customer_from_a_later_processor(tmp_path, monkeypatch):
    from abuso import registry
    from abuso.pipeline import Pipeline

    monkeypatch.setitem(registry.BUILTINS["parsers"], "fake", "tests.test_store:FakeParser")
    table = tmp_path / "networks.txt"
    table.write_text("192.0.2.0/24  id=ACME\n")
    cfg = tmp_path / "abuso.yaml"
    cfg.write_text(textwrap.dedent("""\
        parsers: [fake]
        processors:
          - store: {path: store}
          - table: {file: networks.txt}
        """))
    with Pipeline.from_config(cfg) as pipeline:
        raw = b"From: r@example.org\nSubject: x\nDate: Sun, 22 Nov 2026 03:00:00 +0100\n\nbad 192.0.2.7\n"
        r = pipeline.process(raw)
        assert r.notes["store"]["duplicate"] is False
        assert pipeline.process(raw).notes["store"]["duplicate"] is True
    with Store.open(tmp_path / "store") as s:
        (row,) = s.search(customer="ACME")
        assert row["ip"] == "192.0.2.7" and row["extra"]["customer"]["network"] == "192.0.2.0/24"
        assert s.get(digest_of(raw)).meta["incidents"][0]["customer"]["id"] == "ACME"


class FakeParser:
    """Finds every dotted quad, stamped at the report's Date: enough to drive the pipeline."""

    name = "fake"

    def __init__(self, options=None):
        pass

    def parse(self, message):
        found = [Incident(ipaddress.ip_address(m), "spam", message.date.astimezone(UTC), "fake", "date-header")
                 for m in re.findall(r"\b\d+\.\d+\.\d+\.\d+\b", message.text)]
        return Verdict("fake", True, "", found)


# -- configuration and failures -------------------------------------------------------------

@pytest.mark.parametrize("opts, key", [
    ({"path": "x", "color": "red"}, "processors.store.color"),
    ({"url": "mysql://db/abuso"}, "processors.store.url"),
    ({"url": "sqlite://relative"}, "processors.store.url"),
    ({"path": ""}, "processors.store.path"),
    ({"timeout": -1}, "processors.store.timeout"),
    ({"fsync": "no"}, "processors.store.fsync"),
    ({"path": "x", "password_file": "pw"}, "processors.store.password_file"),
    ({"duplicates": "overwrite"}, "processors.store.duplicates"),
])
def test_bad_options_name_file_line_key(tmp_path, opts, key):
    from abuso.config import load

    cfg = tmp_path / "abuso.yaml"
    cfg.write_text("parsers: []\nprocessors:\n  - store: " + json.dumps(opts) + "\n")
    with pytest.raises(ConfigError) as e:
        load(cfg)
    assert str(e.value).startswith(f"{cfg}:3: {key}: "), str(e.value)


def test_sqlite_url_relative_to_config(tmp_path):
    from abuso.pipeline import Pipeline

    (tmp_path / "etc").mkdir()
    cfg = tmp_path / "etc" / "abuso.yaml"
    cfg.write_text("parsers: []\nprocessors:\n  - store: {path: ../files, url: 'sqlite:///../db/index.db'}\n")
    with Pipeline.from_config(cfg) as p:
        p.process(b"Subject: nothing\n\nhello\n")
    assert (tmp_path / "db" / "index.db").is_file()
    assert len(list((tmp_path / "files" / "empty").rglob("*.eml"))) == 1


def test_unreachable_postgresql_is_transient(tmp_path):
    pytest.importorskip("psycopg")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransientError) as e:
        Store.open(tmp_path, f"postgresql://abuso:s3cret@127.0.0.1:{port}/abuso", timeout=2)
    assert "s3cret" not in str(e.value) and "***" in str(e.value)


def test_damaged_sqlite_index_is_transient_not_a_quarantine(tmp_path):
    (tmp_path / "index.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(TransientError, match="index.sqlite: file is not a database"):
        Store.open(tmp_path)


def test_password_file_and_a_refused_login(request, tmp_path):
    from abuso.processors.store import open_store
    from tests.pg import PASSWORD

    url = request.getfixturevalue("pg_url")
    bare = url.replace(f":{PASSWORD}@", "@")
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    with open_store({"path": "s", "url": bare, "password_file": "pw"}, tmp_path) as s:
        assert s.put(report("with a password file", incident("192.0.2.7")))[1]
    (tmp_path / "pw").write_text("wrong\n")
    with pytest.raises(ConfigError) as e:  # a refused login is the config's fault: no retry helps
        open_store({"path": "s", "url": bare, "password_file": "pw"}, tmp_path)
    assert "password authentication failed" in str(e.value) and "wrong" not in str(e.value)
    with pytest.raises(ConfigError, match="cannot read"):
        open_store({"path": "s", "url": bare, "password_file": "missing"}, tmp_path)
    with pytest.raises(ConfigError) as e:
        open_store({"path": "s", "url": url.replace(PASSWORD, "s3cret")}, tmp_path)
    assert "s3cret" not in str(e.value) and "abuso:***@" in str(e.value)  # the URL's password is never shown


def test_locked_sqlite_is_transient(tmp_path):
    import sqlite3

    s = Store.open(tmp_path, timeout=0.2)
    blocker = sqlite3.connect(tmp_path / "index.sqlite", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(TransientError, match="locked"):
            s.put(report("locked", incident("192.0.2.7")))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert s.put(report("locked", incident("192.0.2.7")))[1] is True
    s.close()


def test_a_crash_between_files_and_index_row_is_repaired_on_the_next_open(tmp_path):
    """A full disk failing the index insert (or kill -9 there) leaves files the index never named: the next
    writer removes them, and the same report stored again is whole (file and row agree)."""
    from abuso.model import Incident, Report
    from abuso.storage import Store

    inc = Incident("192.0.2.7", "spam", datetime(2026, 11, 22, 2, 14, 7, tzinfo=timezone.utc), "log", "explicit")
    report = Report(raw=b"From: a@b\nSubject: x\n\n192.0.2.7\n", origin="-", incidents=[inc])
    store = Store.open(tmp_path / "store")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    store.index.add = full_disk
    with pytest.raises(OSError):
        store.put(report)
    store.close()
    orphans = list((tmp_path / "store").rglob("*.eml"))
    assert len(orphans) == 1                                   # the file, without its row
    again = Store.open(tmp_path / "store")
    assert not list((tmp_path / "store").rglob("*.eml"))       # removed: the index never named it
    assert not list((tmp_path / "store" / ".pending").iterdir())
    location, new = again.put(report)
    assert new and again.get(location.rsplit("/", 1)[1]).raw == report.raw
    assert len(list((tmp_path / "store").rglob("*.eml"))) == 1
    again.close()


def test_one_marker_per_writer_kept_while_it_stores_and_gone_when_it_closes(tmp_path):
    """The crash-repair marker is made once per writer, not once per report; a clean close leaves none,
    and a writer that failed half-way leaves its marker for the next one to repair."""
    store = Store.open(tmp_path / "store")
    for i in range(5):
        store.put(report(f"many {i}", incident("192.0.2.7")))
    markers = list((tmp_path / "store" / ".pending").iterdir())
    assert len(markers) == 1 and markers[0].stat().st_size == 0     # one, and nothing half-stored
    other = Store.open(tmp_path / "store")                          # a second writer: the live marker is kept
    assert other.recover() == 0 and markers[0].exists()
    other.close()
    store.close()
    assert not list((tmp_path / "store" / ".pending").iterdir())


def test_a_failed_put_leaves_its_marker_and_the_writer_goes_on_with_a_new_one(tmp_path):
    store = Store.open(tmp_path / "store")
    add = store.index.add

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    store.index.add = full_disk
    with pytest.raises(OSError):
        store.put(report("first", incident("192.0.2.7")))
    store.index.add = add
    assert store.put(report("second", incident("192.0.2.8")))[1] is True
    assert len(list((tmp_path / "store" / ".pending").iterdir())) == 2  # the failed one's, and the live one
    store.close()
    again = Store.open(tmp_path / "store")                          # repairs the first, keeps the second
    assert not list((tmp_path / "store" / ".pending").iterdir())
    assert [r["ip"] for r in again.search()] == ["192.0.2.8"]
    assert len(list((tmp_path / "store").rglob("*.eml"))) == 1
    again.close()


def test_stored_time_text_reads_back_as_isoformat_would_write_it():
    """The index's rows give times as datetime.isoformat() (read without strptime: it must agree)."""
    import random as _random

    from abuso.storage.columns import _iso, parse_time_text, time_text

    rng = _random.Random(3)
    samples = [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
               datetime(999, 5, 6, 7, 8, 9, tzinfo=UTC), datetime(2026, 11, 22, 2, 14, 7, 1, tzinfo=UTC)]
    samples += [T0 + timedelta(seconds=rng.randrange(10**8), microseconds=rng.choice([0, rng.randrange(10**6)]))
                for _ in range(500)]
    for t in samples:
        text = time_text(t)
        assert _iso(text) == parse_time_text(text).isoformat() == t.isoformat()
    assert _iso(None) is None and _iso("") is None
