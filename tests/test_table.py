"""The table processor: longest-prefix match, validity dates, nested keys, file:line errors, speed."""

from __future__ import annotations

import ipaddress
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abuso.errors import ConfigError
from abuso.model import Incident, Report
from abuso.processors.table import NetworkTable, TableProcessor

ROOT = Path(__file__).resolve().parent.parent
UTC = timezone.utc
T = datetime(2026, 11, 22, 2, 14, 7, tzinfo=UTC)

TABLE = """\
# our address space
192.0.2.0/24      id=ACME;name=ACME Ltd;contact.email=noc@acme.example;contact.phone=+1 555 0100
192.0.2.128/25    id=BETA;from=2026-07-01            # re-assigned from ACME
192.0.2.128/25    id=ACME-OLD;until=2026-06-30
192.0.2.200/32    id=SERVER;contact.url=https://example.net/#abuse
10.0.0.0/8\tid=POOL; region = north
2001:db8::/32     id=V6POOL
2001:db8:1::/48   id=GAMMA;contact.email=abuse@gamma.example
"""


def inc(ip: str, when: datetime | None = T) -> Incident:
    return Incident(ipaddress.ip_address(ip), "spam", when, "log", "explicit" if when else "none")


@pytest.fixture
def table() -> NetworkTable:
    return NetworkTable.parse(TABLE, "networks.txt")


def cust(table: NetworkTable, ip: str, when: datetime | None = T) -> str | None:
    e = table.lookup(ipaddress.ip_address(ip), when)
    return e.customer["id"] if e else None


def test_longest_prefix_wins(table):
    assert cust(table, "192.0.2.1") == "ACME"
    assert cust(table, "192.0.2.129") == "BETA"
    assert cust(table, "192.0.2.200") == "SERVER"
    assert cust(table, "192.0.2.201") == "BETA"
    assert cust(table, "10.200.3.4") == "POOL"
    assert cust(table, "192.0.3.1") is None
    assert cust(table, "2001:db8:1:ffff::1") == "GAMMA"
    assert cust(table, "2001:db8:2::1") == "V6POOL"
    assert cust(table, "2001:db9::1") is None
    assert cust(table, "::ffff:192.0.2.1") == "ACME"  # IPv4-mapped IPv6 is the IPv4 host
    assert cust(table, "::c000:201") is None  # ... but an IPv4-compatible address is not


def test_validity_dates_pick_who_held_the_block_then(table):
    june30_late = datetime(2026, 6, 30, 23, 59, 59, tzinfo=UTC)
    july1 = datetime(2026, 7, 1, tzinfo=UTC)
    assert cust(table, "192.0.2.129", june30_late) == "ACME-OLD"  # until= includes the whole day
    assert cust(table, "192.0.2.129", july1) == "BETA"
    cest = timezone(timedelta(hours=2))
    assert cust(table, "192.0.2.129", datetime(2026, 7, 1, 1, 0, tzinfo=cest)) == "ACME-OLD"  # still June 30 UTC
    assert table.lookup(ipaddress.ip_address("192.0.2.129"), None).customer["id"] == "ACME"


def test_a_block_nobody_held_falls_back_to_its_parent():
    t = NetworkTable.parse("192.0.2.0/24 id=ISP\n192.0.2.0/28 id=SHORT;from=2026-01-01;until=2026-01-31\n")
    assert cust(t, "192.0.2.3", datetime(2026, 1, 15, tzinfo=UTC)) == "SHORT"
    assert cust(t, "192.0.2.3", datetime(2026, 2, 1, tzinfo=UTC)) == "ISP"
    assert cust(t, "192.0.2.3", datetime(2025, 12, 31, 23, 59, tzinfo=UTC)) == "ISP"


def test_nested_keys_and_values(table):
    e = table.lookup(ipaddress.ip_address("192.0.2.5"), T)
    assert e.customer == {"id": "ACME", "name": "ACME Ltd", "network": "192.0.2.0/24",
                          "contact": {"email": "noc@acme.example", "phone": "+1 555 0100"}}
    server = table.lookup(ipaddress.ip_address("192.0.2.200"), T).customer
    assert server["contact"]["url"] == "https://example.net/#abuse"  # '#' inside a value is not a comment
    assert table.lookup(ipaddress.ip_address("10.1.1.1"), T).customer == {
        "id": "POOL", "region": "north", "network": "10.0.0.0/8"}


