"""The asn processor: RouteViews prefix2as tables (plain, gzip, nested prefixes, IPv6) and MaxMind databases."""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path

import pytest

from abuso.asn import PrefixTable
from abuso.config import load
from abuso.errors import ConfigError
from abuso.pipeline import Pipeline

from .conftest import ROOT, sample_path

TABLE = """\
# prefix2as: prefix, length, origin AS
192.0.2.0\t24\t64500
192.0.2.128\t25\t64501
192.0.2.192\t26\t64502
198.51.100.0\t24\t64510_64511
203.0.113.0\t24\t64520,64521
2001:db8::\t32\t64530
2001:db8:1::\t48\t64531
"""


@pytest.fixture
def table_file(tmp_path: Path) -> Path:
    path = tmp_path / "pfx2as.txt"
    path.write_text(TABLE)
    return path


def lookup(table: PrefixTable, ip: str) -> tuple[int, str] | None:
    info = table.lookup(ip_address(ip))
    return None if info is None else (info.asn, info.network)


def test_longest_prefix_wins_in_nested_blocks(table_file: Path) -> None:
    table = PrefixTable.load(table_file)
    assert lookup(table, "192.0.2.1") == (64500, "192.0.2.0/24")
    assert lookup(table, "192.0.2.127") == (64500, "192.0.2.0/24")
    assert lookup(table, "192.0.2.128") == (64501, "192.0.2.128/25")
    assert lookup(table, "192.0.2.191") == (64501, "192.0.2.128/25")
    assert lookup(table, "192.0.2.200") == (64502, "192.0.2.192/26")
    assert lookup(table, "192.0.2.255") == (64502, "192.0.2.192/26")
    assert lookup(table, "192.0.3.0") is None
    assert lookup(table, "10.0.0.1") is None


def test_multi_origin_and_as_sets_keep_the_first_as(table_file: Path) -> None:
    table = PrefixTable.load(table_file)
    assert lookup(table, "198.51.100.9") == (64510, "198.51.100.0/24")
    assert lookup(table, "203.0.113.9") == (64520, "203.0.113.0/24")


def test_ipv6(table_file: Path) -> None:
    table = PrefixTable.load(table_file)
    assert lookup(table, "2001:db8::1") == (64530, "2001:db8::/32")
    assert lookup(table, "2001:db8:1:2::3") == (64531, "2001:db8:1::/48")
    assert lookup(table, "2001:db9::1") is None
    assert lookup(table, "::1") is None


def test_gzip_table_and_cache_give_the_same_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ABUSO_NO_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "pfx2as.txt.gz"
    path.write_bytes(gzip.compress(TABLE.encode()))
    first = PrefixTable.load(path)
    assert list((tmp_path / "cache" / "abuso").glob("asn-*.bin")), "the flattened table was not cached"
    second = PrefixTable.load(path)  # from the cache
    for ip in ("192.0.2.1", "192.0.2.130", "192.0.2.250", "203.0.113.1", "2001:db8:1::5", "2001:db8:2::5", "8.8.8.8"):
        assert lookup(first, ip) == lookup(second, ip), ip
    # An edited table is read again, not served from the stale cache.
    path.write_bytes(gzip.compress(b"192.0.2.0\t24\t65000\n"))
    assert lookup(PrefixTable.load(path), "192.0.2.250") == (65000, "192.0.2.0/24")


def test_random_tables_agree_with_a_brute_force_longest_match() -> None:
    rng = random.Random(20261128)
    for _ in range(20):
        prefixes: dict = {}
        for _ in range(60):
            length = rng.randint(8, 28)
            net = ip_network((rng.getrandbits(32) >> (32 - length) << (32 - length), length))
            prefixes.setdefault(net, rng.randint(1, 70000))
        table = PrefixTable()
        table.v4.build([(int(n.network_address), n.prefixlen, a) for n, a in prefixes.items()])
        probes = [ip_address(rng.getrandbits(32)) for _ in range(300)]
        probes += [n.network_address for n in prefixes] + [n.broadcast_address for n in prefixes]
        for ip in probes:
            holding = [n for n in prefixes if ip in n]
            want = None
            if holding:
                best = max(holding, key=lambda n: n.prefixlen)
                want = (prefixes[best], str(best))
            assert lookup(table, str(ip)) == want, ip


@pytest.mark.parametrize("text, problem", [
    ("192.0.2.0\t24\n", "expected 'prefix<TAB>length<TAB>AS'"),
    ("192.0.2.0\t33\t64500\n", "out of range"),
    ("not-an-ip\t24\t64500\n", "not a prefix and an AS number"),
    ("# only a comment\n", "no prefix in the table"),
])
def test_a_broken_table_is_a_config_error(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem):
        Pipeline.from_config({"processors": [{"asn": {"file": str(path)}}]})


