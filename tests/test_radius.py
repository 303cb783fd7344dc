"""RADIUS matching against generated FreeRADIUS/Livingston detail logs.

Every test writes real detail files (plain and gzip, in a radacct/<nas>/ tree),
indexes them through RadiusIndex or the processor, and asks who held an address.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import multiprocessing
import os
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as hs

from abuso.errors import ConfigError
from abuso.model import Incident, Report
from abuso.processors.radius import RadiusProcessor
from abuso.radius.detail import parse_block, zone_converter
from abuso.radius.index import RadiusIndex

UTC = timezone.utc
T0 = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
TO_UTC = zone_converter("UTC")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def rec(status: str, session: str, user: str | None, when: datetime, ip: str | None = "192.0.2.17",
        nas: str = "10.0.0.1", delay: int | None = None, session_time: int | None = None,
        timestamp: bool = True, **attrs: str) -> str:
    """One detail record as FreeRADIUS writes it: record time = ``when`` (+ ``delay``, the NAS's lag)."""
    written = when + timedelta(seconds=delay or 0)
    lines = [f"{written:%a %b} {written.day:2d} {written:%H:%M:%S %Y}"]  # ctime(3), as the server writes it
    lines.append(f'\tAcct-Session-Id = "{session}"')
    if user is not None:
        lines.append(f'\tUser-Name = "{user}"')
    lines.append(f"\tNAS-IP-Address = {nas}")
    lines.append("\tNAS-Port = 17")
    lines.append(f"\tAcct-Status-Type = {status}")
    if ip:
        lines.append(f"\tFramed-IP-Address = {ip}")
    if session_time is not None:
        lines.append(f"\tAcct-Session-Time = {session_time}")
    if delay is not None:
        lines.append(f"\tAcct-Delay-Time = {delay}")
    for k, v in attrs.items():
        lines.append(f"\t{k.replace('_', '-')} = {v}")
    if timestamp:
        lines.append(f"\tTimestamp = {int(written.timestamp())}")
    return "\n".join(lines) + "\n\n"


def session(sid: str, user: str, start: float, stop: float | None, ip: str = "192.0.2.17", **kw) -> str:
    out = rec("Start", sid, user, at(start), ip, **kw)
    if stop is not None:
        out += rec("Stop", sid, user, at(stop), ip, session_time=int((stop - start) * 60), **kw)
    return out


def build(tmp_path: Path, files: dict[str, str | bytes], **kw) -> RadiusIndex:
    for name, text in files.items():
        p = tmp_path / "radacct" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode() if isinstance(text, str) else text
        p.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    index = RadiusIndex(tmp_path / "radius.idx")
    index.last_stats = index.refresh([tmp_path / "radacct"], zone="UTC", **kw)
    return index


def who(index: RadiusIndex, ip: str, when: datetime, slack: float = 0, grace: float = 3600):
    return index.lookup(ipaddress.ip_address(ip), when.timestamp(), slack, grace)


# -- windows ---------------------------------------------------------------------------------------------------

def test_window_is_start_to_stop_inclusive_and_nothing_after(tmp_path):
    index = build(tmp_path, {"nas1/detail-20261124": session("A1", "alice", 0, 60)})
    assert who(index, "192.0.2.17", at(0)).users == ["alice"]
    assert who(index, "192.0.2.17", at(60)).users == ["alice"]
    late = who(index, "192.0.2.17", at(60) + timedelta(seconds=1))
    assert late.status == "none" and "stopped 1s earlier" in late.reason
    early = who(index, "192.0.2.17", at(0) - timedelta(seconds=1))
    assert early.status == "none" and "next session (user alice) started 1s later" in early.reason
    assert who(index, "192.0.2.18", at(30)).status == "none"
    # Slack widens the window on both sides, by exactly that much.
    assert who(index, "192.0.2.17", at(60) + timedelta(seconds=5), slack=5).users == ["alice"]
    assert who(index, "192.0.2.17", at(60) + timedelta(seconds=6), slack=5).status == "none"


def test_overlapping_sessions_of_two_users_are_ambiguous(tmp_path):
    text = (session("A1", "alice", 0, 60) + session("B1", "bob", 50, 120, nas="10.0.0.2")
            + session("C1", "carol", 200, 260))
    index = build(tmp_path, {"nas1/detail": text})
    assert who(index, "192.0.2.17", at(30)).users == ["alice"]
    amb = who(index, "192.0.2.17", at(55))
    assert amb.status == "ambiguous" and sorted(amb.users) == ["alice", "bob"]
    assert "alice, bob" in amb.reason
    assert who(index, "192.0.2.17", at(61)).users == ["bob"]
    assert who(index, "192.0.2.17", at(150)).status == "none"
    assert who(index, "192.0.2.17", at(230)).users == ["carol"]


def test_two_sessions_of_the_same_user_are_not_ambiguous(tmp_path):
    text = session("A1", "alice", 0, 60) + session("A2", "alice", 30, 90, nas="10.0.0.2")
    res = who(build(tmp_path, {"d/detail": text}), "192.0.2.17", at(45))
    assert res.status == "matched" and res.users == ["alice"] and len(res.sessions) == 2


def test_delay_time_moves_events_back_and_event_timestamp_wins(tmp_path):
    # Start happened at 0 but reached the server 30 s later; Stop happened at 60, logged 90 s late.
    text = (rec("Start", "D1", "dave", at(0), delay=30)
            + rec("Stop", "D1", "dave", at(60), delay=90, session_time=3600))
    index = build(tmp_path, {"n/detail": text})
    assert who(index, "192.0.2.17", at(0) + timedelta(seconds=10)).users == ["dave"]
    assert who(index, "192.0.2.17", at(60) + timedelta(seconds=30)).status == "none"
    # Event-Timestamp is the NAS's own clock: preferred over record time minus delay.
    ev = int(at(100).timestamp())
    text2 = rec("Start", "E1", "erin", at(110), ip="192.0.2.50", delay=5, Event_Timestamp=f'"{ev}"')
    text2 += rec("Stop", "E1", "erin", at(130), ip="192.0.2.50",
                 Event_Timestamp='"Nov 24 2026 14:10:00 UTC"')
    index = build(tmp_path / "b", {"n/detail": text2})
    s = who(index, "192.0.2.50", at(101)).sessions[0]
    assert (s.start, s.stop) == (at(100).timestamp(), at(130).timestamp())


def test_interim_only_session_open_ended_with_grace(tmp_path):
    # Start lost; interim updates carry Acct-Session-Time, so the start is known; no Stop yet.
    text = "".join(rec("Interim-Update", "I1", "ivan", at(m), session_time=int((m + 20) * 60)) for m in (0, 10, 20))
    index = build(tmp_path, {"n/detail": text})
    assert who(index, "192.0.2.17", at(-19)).users == ["ivan"]   # derived start: 20 min before first interim
    assert who(index, "192.0.2.17", at(-21)).status == "none"
    assert who(index, "192.0.2.17", at(20 + 59), grace=3600).users == ["ivan"]
    miss = who(index, "192.0.2.17", at(20 + 61), grace=3600)
    assert miss.status == "none" and "no Stop" in miss.reason and "beyond the grace of 1h 0m" in miss.reason
    assert who(index, "192.0.2.17", at(20 + 61), grace=7200).users == ["ivan"]


def test_open_session_ends_when_someone_else_gets_the_address(tmp_path):
    # ivan's Stop was lost; at minute 30 the address goes to judy: from then on it is judy's alone.
    text = rec("Start", "I1", "ivan", at(0)) + rec("Interim-Update", "I1", "ivan", at(10), session_time=600)
    text += session("J1", "judy", 30, 90, nas="10.0.0.2")
    index = build(tmp_path, {"n/detail": text})
    assert who(index, "192.0.2.17", at(20)).users == ["ivan"]
    assert who(index, "192.0.2.17", at(40), grace=86400).users == ["judy"]


def test_accounting_on_bounds_open_sessions_of_that_nas(tmp_path):
    text = rec("Start", "K1", "kim", at(0)) + rec("Start", "L1", "lee", at(0), ip="192.0.2.99", nas="10.0.0.9")
    text += rec("Accounting-On", "", None, at(30), ip=None)
    index = build(tmp_path, {"n/detail": text})
    assert who(index, "192.0.2.17", at(31), grace=86400).status == "none"
    assert who(index, "192.0.2.17", at(29), grace=86400).sessions[0].cause == "nas-restart"
    assert who(index, "192.0.2.99", at(31), grace=86400).users == ["lee"]  # another NAS: still open


def test_session_id_reused_after_reboot_is_a_new_session(tmp_path):
    text = session("0000001", "mia", 0, 30) + session("0000001", "ned", 100, 130)
    index = build(tmp_path, {"n/detail": text})
    assert who(index, "192.0.2.17", at(15)).users == ["mia"]
    assert who(index, "192.0.2.17", at(60)).status == "none"
    assert who(index, "192.0.2.17", at(115)).users == ["ned"]


def test_unique_session_id_keys_sessions(tmp_path):
    # Same Acct-Session-Id on two NASes: Acct-Unique-Session-Id tells them apart, so both exist.
    text = session("X", "olga", 0, 60, Acct_Unique_Session_Id='"u-olga"')
    text += session("X", "paul", 100, 160, ip="192.0.2.18", Acct_Unique_Session_Id='"u-paul"')
    index = build(tmp_path, {"n/detail": text})
    assert who(index, "192.0.2.17", at(30)).users == ["olga"]
    assert who(index, "192.0.2.18", at(130)).users == ["paul"]


# -- addresses ---------------------------------------------------------------------------------------------------

def test_ipv6_delegated_and_framed_prefixes(tmp_path):
    text = rec("Start", "V6", "vera", at(0), ip="198.51.100.7", Delegated_IPv6_Prefix="2001:db8:1200::/56",
               Framed_IPv6_Prefix="2001:db8:ffff:1::/64")
    text += rec("Stop", "V6", "vera", at(60), ip="198.51.100.7", session_time=3600)
    index = build(tmp_path, {"n/detail": text})
    for inside in ("2001:db8:1200:ab::1", "2001:db8:1200::", "2001:db8:1200:ff:ffff:ffff:ffff:ffff",
                   "2001:db8:ffff:1:abcd::9", "198.51.100.7", "::ffff:198.51.100.7"):
        assert who(index, inside, at(30)).users == ["vera"], inside
    for outside in ("2001:db8:1200:100::", "2001:db8:1201::1", "2001:db8:ffff:2::1", "198.51.100.8"):
        assert who(index, outside, at(30)).status == "none", outside
    assert sorted(index.networks(who(index, "198.51.100.7", at(1)).sessions[0])) == [
        "198.51.100.7/32", "2001:db8:1200::/56", "2001:db8:ffff:1::/64"]


def test_placeholder_and_absurd_addresses_are_not_sessions(tmp_path):
    text = rec("Start", "P1", "pat", at(0), ip="255.255.255.254") + rec("Start", "P2", "quin", at(0), ip=None,
                                                                         Framed_Route='"0.0.0.0/0 10.0.0.1 1"')
    index = build(tmp_path, {"n/detail": text})
    assert who(index, "255.255.255.254", at(1)).status == "none"
    assert who(index, "203.0.113.5", at(1)).status == "none"
    with sqlite3.connect(index.path) as c:
        assert c.execute("SELECT count(*) FROM sessions").fetchone() == (0,)


def test_address_only_in_later_records(tmp_path):
    text = rec("Start", "W1", "walt", at(0), ip=None) + rec("Interim-Update", "W1", "walt", at(10), ip="192.0.2.40")
    index = build(tmp_path, {"n/detail": text})
    assert who(index, "192.0.2.40", at(1)).users == ["walt"]  # the window starts at the Start record


def test_framed_route_subnet(tmp_path):
    text = rec("Start", "R1", "rita", at(0), Framed_Route='"203.0.113.8/29 192.0.2.17 1"')
    index = build(tmp_path, {"n/detail": text})
    assert who(index, "203.0.113.13", at(1)).users == ["rita"]
    assert who(index, "203.0.113.16", at(1)).status == "none"


# -- formats ---------------------------------------------------------------------------------------------------

LIVINGSTON = """Tue Jul 30 14:48:39 1996
\tAcct-Session-Id = "AC000004"
\tUser-Name = "jaime"
\tNAS-IP-Address = 172.16.64.91
\tNAS-Port = 1
\tAcct-Status-Type = Stop
\tAcct-Session-Time = 21
\tAcct-Authentic = RADIUS
\tFramed-Protocol = PPP
\tFramed-IP-Address = 172.16.64.25
\tAcct-Delay-Time = 0

"""


def test_livingston_stop_only_record_in_the_servers_zone(tmp_path):
    (tmp_path / "detail").write_text(LIVINGSTON)
    index = RadiusIndex(tmp_path / "idx")
    index.refresh([tmp_path / "detail"], zone="America/Los_Angeles")
    stop = datetime(1996, 7, 30, 21, 48, 39, tzinfo=UTC)  # 14:48:39 PDT
    assert who(index, "172.16.64.25", stop - timedelta(seconds=21)).users == ["jaime"]
    assert who(index, "172.16.64.25", stop).users == ["jaime"]
    # Mail::Abuse matched 3 s after the Stop (and missed 7 s before it): the window is the session.
    assert who(index, "172.16.64.25", stop + timedelta(seconds=3)).status == "none"
    assert who(index, "172.16.64.25", stop - timedelta(seconds=22)).status == "none"
    # Read as UTC the same record is 7 hours earlier: a zone change rebuilds the index.
    st = index.refresh([tmp_path / "detail"], zone="UTC")
    assert st.rebuilt
    assert who(index, "172.16.64.25", stop - timedelta(hours=7)).users == ["jaime"]
    assert who(index, "172.16.64.25", stop).status == "none"


def test_corrupt_records_are_counted_and_skipped(tmp_path):
    good1, good2 = session("G1", "gina", 0, 10), session("H1", "hugo", 20, 30, ip="192.0.2.18")
    bad_date = rec("Start", "Z1", "zed", at(0), ip="192.0.2.66").replace("Tue Nov 24", "Tue Foo 99", 1)
    bad_line = rec("Start", "Z2", "zoe", at(0), ip="192.0.2.67").replace("\tNAS-Port = 17\n", "\tNAS-Port 17\n")
    orphan = "\tUser-Name = \"nobody\"\n\tFramed-IP-Address = 192.0.2.68\n\n"
    junk = b"\x00\xff\xfe garbage \x80\n\n"
    data = good1.encode() + bad_date.encode() + junk + bad_line.encode() + orphan.encode() + good2.encode()
    index = build(tmp_path, {"n/detail": data})
    st = index.last_stats
    assert (st.records, st.corrupt, st.events) == (8, 4, 4)
    assert who(index, "192.0.2.17", at(5)).users == ["gina"]
    assert who(index, "192.0.2.18", at(25)).users == ["hugo"]
    for ip in ("192.0.2.66", "192.0.2.67", "192.0.2.68"):
        assert who(index, ip, at(1), grace=86400).status == "none"
    with sqlite3.connect(tmp_path / "radius.idx") as c:
        assert c.execute("SELECT records, corrupt FROM files").fetchone() == (8, 4)


def test_parse_block_crlf_and_unknown_status():
    text = session("C1", "cris", 0, 10).replace("\n", "\r\n") + rec("Failed", "F", "f", at(0))
    res = parse_block(text.encode(), TO_UTC)
    assert (res.records, res.corrupt, res.ignored, len(res.events)) == (3, 0, 1, 2)
    assert res.events[0].user == "cris" and res.events[1].since == at(0).timestamp()


# -- files, rotation, refresh -----------------------------------------------------------------------------------

def test_tree_with_gzip_rotation_and_session_across_files(tmp_path):
    files = {
        "nas1/detail-20261123.gz": session("S1", "sam", -600, -500),
        "nas1/detail-20261124": rec("Start", "S2", "tina", at(-30)),
        "nas2/detail-20261124": rec("Stop", "S2", "tina", at(30), session_time=3600),
        "nas2/auth-detail-20261124": session("Q", "intruder", -1000, 1000),  # auth log: not accounting
    }
    index = build(tmp_path, files)
    assert index.last_stats.files == 3
    assert who(index, "192.0.2.17", at(-550)).users == ["sam"]
    assert who(index, "192.0.2.17", at(0)).users == ["tina"]
    assert who(index, "192.0.2.17", at(31), grace=86400).status == "none"


def test_refresh_reads_only_appended_bytes_and_waits_for_a_whole_record(tmp_path):
    index = build(tmp_path, {"n/detail": session("A1", "alice", 0, 60)})
    log = tmp_path / "radacct" / "n" / "detail"
    size = log.stat().st_size
    assert RadiusIndex(index.path).refresh([tmp_path / "radacct"], zone="UTC").files_read == 0
    start_bob = rec("Start", "B1", "bob", at(100))
    half = start_bob[:len(start_bob) // 2 + 3]
    with log.open("a") as f:
        f.write(half)  # the server is in the middle of writing a record
    st = RadiusIndex(index.path).refresh([tmp_path / "radacct"], zone="UTC")
    assert st.bytes_read == len(half) and st.events == 0
    with log.open("a") as f:
        f.write(start_bob[len(half):] + rec("Stop", "B1", "bob", at(160), session_time=3600))
    index = RadiusIndex(index.path)
    st = index.refresh([tmp_path / "radacct"], zone="UTC")
    assert st.bytes_read == log.stat().st_size - size  # from the end of the last whole record only
    assert st.events == 2 and not st.rebuilt
    assert who(index, "192.0.2.17", at(130)).users == ["bob"]
    assert who(index, "192.0.2.17", at(30)).users == ["alice"]
    assert who(index, "192.0.2.17", at(161), grace=86400).status == "none"


def test_stop_appended_later_closes_the_session_from_a_previous_run(tmp_path):
    index = build(tmp_path, {"n/detail": rec("Start", "C1", "carl", at(0))})
    assert who(index, "192.0.2.17", at(500), grace=86400).users == ["carl"]
    with (tmp_path / "radacct" / "n" / "detail").open("a") as f:
        f.write(rec("Stop", "C1", "carl", at(60), session_time=3600))
    index = RadiusIndex(index.path)
    index.refresh([tmp_path / "radacct"], zone="UTC")
    assert who(index, "192.0.2.17", at(500), grace=86400).status == "none"
    assert who(index, "192.0.2.17", at(59)).users == ["carl"]
    with sqlite3.connect(index.path) as c:
        assert c.execute("SELECT count(*) FROM sessions").fetchone() == (1,)


def test_rotated_and_compressed_file_is_not_parsed_again(tmp_path):
    index = build(tmp_path, {"n/detail": session("A1", "alice", 0, 60) * 50})
    log = tmp_path / "radacct" / "n" / "detail"
    data = log.read_bytes()
    # logrotate: compress yesterday's file, start a new one.
    (log.parent / "detail.1.gz").write_bytes(gzip.compress(data + session("B1", "bob", 100, 160).encode()))
    log.write_text(session("C1", "carl", 200, 260))
    index = RadiusIndex(index.path)
    st = index.refresh([tmp_path / "radacct"], zone="UTC")
    assert st.events == 4  # bob's two records and carl's two: alice's 100 were not parsed again
    assert [who(index, "192.0.2.17", at(m)).users for m in (30, 130, 230)] == [["alice"], ["bob"], ["carl"]]


def test_replaced_file_is_read_again(tmp_path):
    index = build(tmp_path, {"n/detail": session("A1", "alice", 0, 60)})
    log = tmp_path / "radacct" / "n" / "detail"
    os.unlink(log)
    log.write_text(session("D1", "dora", 300, 360))
    index = RadiusIndex(index.path)
    st = index.refresh([tmp_path / "radacct"], zone="UTC")
    assert st.events == 2
    assert who(index, "192.0.2.17", at(330)).users == ["dora"]
    assert who(index, "192.0.2.17", at(30)).users == ["alice"]  # history is kept


def test_reading_everything_twice_changes_nothing(tmp_path):
    text = session("A1", "alice", 0, 60) + session("B1", "bob", 50, 120) + rec("Interim-Update", "C", "c", at(5))
    build(tmp_path, {"n/detail": text, "copy/detail": text})
    with sqlite3.connect(tmp_path / "radius.idx") as c:
        rows = c.execute("SELECT user, start, last, stop FROM sessions ORDER BY user").fetchall()
    assert [r[0] for r in rows] == ["alice", "bob", "c"]


def _refresh_in_child(args: tuple[str, str]) -> int:
    index = RadiusIndex(args[0])
    st = index.refresh([args[1]], zone="UTC")
    return st.events


def test_two_processes_refreshing_at_once_index_once(tmp_path):
    (tmp_path / "radacct").mkdir()
    text = "".join(session(f"S{i}", f"u{i}", i, i + 1, ip=f"10.1.{i // 250}.{i % 250 + 1}") for i in range(3000))
    (tmp_path / "radacct" / "detail").write_text(text)
    args = (str(tmp_path / "radius.idx"), str(tmp_path / "radacct"))
    with multiprocessing.get_context("fork").Pool(2) as pool:
        events = sorted(pool.map(_refresh_in_child, [args, args]))
    assert events == [0, 6000]  # one built it, the other waited and found nothing new
    index = RadiusIndex(args[0])
    assert who(index, "10.1.11.250", at(2999.5)).users == ["u2999"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["radacct", "radius.idx", "radius.idx.lock"]


# -- the processor ------------------------------------------------------------------------------------------------

def _report(*incidents: Incident) -> Report:
    return Report(raw=b"", incidents=list(incidents))


def test_processor_enriches_incidents_and_explains(tmp_path):
    tree = tmp_path / "radacct" / "nas1"
    tree.mkdir(parents=True)
    (tree / "detail-20261124").write_text(session("A1", "alice", 0, 60) + session("B1", "bob", 50, 120))
    proc = RadiusProcessor({"detail": "radacct", "index": "radius.idx", "zone": "UTC"}, base=tmp_path)
    report = _report(
        Incident("192.0.2.17", "spam", at(10), "log", "explicit"),
        Incident("192.0.2.17", "spam", at(55), "log", "explicit"),
        Incident("192.0.2.17", "spam", None, "log"),
        Incident("192.0.2.99", "spam", at(10), "log", "explicit"),
    )
    proc.process(report)
    proc.close()
    first, amb, no_time, other = report.incidents
    assert first.extra["user"] == "alice"
    assert first.extra["radius"]["session"] == "A1" and first.extra["radius"]["networks"] == ["192.0.2.17/32"]
    assert first.extra["radius"]["start"] == at(0).isoformat() and first.extra["radius"]["stop"] == at(60).isoformat()
    assert amb.extra["user"] is None and sorted(amb.extra["radius"]["ambiguous"]) == ["alice", "bob"]
    assert "user" not in no_time.extra and "user" not in other.extra
    note = report.notes["radius"]
    assert (note["matched"], note["ambiguous"], note["unmatched"]) == (1, 1, 2)
    assert [e["result"] for e in note["incidents"]] == ["matched", "ambiguous", "no-time", "unmatched"]
    assert "no time" in note["incidents"][2]["reason"]
    assert note["incidents"][3]["reason"] == "no session in the RADIUS logs for 192.0.2.99"
    assert note["refresh"]["events"] == 4
    json.dumps(report.to_dict())  # everything it added is JSON-serialisable


def test_processor_indexes_once_per_run_and_not_for_empty_reports(tmp_path):
    (tmp_path / "detail").write_text(session("A1", "alice", 0, 60))
    proc = RadiusProcessor({"detail": str(tmp_path / "detail"), "index": str(tmp_path / "i"), "zone": "UTC"})
    proc.process(_report())
    timeless = _report(Incident("192.0.2.17", "spam", None, "log"))
    proc.process(timeless)
    assert not (tmp_path / "i").exists()  # nothing to ask the logs: they are not even indexed
    assert timeless.notes["radius"]["incidents"][0]["result"] == "no-time"
    proc.process(_report(Incident("192.0.2.17", "spam", at(1), "log", "explicit")))
    (tmp_path / "detail").unlink()  # logs gone mid-run: the open index still answers
    rep = _report(Incident("192.0.2.17", "spam", at(2), "log", "explicit"))
    proc.process(rep)
    assert rep.incidents[0].extra["user"] == "alice"


def test_processor_without_logs_or_index_asks_for_a_retry(tmp_path):
    from abuso.errors import TransientError

    proc = RadiusProcessor({"detail": str(tmp_path / "missing"), "index": str(tmp_path / "i")})
    with pytest.raises(TransientError):
        proc.process(_report(Incident("192.0.2.17", "spam", at(1), "log", "explicit")))


@pytest.mark.parametrize("options, key", [
    ({}, "detail"),
    ({"detail": "/x", "grace": "soon"}, "grace"),
    ({"detail": "/x", "zone": "Mars/Olympus"}, "zone"),
    ({"detail": "/x", "colour": "blue"}, "colour"),
    ({"detail": ["/x", 3]}, "detail[1]"),
])
def test_bad_options_name_the_key(options, key):
    with pytest.raises(ConfigError) as e:
        RadiusProcessor.check_options(options)
    assert e.value.key == key


def test_config_error_names_file_line_and_key(tmp_path):
    from abuso.config import load

    cfg = tmp_path / "abuso.yaml"
    cfg.write_text("parsers: []\nprocessors:\n  - radius:\n      detail: /var/log/radacct\n      slack: later\n")
    with pytest.raises(ConfigError) as e:
        load(cfg)
    assert f"{cfg}:5: processors.radius.slack: " in str(e.value)  # the line of the key itself


def test_file_edited_behind_its_unchanged_head_is_read_again(tmp_path):
    many = "".join(session(f"A{i}", "alice", i * 10, i * 10 + 5) for i in range(20))
    index = build(tmp_path, {"n/detail": many})
    log = tmp_path / "radacct" / "n" / "detail"
    assert log.stat().st_size > 2 * 4096
    # Same first bytes, same length, but a session in the middle now had another address.
    edited = many.replace(session("A19", "alice", 190, 195), session("A19", "alice", 190, 195, ip="192.0.2.99"))
    assert len(edited) == len(many) and edited[:4096] == many[:4096]
    log.write_text(edited + "\n")
    index = RadiusIndex(index.path)
    assert index.refresh([tmp_path / "radacct"], zone="UTC").events == 40
    assert who(index, "192.0.2.99", at(192)).users == ["alice"]


def test_broken_index_file_is_rebuilt(tmp_path):
    index = build(tmp_path, {"n/detail": session("A1", "alice", 0, 60)})
    index.path.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    index = RadiusIndex(index.path)
    st = index.refresh([tmp_path / "radacct"], zone="UTC")
    assert st.rebuilt and st.events == 2
    assert who(index, "192.0.2.17", at(30)).users == ["alice"]


def test_processor_refreshes_again_for_an_incident_newer_than_its_index(tmp_path):
    import time as _time

    log = tmp_path / "detail"
    log.write_text(session("A1", "alice", 0, 60))
    proc = RadiusProcessor({"detail": str(log), "index": str(tmp_path / "i"), "zone": "UTC"})
    proc.process(_report(Incident("192.0.2.17", "spam", at(1), "log", "explicit")))
    now = datetime.now(UTC).replace(microsecond=0)
    with log.open("a") as f:
        f.write(rec("Start", "N1", "nora", now - timedelta(seconds=30), ip="192.0.2.55"))
    old = _report(Incident("192.0.2.17", "spam", at(2), "log", "explicit"))
    proc._refreshed_at = _time.time() - 120
    proc.process(old)  # an old incident: the index read before is enough, nothing re-read
    assert "refresh" not in old.notes["radius"]
    assert old.incidents[0].extra["user"] == "alice"
    fresh = _report(Incident("192.0.2.55", "spam", now, "log", "explicit"))
    proc.process(fresh)
    assert fresh.incidents[0].extra["user"] == "nora"
    assert fresh.notes["radius"]["refresh"]["events"] == 1


# -- property: any log, read at once or in pieces cut anywhere, answers like a brute-force reading of it ---------


_sessions = hs.lists(hs.tuples(hs.integers(1, 3), hs.sampled_from(["ann", "ben", "cy"]), hs.integers(0, 300),
                               hs.integers(1, 90)), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sessions=_sessions, cut=hs.floats(0, 1), probes=hs.lists(hs.integers(-10, 400 * 60), max_size=8))
def test_index_agrees_with_brute_force(tmp_path_factory, sessions, cut, probes):
    tmp = tmp_path_factory.mktemp("prop")
    records = []
    for n, (host, user, start, length) in enumerate(sessions):
        ip = f"192.0.2.{host}"
        records.append((at(start), rec("Start", f"S{n}", user, at(start), ip)))
        records.append((at(start + length), rec("Stop", f"S{n}", user, at(start + length), ip,
                                                session_time=length * 60)))
    data = "".join(text for _, text in sorted(records, key=lambda r: r[0])).encode()
    log = tmp / "detail"
    split = int(len(data) * cut)
    log.write_bytes(data[:split])  # the server was in the middle of writing, anywhere
    RadiusIndex(tmp / "idx").refresh([log], zone="UTC")
    with log.open("ab") as f:
        f.write(data[split:])
    index = RadiusIndex(tmp / "idx")
    index.refresh([log], zone="UTC")
    points = [(h, at(s)) for h, _, s, _ in sessions] + [(h, at(s + n)) for h, _, s, n in sessions]
    points += [(h, at(s + n) + timedelta(seconds=1)) for h, _, s, n in sessions]
    points += [(1 + p % 3, T0 + timedelta(seconds=p)) for p in probes]
    for host, when in points:
        truth = {u for h, u, s, n in sessions if h == host and at(s) <= when <= at(s + n)}
        got = who(index, f"192.0.2.{host}", when)
        expected = "none" if not truth else "matched" if len(truth) == 1 else "ambiguous"
        assert (got.status, set(got.users)) == (expected, truth), (host, when)


def test_start_learned_in_a_later_run_moves_the_window(tmp_path):
    index = build(tmp_path, {"n/detail": rec("Interim-Update", "L1", "liam", at(30))})
    assert who(index, "192.0.2.17", at(10)).status == "none"  # nothing says the session ran at minute 10
    with (tmp_path / "radacct" / "n" / "detail").open("a") as f:
        f.write(rec("Stop", "L1", "liam", at(60), session_time=3600))  # it ran since minute 0
    index = RadiusIndex(index.path)
    index.refresh([tmp_path / "radacct"], zone="UTC")
    assert who(index, "192.0.2.17", at(10)).users == ["liam"]
    assert who(index, "192.0.2.17", at(0) - timedelta(seconds=1)).status == "none"


def test_explain_shows_the_user(tmp_path):
    from abuso.processors.explain import ExplainProcessor

    (tmp_path / "detail").write_text(session("A1", "alice", 0, 60))
    report = _report(Incident("192.0.2.17", "spam", at(10), "log", "explicit"))
    RadiusProcessor({"detail": str(tmp_path / "detail"), "index": str(tmp_path / "i"), "zone": "UTC"}).process(report)
    ExplainProcessor({}).process(report)
    assert "'user': 'alice'" in report.notes["explain"] and "matched" in report.notes["explain"]


def test_event_timestamp_of_a_nas_without_clock_is_not_believed(tmp_path):
    text = rec("Start", "Q1", "quinn", at(0), Event_Timestamp='"Jan  1 1970 00:00:07 UTC"')
    text += rec("Stop", "Q1", "quinn", at(60), session_time=3600, Event_Timestamp='"Jan  1 1970 01:00:07 UTC"')
    index = build(tmp_path, {"n/detail": text})
    assert who(index, "192.0.2.17", at(30)).users == ["quinn"]
    assert who(index, "192.0.2.17", datetime(1970, 1, 1, 0, 30, tzinfo=UTC)).status == "none"


def test_pipeline_end_to_end_acns_notice_to_intelmq_account(tmp_path, corpus):
    """A real copyright notice through parser, radius and the IntelMQ writer: the account is the subscriber."""
    from abuso.output.intelmq import render
    from abuso.pipeline import Pipeline

    noticed = datetime(2015, 11, 13, 20, 35, 3, tzinfo=UTC)
    log = rec("Start", "E1", "dsl-4711", noticed - timedelta(hours=3), ip="192.168.2.200")
    log += rec("Stop", "E1", "dsl-4711", noticed + timedelta(hours=1), ip="192.168.2.200", session_time=4 * 3600)
    log += session("E2", "dsl-0815", 0, 60, ip="192.168.2.200")  # the same address years later: someone else
    (tmp_path / "detail").write_text(log)
    pipeline = Pipeline.from_config({"parsers": ["acns"], "processors": [
        {"radius": {"detail": str(tmp_path / "detail"), "index": str(tmp_path / "radius.idx"), "zone": "UTC"}}]})
    raw = (corpus / "abuseio/ip-echelon/ip-echelon_sample1.eml").read_bytes()
    with pipeline:
        report = pipeline.process(raw)
    (inc,) = report.incidents
    assert (inc.extra["user"], inc.extra["radius"]["session"]) == ("dsl-4711", "E1")
    assert '"source.account": "dsl-4711"' in render(report)


def test_cli_refreshes_and_answers_who_held_an_address(tmp_path):
    import subprocess
    import sys

    (tmp_path / "radacct").mkdir()
    (tmp_path / "radacct" / "detail").write_text(session("A1", "alice", 0, 60) + session("B1", "bob", 50, 120))
    cfg = tmp_path / "abuso.yaml"
    cfg.write_text("parsers: []\nprocessors:\n  - radius: {detail: radacct, index: radius.idx, zone: UTC}\n")
    root = Path(__file__).resolve().parent.parent

    def abuso(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", "from abuso.cli import main; main()", "radius", "-c", str(cfg),
                               *args], capture_output=True, text=True, cwd=root, timeout=60)

    first = abuso()
    assert first.returncode == 0 and "1 of 1 files read, 4 events, 0 corrupt" in first.stdout
    out = abuso("--json", "192.0.2.17", "2026-11-24T13:10:00+01:00")  # 12:10 UTC: minute 10
    answer = json.loads(out.stdout)
    assert (answer["result"], answer["users"], answer["refresh"]["files_read"]) == ("matched", ["alice"], 0)
    text = abuso("192.0.2.17", "2026-11-24T12:55:00")  # no offset: UTC
    assert "ambiguous: alice, bob" in text.stdout and text.returncode == 0
    assert abuso("192.0.2.17").returncode == 64
    same = json.loads(abuso("-f", "json", "192.0.2.17", "2026-11-24T13:10:00+01:00").stdout)
    assert same["users"] == ["alice"]
    bad = abuso("192.0.2.17", "yesterday noon")
    assert bad.returncode == 64 and bad.stderr.count("\n") == 1
    assert "WHEN: 'yesterday noon' is not a time" in bad.stderr and "isoformat" not in bad.stderr


def test_renamed_log_still_written_to_is_read_from_where_it_was_left(tmp_path):
    # logrotate with delaycompress: detail becomes detail.1 and the server finishes its last write there.
    index = build(tmp_path, {"n/detail": session("A1", "alice", 0, 60) * 30})
    folder = tmp_path / "radacct" / "n"
    (folder / "detail").rename(folder / "detail.1")
    with (folder / "detail.1").open("a") as f:
        f.write(rec("Start", "B1", "bob", at(100)))
    (folder / "detail").write_text(rec("Stop", "B1", "bob", at(160), session_time=3600))
    index = RadiusIndex(index.path)
    st = index.refresh([tmp_path / "radacct"], zone="UTC")
    assert (st.files_read, st.events) == (2, 2)
    assert who(index, "192.0.2.17", at(130)).users == ["bob"]
    assert who(index, "192.0.2.17", at(161), grace=86400).status == "none"
    with sqlite3.connect(index.path) as c:
        assert sorted(p.rsplit("/", 1)[1] for (p,) in c.execute("SELECT path FROM files")) == ["detail", "detail.1"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sessions=_sessions, lost=hs.lists(hs.booleans(), min_size=12, max_size=12),
       delays=hs.lists(hs.integers(0, 120), min_size=12, max_size=12), rotate=hs.floats(0, 1))
def test_lost_starts_delays_and_rotation_change_no_answer(tmp_path_factory, sessions, lost, delays, rotate):
    tmp = tmp_path_factory.mktemp("prop2")
    records = []
    for n, (host, user, start, length) in enumerate(sessions):
        ip, d = f"192.0.2.{host}", delays[n]
        if not lost[n]:  # the Start may be lost: interims and Stop carry Acct-Session-Time
            records.append((at(start) + timedelta(seconds=d), rec("Start", f"S{n}", user, at(start), ip, delay=d)))
        for m in range(10, length, 10):
            records.append((at(start + m) + timedelta(seconds=d), rec("Interim-Update", f"S{n}", user,
                                                                      at(start + m), ip, delay=d,
                                                                      session_time=m * 60)))
        records.append((at(start + length) + timedelta(seconds=d),
                        rec("Stop", f"S{n}", user, at(start + length), ip, delay=d, session_time=length * 60)))
    records.sort(key=lambda r: r[0])  # as the server logged them: in arrival order
    split = int(len(records) * rotate)
    folder = tmp / "radacct" / "nas"
    folder.mkdir(parents=True)
    (folder / "detail-20261124.gz").write_bytes(gzip.compress("".join(t for _, t in records[:split]).encode()))
    (folder / "detail-20261125").write_text("".join(t for _, t in records[split:]))
    index = RadiusIndex(tmp / "idx")
    index.refresh([tmp / "radacct"], zone="UTC")
    for host, _, s, n in sessions:
        for when in (at(s), at(s + n), at(s) - timedelta(seconds=1), at(s + n) + timedelta(seconds=1)):
            truth = {u for h, u, s2, n2 in sessions if h == host and at(s2) <= when <= at(s2 + n2)}
            got = who(index, f"192.0.2.{host}", when)
            assert set(got.users) == truth, (host, when)


def test_accounting_on_in_a_later_run_bounds_sessions_already_indexed(tmp_path):
    index = build(tmp_path, {"n/detail": rec("Start", "K1", "kim", at(0))})
    with (tmp_path / "radacct" / "n" / "detail").open("a") as f:
        f.write(rec("Accounting-On", "", None, at(30), ip=None))
        f.write(rec("Start", "K1", "ken", at(40)))  # the rebooted NAS counts session ids from the start again
    index = RadiusIndex(index.path)
    index.refresh([tmp_path / "radacct"], zone="UTC")
    assert who(index, "192.0.2.17", at(29), grace=86400).users == ["kim"]
    assert who(index, "192.0.2.17", at(29), grace=600).status == "none"  # open-ended still means last seen + grace
    miss = who(index, "192.0.2.17", at(35), grace=86400)
    assert miss.status == "none" and "NAS restarted 5m 0s earlier" in miss.reason
    assert who(index, "192.0.2.17", at(45), grace=86400).users == ["ken"]


def test_a_months_long_session_does_not_widen_every_lookup(tmp_path):
    text = rec("Start", "B1", "business", at(0), ip="192.0.2.200")
    text += rec("Interim-Update", "B1", "business", at(90 * 24 * 60), ip="192.0.2.200", session_time=90 * 86400)
    text += "".join(session(f"D{i}", f"dsl{i}", i * 30, i * 30 + 20) for i in range(50))
    index = build(tmp_path, {"n/detail": text})
    assert who(index, "192.0.2.200", at(45 * 24 * 60)).users == ["business"]
    assert who(index, "192.0.2.17", at(49 * 30 + 10)).users == ["dsl49"]
    index.open()
    assert index._maxdur == 20 * 60  # the scan of short sessions still reaches back 20 minutes only


def test_an_index_kept_among_the_logs_is_not_read_as_one(tmp_path):
    (tmp_path / "detail-20261124").write_text(session("A1", "alice", 0, 60))
    index = RadiusIndex(tmp_path / "detail.idx")
    index.refresh([tmp_path], zone="UTC")
    st = index.refresh([tmp_path], zone="UTC")
    assert (st.files, st.corrupt) == (1, 0)
    assert who(index, "192.0.2.17", at(30)).users == ["alice"]


def test_processor_with_a_broken_index_and_no_refresh_asks_for_a_retry(tmp_path):
    from abuso.errors import TransientError

    (tmp_path / "i").write_bytes(b"this is not a database at all" * 100)
    proc = RadiusProcessor({"detail": str(tmp_path), "index": str(tmp_path / "i"), "refresh": False})
    with pytest.raises(TransientError, match="radius: index"):
        proc.process(_report(Incident("192.0.2.17", "spam", at(1), "log", "explicit")))


def test_event_timestamp_in_a_misread_zone_is_not_believed(tmp_path):
    # A Beijing NAS writes CST (+8); CST also names Chicago (-6): read as such it is 14 hours off.
    start_cst = (at(0) + timedelta(hours=8)).strftime("%b %d %Y %H:%M:%S CST")
    stop_cst = (at(60) + timedelta(hours=8)).strftime("%b %d %Y %H:%M:%S CST")
    text = rec("Start", "C1", "chen", at(0), delay=3, Event_Timestamp=f'"{start_cst}"')
    text += rec("Stop", "C1", "chen", at(60), session_time=3600, Event_Timestamp=f'"{stop_cst}"')
    index = build(tmp_path, {"n/detail": text})
    assert who(index, "192.0.2.17", at(0)).users == ["chen"]  # server time minus the 3 s of delay
    assert who(index, "192.0.2.17", at(60) + timedelta(seconds=1)).status == "none"
    # Seconds of NAS/server disagreement are not a zone: there the NAS's own clock wins.
    off = rec("Start", "C2", "dana", at(100), ip="192.0.2.18", Event_Timestamp=f'"{int(at(100).timestamp()) - 40}"')
    s = who(build(tmp_path / "b", {"n/detail": off}), "192.0.2.18", at(100)).sessions[0]
    assert s.start == at(100).timestamp() - 40


def test_values_holding_equals_signs_and_odd_spacing_parse_the_same():
    plain = rec("Start", "V1", "vic", at(0), Cisco_AVPair='"subscriber:command = account-logon"')
    odd = plain.replace("\tUser-Name = ", "    User-Name=").replace("\tNAS-Port = 17", "\tNAS-Port =   17  ")
    for text in (plain, odd):
        res = parse_block(text.encode(), TO_UTC)
        assert (res.corrupt, len(res.events)) == (0, 1), text
        ev = res.events[0]
        assert (ev.user, ev.session, ev.time) == ("vic", "V1", at(0).timestamp())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sessions=_sessions, stop_lost=hs.lists(hs.booleans(), min_size=12, max_size=12), cut=hs.floats(0, 1),
       probes=hs.lists(hs.integers(-10, 400 * 60), max_size=8))
@example(sessions=[(1, "ann", 0, 5), (1, "ben", 5, 20)], stop_lost=[True] + [False] * 11, cut=0.5, probes=[])
def test_open_sessions_agree_with_brute_force(tmp_path_factory, sessions, stop_lost, cut, probes):
    """Lost Stops: a session is believed until last seen + grace, or until the next session on its address."""
    grace = 1800
    tmp = tmp_path_factory.mktemp("prop3")
    records, spans = [], []
    for n, (host, user, start, length) in enumerate(sessions):
        ip = f"192.0.2.{host}"
        records.append((at(start), rec("Start", f"S{n}", user, at(start), ip)))
        interims = list(range(10, length, 10))
        for m in interims:
            records.append((at(start + m), rec("Interim-Update", f"S{n}", user, at(start + m), ip,
                                               session_time=m * 60)))
        if stop_lost[n]:
            last = at(start + (interims[-1] if interims else 0))
            spans.append((host, user, at(start), last, None))
        else:
            records.append((at(start + length), rec("Stop", f"S{n}", user, at(start + length), ip,
                                                    session_time=length * 60)))
            spans.append((host, user, at(start), at(start + length), at(start + length)))
    data = "".join(text for _, text in sorted(records, key=lambda r: r[0])).encode()
    log = tmp / "detail"
    log.write_bytes(data[:int(len(data) * cut)])
    RadiusIndex(tmp / "idx").refresh([log], zone="UTC")
    log.write_bytes(data)
    index = RadiusIndex(tmp / "idx")
    index.refresh([log], zone="UTC")

    def truth(host: int, when: datetime) -> set[str]:
        users = set()
        for h, user, start, last, stop in spans:
            if h != host or when < start:
                continue
            if stop is not None:
                covered = when <= stop
            else:
                covered = when <= last + timedelta(seconds=grace) and not any(
                    h2 == host and last < s2 <= when for h2, _, s2, _, _ in spans)
            if covered:
                users.add(user)
        return users

    points = [(h, p) for h, _, s, l, e in spans for p in (s, l, (e or l + timedelta(seconds=grace)))]
    points += [(h, p + timedelta(seconds=1)) for h, p in points] + [(h, p - timedelta(seconds=1)) for h, p in points]
    points += [(1 + p % 3, T0 + timedelta(seconds=p)) for p in probes]
    for host, when in points:
        got = who(index, f"192.0.2.{host}", when, grace=grace)
        assert set(got.users) == truth(host, when), (host, when, got.reason)


# -- refreshes cut short -------------------------------------------------------------------------------------------

def _log_of_many_sessions(n: int = 60) -> str:
    return "".join(session(f"M{i}", f"user{i}", i * 5, i * 5 + 4, ip=f"192.0.2.{i % 7 + 1}") for i in range(n))


def test_refresh_out_of_time_saves_its_work_and_the_next_goes_on(tmp_path, monkeypatch):
    import time as _time

    from abuso.radius import index as index_module
    from abuso.radius.index import IndexNotReady

    monkeypatch.setattr(index_module, "CHUNK", 2048)
    log = tmp_path / "detail"
    log.write_text(_log_of_many_sessions())
    index = RadiusIndex(tmp_path / "idx")
    runs, parsed = 0, 0
    while True:
        runs += 1
        try:
            parsed += index.refresh([log], zone="UTC", deadline=_time.monotonic()).bytes_read  # out of time at once
            break
        except IndexNotReady as e:
            assert "the next run goes on" in str(e)
            parsed += e.stats.bytes_read
            with pytest.raises(FileNotFoundError):
                RadiusIndex(tmp_path / "idx").open()  # no half index for anyone to look things up in
    assert runs > 3
    size = log.stat().st_size  # each run re-reads at most the unfinished record it stopped in
    assert size <= parsed < size + runs * 400
    # Every run went on where the last stopped: 60 sessions, none twice, all answers right.
    with sqlite3.connect(index.path) as c:
        assert c.execute("SELECT count(*) FROM sessions").fetchone() == (60,)
    assert who(index, "192.0.2.1", at(7 * 5 + 2)).users == ["user7"]
    assert who(index, "192.0.2.4", at(59 * 5 + 4)).users == ["user59"]


class _Killed(BaseException):
    """What the runner's per-message alarm raises: nothing may swallow it."""


def test_build_killed_midway_resumes_from_its_last_checkpoint(tmp_path, monkeypatch):
    from abuso.radius import index as index_module

    monkeypatch.setattr(index_module, "CHUNK", 2048)
    monkeypatch.setattr(index_module, "CHECKPOINT", 0.0)
    log = tmp_path / "detail"
    log.write_text(_log_of_many_sessions())
    fold = index_module._Refresher._fold
    calls = {"n": 0}

    def dying_fold(self, block):
        calls["n"] += 1
        if calls["n"] == 5:
            raise _Killed()
        return fold(self, block)

    monkeypatch.setattr(index_module._Refresher, "_fold", dying_fold)
    with pytest.raises(_Killed):
        RadiusIndex(tmp_path / "idx").refresh([log], zone="UTC")
    monkeypatch.setattr(index_module._Refresher, "_fold", fold)
    index = RadiusIndex(tmp_path / "idx")
    st = index.refresh([log], zone="UTC")
    assert 0 < st.bytes_read < log.stat().st_size  # went on from the last checkpoint
    with sqlite3.connect(index.path) as c:
        assert c.execute("SELECT count(*) FROM sessions").fetchone() == (60,)
    assert [who(index, f"192.0.2.{i % 7 + 1}", at(i * 5 + 2)).users for i in range(60)] == [
        [f"user{i}"] for i in range(60)]


def test_processor_out_of_budget_asks_for_a_retry_and_finishes_later(tmp_path, monkeypatch):
    from abuso.errors import TransientError
    from abuso.radius import index as index_module

    monkeypatch.setattr(index_module, "CHUNK", 2048)
    log = tmp_path / "detail"
    log.write_text(_log_of_many_sessions())
    proc = RadiusProcessor({"detail": str(log), "index": str(tmp_path / "i"), "zone": "UTC", "budget": "0.000001"})
    retries = 0
    while True:
        report = _report(Incident("192.0.2.1", "spam", at(2), "log", "explicit"))
        try:
            proc.process(report)
            break
        except TransientError as e:
            assert "the next run goes on" in str(e)
            retries += 1
    assert retries > 3 and report.incidents[0].extra["user"] == "user0"


def test_local_zone_is_remembered_as_what_it_was(tmp_path, monkeypatch):
    import time as _time

    if not hasattr(_time, "tzset"):
        pytest.skip("no tzset")
    (tmp_path / "detail").write_text(LIVINGSTON)
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    _time.tzset()
    try:
        index = RadiusIndex(tmp_path / "idx")
        index.refresh([tmp_path / "detail"])  # zone=local, as FreeRADIUS writes its date lines
        assert who(index, "172.16.64.25", datetime(1996, 7, 30, 21, 48, 30, tzinfo=UTC)).users == ["jaime"]
        monkeypatch.setenv("TZ", "UTC")
        _time.tzset()
        assert index.refresh([tmp_path / "detail"]).rebuilt  # another "local": the times are not the same
        assert who(index, "172.16.64.25", datetime(1996, 7, 30, 14, 48, 30, tzinfo=UTC)).users == ["jaime"]
    finally:
        monkeypatch.undo()
        _time.tzset()