@pytest.mark.parametrize("text, line, message", [
    ("192.0.2.0/24 id=A\n\n192.0.2.1/24 id=B\n", 3, "host bits set (did you mean 192.0.2.0/24?)"),
    ("# c\nexample.net id=A\n", 2, "is not a CIDR block"),
    ("192.0.2.0/24 id\n", 1, "expected key=value"),
    ("192.0.2.0/24 bad key=1\n", 1, "a key is letters"),
    ("192.0.2.0/24 a=1;a=2\n", 1, "'a' is given twice"),
    ("192.0.2.0/24 a=1;a.b=2\n", 1, "'a' already has a value"),
    ("192.0.2.0/24 a.b=1;a=2\n", 1, "'a' holds keys"),
    ("192.0.2.0/24 from=2026-13-01\n", 1, "from='2026-13-01': expected a date"),
    ("192.0.2.0/24 from=2026-02-01;until=2026-01-01\n", 1, "from= must be before until="),
    ("192.0.2.0/24 network=x\n", 1, "'network' is set by the table"),
    ("192.0.2.0/24 id=A\n192.0.2.0/24 id=B\n", 2, "already assigned on line 1"),
    ("192.0.2.0/24 id=A;until=2026-06-30\n192.0.2.0/24 id=B;from=2026-06-30\n", 2, "already assigned on line 1"),
])
def test_errors_name_file_and_line(text, line, message):
    with pytest.raises(ConfigError) as e:
        NetworkTable.parse(text, "etc/networks.txt")
    assert str(e.value).startswith(f"etc/networks.txt:{line}: "), str(e.value)
    assert message in str(e.value)


def test_adjacent_windows_are_fine():
    t = NetworkTable.parse("192.0.2.0/24 id=A;until=2026-06-30\n192.0.2.0/24 id=B;from=2026-07-01\n")
    assert len(t) == 2


def test_processor_attaches_customer_and_notes_the_unmatched(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "networks.txt").write_text(TABLE)
    proc = TableProcessor({"file": "etc/networks.txt"}, tmp_path)
    r = Report(raw=b"", date=T, incidents=[inc("192.0.2.7"), inc("198.51.100.1"), inc("192.0.2.130", None),
                                           inc("192.0.2.131", datetime(2020, 1, 1, tzinfo=UTC))])
    proc.process(r)
    assert r.incidents[0].extra["customer"]["id"] == "ACME"
    assert r.incidents[0].to_dict()["customer"]["contact"]["email"] == "noc@acme.example"  # shown in JSON
    assert "customer" not in r.incidents[1].extra
    assert r.incidents[2].extra["customer"]["id"] == "BETA"  # no time: the report's Date decides
    assert r.incidents[3].extra["customer"]["id"] == "ACME-OLD"
    assert r.notes["table"] == {"matched": 3, "unmatched": 1,
                                "why": ["198.51.100.1: no block in networks.txt holds it"]}
    r.incidents[0].extra["customer"]["id"] = "CHANGED"  # each report owns its copy
    assert proc.table.lookup(ipaddress.ip_address("192.0.2.7"), T).customer["id"] == "ACME"
    again = Report(raw=b"", date=T, incidents=[inc("192.0.2.7")])
    proc.process(again)
    assert again.incidents[0].extra["customer"]["id"] == "ACME"  # another report never sees a change
    empty = Report(raw=b"")
    proc.process(empty)
    assert empty.notes == {}  # nothing to say about a report without incidents


def test_processor_matches_each_incident_as_lookup_does(tmp_path):
    """Blocks are looked up once per address and report: each incident still gets the block held at its
    own time (dated lines), an IPv4-mapped IPv6 address its IPv4 block, and equal customers."""
    (tmp_path / "n.txt").write_text(TABLE)
    proc = TableProcessor({"file": "n.txt"}, tmp_path)
    rnd = random.Random(7)
    ips = ["192.0.2.130", "192.0.2.7", "::ffff:192.0.2.140", "2001:db8:1::9", "2001:db8:2::1", "203.0.113.1",
           "192.0.2.200"]
    times = [None, datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 6, 30, 23, 59, tzinfo=UTC),
             datetime(2026, 7, 1, tzinfo=UTC), T]
    incidents = [inc(rnd.choice(ips), rnd.choice(times)) for _ in range(300)]
    r = Report(raw=b"", date=datetime(2026, 3, 1, tzinfo=UTC), incidents=list(incidents))
    proc.process(r)
    for before, after in zip(incidents, r.incidents, strict=True):
        entry = proc.table.lookup(before.ip, before.time or r.date)
        assert after.extra.get("customer") == (entry.customer if entry else None), before
    assert r.notes["table"]["matched"] == sum(1 for i in r.incidents if "customer" in i.extra)


def test_unmatched_note_says_when_the_block_was_held(tmp_path):
    (tmp_path / "n.txt").write_text("192.0.2.0/24 id=A;from=2026-01-01;until=2026-01-31\n")
    proc = TableProcessor({"file": "n.txt"}, tmp_path)
    r = Report(raw=b"", incidents=[inc("192.0.2.7")])
    proc.process(r)
    (why,) = r.notes["table"]["why"]
    assert why.startswith("192.0.2.7: nobody held it at 2026-11-22T02:14:07+00:00 (line 1 (192.0.2.0/24)")


def test_many_unmatched_incidents_keep_the_note_short(tmp_path):
    (tmp_path / "n.txt").write_text("\ufeff192.0.2.0/24 id=A\r\n")  # BOM and CRLF from a Windows editor
    proc = TableProcessor({"file": "n.txt"}, tmp_path)
    r = Report(raw=b"", incidents=[inc(f"198.51.100.{i}") for i in range(200)] + [inc("192.0.2.1")])
    proc.process(r)
    assert r.notes["table"]["matched"] == 1 and r.notes["table"]["unmatched"] == 200
    assert len(r.notes["table"]["why"]) == 10