def test_missing_file_and_bad_options_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"processors.asn.file: \S*nope.txt: no such file"):
        Pipeline.from_config({"processors": [{"asn": {"file": str(tmp_path / "nope.txt")}}]})
    with pytest.raises(ConfigError, match="exactly one of file"):
        load({"processors": [{"asn": {}}]})
    with pytest.raises(ConfigError, match="unknown option"):
        load({"processors": [{"asn": {"file": "x", "fiel": "y"}}]})


def _mmdb(path: Path) -> Path:
    mmdb_writer = pytest.importorskip("mmdb_writer", reason="the mmdb-writer package builds the test database")
    pytest.importorskip("maxminddb", reason="the maxminddb package reads .mmdb files")
    from netaddr import IPSet

    writer = mmdb_writer.MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN",
                                    description="abuso test")
    writer.insert_network(IPSet(["192.0.2.0/24"]), {"autonomous_system_number": 64500,
                                                    "autonomous_system_organization": "Example Net"})
    writer.insert_network(IPSet(["2001:db8::/32"]), {"autonomous_system_number": 64530,
                                                     "autonomous_system_organization": "Example v6"})
    writer.to_db_file(str(path))
    return path


def test_mmdb_lookups(tmp_path: Path) -> None:
    from abuso.asn import MmdbTable

    table = MmdbTable(_mmdb(tmp_path / "asn.mmdb"))
    info = table.lookup(ip_address("192.0.2.77"))
    assert info is not None and (info.asn, info.as_name) == (64500, "Example Net")
    assert ip_address("192.0.2.77") in IPv4Network(info.network)
    info6 = table.lookup(ip_address("2001:db8::5"))
    assert info6 is not None and info6.asn == 64530 and ip_address("2001:db8::5") in IPv6Network(info6.network)
    assert table.lookup(ip_address("198.51.100.1")) is None
    table.close()


def test_mmdb_record_without_a_numeric_asn_is_no_answer(tmp_path: Path) -> None:
    """A database that is no GeoLite2-ASN (another record layout, the number as text): no AS, not a crash."""
    mmdb_writer = pytest.importorskip("mmdb_writer", reason="the mmdb-writer package builds the test database")
    pytest.importorskip("maxminddb", reason="the maxminddb package reads .mmdb files")
    from netaddr import IPSet

    from abuso.asn import MmdbTable

    writer = mmdb_writer.MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="Other", description="abuso")
    writer.insert_network(IPSet(["192.0.2.0/24"]), {"autonomous_system_number": "AS64500"})
    writer.insert_network(IPSet(["198.51.100.0/24"]), {"country": "NL"})
    writer.to_db_file(str(tmp_path / "other.mmdb"))
    table = MmdbTable(tmp_path / "other.mmdb")
    assert table.lookup(ip_address("192.0.2.77")) is None
    assert table.lookup(ip_address("198.51.100.1")) is None
    table.close()


def test_corrupt_mmdb_is_a_config_error(tmp_path: Path) -> None:
    pytest.importorskip("maxminddb", reason="the maxminddb package reads .mmdb files")
    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(b"this is not a MaxMind database" * 10)
    with pytest.raises(ConfigError, match="cannot read the ASN database"):
        Pipeline.from_config({"processors": [{"asn": {"mmdb": str(bad)}}]})


def test_incidents_carry_asn_in_json_intelmq_and_text(tmp_path: Path) -> None:
    table = tmp_path / "pfx2as.txt"
    table.write_text(TABLE)
    config = tmp_path / "abuso.yaml"
    config.write_text(f"processors:\n  - asn: {{file: {table}}}\nquarantine: {tmp_path / 'q'}\n")
    message = sample_path("samples/log/sshd-auth.eml")
    base = [sys.executable, "-m", "abuso", "run", "-c", str(config)]
    run = lambda *args: subprocess.run([*base, *args, str(message)], capture_output=True, cwd=ROOT,  # noqa: E731
                                       timeout=60)
    js = run("-f", "json")
    assert js.returncode == 0, js.stderr
    incidents = json.loads(js.stdout)["incidents"]
    routed = [i for i in incidents if i.get("asn") is not None]
    assert routed, incidents
    for inc in routed:
        info = PrefixTable.load(table).lookup(ip_address(inc["ip"]))
        assert info is not None and (inc["asn"], inc["network"]) == (info.asn, info.network)
    events = [json.loads(line) for line in run("-f", "intelmq").stdout.splitlines()]
    assert any(ev.get("source.asn") == routed[0]["asn"] and ev.get("source.network") == routed[0]["network"]
               for ev in events)
    assert f"AS{routed[0]['asn']}" in run("-f", "text").stdout.decode()