def test_config_errors(tmp_path):
    from abuso.pipeline import Pipeline

    cfg = tmp_path / "abuso.yaml"
    cfg.write_text("parsers: []\nprocessors:\n  - table: {path: x}\n")
    with pytest.raises(ConfigError, match=r"abuso.yaml:3: processors.table.path: unknown option"):
        Pipeline.from_config(cfg)
    cfg.write_text("parsers: []\nprocessors:\n  - table: {file: missing.txt}\n")
    with pytest.raises(ConfigError, match=r"missing.txt: no such file"):
        Pipeline.from_config(cfg)
    (tmp_path / "bad.txt").write_text("192.0.2.0/24 id=A\n192.0.2.300/32 id=B\n")
    cfg.write_text("parsers: []\nprocessors:\n  - table: {file: bad.txt}\n")
    with pytest.raises(ConfigError, match=r"bad.txt:2: '192.0.2.300/32' is not a CIDR block"):
        Pipeline.from_config(cfg)


def test_loads_once_and_reloads_when_the_file_changes(tmp_path):
    f = tmp_path / "n.txt"
    f.write_text("192.0.2.0/24 id=A\n")
    first = NetworkTable.load(f)
    assert NetworkTable.load(f) is first
    f.write_text("192.0.2.0/24 id=B\n")  # same size, maybe the same mtime tick: the content decides
    assert cust(NetworkTable.load(f), "192.0.2.1") == "B"


def test_a_long_run_picks_up_an_edited_table_and_survives_a_broken_edit(tmp_path, monkeypatch):
    f = tmp_path / "n.txt"
    f.write_text("192.0.2.0/24 id=OLD\n")
    proc = TableProcessor({"file": "n.txt"}, tmp_path)
    clock = [1000.0]
    monkeypatch.setattr("abuso.processors.table.time_monotonic", lambda: clock[0])
    proc._checked = clock[0]

    def customer_now() -> str:
        r = Report(raw=b"", incidents=[inc("192.0.2.7")])
        proc.process(r)
        return r.incidents[0].extra["customer"]["id"], r.notes["table"].get("problem")

    f.write_text("192.0.2.0/24 id=NEW\n")
    assert customer_now() == ("OLD", None)  # not looked at again yet
    clock[0] += TableProcessor.RECHECK
    assert customer_now() == ("NEW", None)
    f.write_text("192.0.2.0/24 id=NEWER\n192.0.2.0/33 id=BROKEN\n")
    clock[0] += TableProcessor.RECHECK
    cid, problem = customer_now()
    assert cid == "NEW" and "n.txt:2: '192.0.2.0/33': the prefix length must be 0 to 32" in problem


def test_example_table_in_etc_loads():
    t = NetworkTable.load(ROOT / "etc" / "networks.txt")
    assert len(t) >= 5


def _reference(entries: list[tuple[str, str]], ip: str) -> str | None:
    """Brute force: the matching network with the longest prefix."""
    addr = ipaddress.ip_address(ip)
    best = None
    for net, name in entries:
        n = ipaddress.ip_network(net)
        if n.version == addr.version and addr in n and (best is None or n.prefixlen > best[0]):
            best = (n.prefixlen, name)
    return best[1] if best else None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)), min_size=1, max_size=30),
       st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=20))
def test_lookup_agrees_with_brute_force(blocks, probes):
    nets = {}
    for addr, plen in blocks:
        net = ipaddress.ip_network((addr, plen), strict=False)
        nets.setdefault(str(net), f"c{len(nets)}")
    entries = list(nets.items())
    t = NetworkTable.parse("".join(f"{n} id={c}\n" for n, c in entries))
    inside = [int(ipaddress.ip_network(n).network_address) for n, _ in entries]
    for p in probes + inside:
        ip = str(ipaddress.ip_address(p))
        assert cust(t, ip) == _reference(entries, ip)


def build_table(lines: int, seed: int = 1) -> tuple[str, list[str]]:
    """A realistic table: /16 pools split into /24 customers, a few /29s, and IPv6 /48s."""
    rnd = random.Random(seed)
    out, probes = [], []
    for i in range(lines):
        kind = i % 10
        if kind < 7:
            net = ipaddress.ip_network((0xC6000000 + i * 256, 24))  # 198.x.y.0/24
        elif kind < 9:
            net = ipaddress.ip_network((0xC6000000 + i * 256 + 8 * rnd.randrange(32), 29))
        else:
            net = ipaddress.ip_network(((0x20010DB8 << 96) + (i << 80), 48))
        out.append(f"{net}  id=C{i};contact.email=noc{i}@example.net")
        probes.append(str(net.network_address + rnd.randrange(min(net.num_addresses, 256))))
    return "\n".join(out) + "\n", probes


def test_every_probe_of_a_10000_line_table_is_found():
    """Its speed (lookups/s) is measured by bench/stage_speed.py."""
    text, probes = build_table(10_000)
    t = NetworkTable.parse(text, "big.txt")
    assert [cust(t, p) for p in probes] == [f"C{i}" for i in range(10_000)]
