"""`abuso query`: searching the store's history from the command line, on SQLite and PostgreSQL."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from abuso.cli import cli
from abuso.commands.query import QueryError, format_table, parse_network, parse_when
from abuso.model import Incident, Report
from abuso.storage import Store
from tests.pg import pg_server, pg_url  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parent.parent
UTC = timezone.utc
T0 = datetime(2026, 11, 22, 2, 14, 7, tzinfo=UTC)


def _report(n: int, ip: str, when: datetime | None, type: str, **extra) -> Report:
    inc = Incident(ipaddress.ip_address(ip), type, when, "log", "explicit" if when else "none", port=22,
                   evidence=f"line {n}")
    if extra:
        inc = inc.with_extra(**extra)
    raw = f"From: r@example.org\nSubject: report {n}\nMessage-ID: <{n}@example.org>\n\n{ip}\n".encode()
    return Report(raw=raw, origin=f"/var/mail/{n}", message_id=f"<{n}@example.org>", subject=f"report {n}",
                  sender="r@example.org", date=T0, incidents=[inc])


@pytest.fixture(params=["sqlite", "postgresql"])
def config(request, tmp_path) -> Path:
    """A config whose store holds five incidents; the same on both backends."""
    opts = {"path": "store"}
    if request.param == "postgresql":
        opts["url"] = request.getfixturevalue("pg_url")
    cfg = tmp_path / "abuso.yaml"
    cfg.write_text("parsers: []\nprocessors:\n  - store: " + json.dumps(opts) + "\n")
    with Store.open(tmp_path / "store", opts.get("url")) as s:
        s.put(_report(1, "192.0.2.7", T0, "brute-force", customer={"id": "ACME"}, user="alice"))
        s.put(_report(2, "192.0.2.200", T0 + timedelta(hours=1), "spam", customer={"id": "ACME"}))
        s.put(_report(3, "198.51.100.1", T0 - timedelta(days=3), "scanner"))
        s.put(_report(4, "2001:db8::5", T0 + timedelta(hours=2), "phishing", customer={"id": "GAMMA"}))
        s.put(_report(5, "2001:db8:ffff::1", None, "ddos"))
    return cfg


def query(*args: str) -> list[dict]:
    result = CliRunner().invoke(cli, ["query", *args, "--format", "json"], catch_exceptions=False)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == (0 if rows else 1), result.output   # like grep: 1 when nothing matches
    return rows


def ips(config: Path, *args: str) -> list[str]:
    return [row["ip"] for row in query("-c", str(config), *args)]


def test_search_criteria(config):
    c = config
    assert ips(c) == ["2001:db8::5", "192.0.2.200", "192.0.2.7", "198.51.100.1", "2001:db8:ffff::1"]
    assert ips(c, "--ip", "192.0.2.7") == ["192.0.2.7"]
    assert ips(c, "--ip", "192.0.2.0/24") == ["192.0.2.200", "192.0.2.7"]
    assert ips(c, "--ip", "192.0.2.128/25") == ["192.0.2.200"]
    assert ips(c, "--ip", "2001:db8::/64") == ["2001:db8::5"]
    assert ips(c, "--ip", "2001:db8::/32") == ["2001:db8::5", "2001:db8:ffff::1"]
    assert ips(c, "--since", "2026-11-22T03:00Z") == ["2001:db8::5", "192.0.2.200"]
    assert ips(c, "--since", "2026-11-22", "--until", "2026-11-22T03:14:07+00:00") == ["192.0.2.7"]
    assert ips(c, "--until", "2026-11-22T04:14:07+02:00") == ["198.51.100.1"]  # exclusive
    assert ips(c, "--until", "2026-11-22T04:14:08+02:00") == ["192.0.2.7", "198.51.100.1"]
    assert ips(c, "--type", "spam") == ["192.0.2.200"]
    assert ips(c, "--type", "fraud") == ["2001:db8::5"]  # a taxonomy
    assert ips(c, "--customer", "ACME") == ["192.0.2.200", "192.0.2.7"]
    assert ips(c, "--customer", "ACME", "--type", "brute-force", "--user", "alice") == ["192.0.2.7"]
    assert ips(c, "--user", "bob") == []
    assert ips(c, "--limit", "2") == ["2001:db8::5", "192.0.2.200"]
    assert len(ips(c, "--limit", "0")) == 5


def test_json_rows_carry_the_report(config):
    (row,) = query("-c", str(config), "--ip", "192.0.2.7")
    assert row["time"] == "2026-11-22T02:14:07+00:00" and row["type"] == "brute-force"
    assert row["taxonomy"] == "intrusion-attempts" and row["port"] == 22 and row["user"] == "alice"
    assert row["message_id"] == "<1@example.org>" and row["subject"] == "report 1" and row["origin"] == "/var/mail/1"
    assert Path(row["file"]).read_bytes().startswith(b"From: r@example.org")
    assert row["extra"] == {"customer": {"id": "ACME"}, "user": "alice"}


def test_config_from_the_environment(config):
    result = CliRunner().invoke(cli, ["query", "--ip", "192.0.2.7", "--format", "json"],
                                env={"ABUSO_CONFIG": str(config)}, catch_exceptions=False)
    assert result.exit_code == 0 and json.loads(result.output)["ip"] == "192.0.2.7"


def test_table_output_is_aligned(config):
    result = CliRunner().invoke(cli, ["query", "-c", str(config), "--since", "2026-11-22"], catch_exceptions=False)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["TIME", "IP", "PORT", "TYPE", "CUSTOMER", "USER", "PARSER", "FILE"]
    assert len(lines) == 4
    col = lines[0].index("IP")
    assert [line[col:].split()[0] for line in lines[1:]] == ["2001:db8::5", "192.0.2.200", "192.0.2.7"]
    assert lines[3].split()[:7] == ["2026-11-22T02:14:07Z", "192.0.2.7", "22", "brute-force", "ACME", "alice", "log"]
    assert lines[1].split()[5] == "-"  # no user


def test_table_format_shows_control_characters():
    row = {"time": None, "ip": "192.0.2.1", "customer": "evil\x1b[2J\nname"}
    out = format_table([row])
    assert "\x1b" not in out and "\\x1b[2J\\nname" in out and len(out.splitlines()) == 2


@pytest.mark.parametrize("args, message", [
    (["--ip", "192.0.2.300"], "--ip: '192.0.2.300' is not an IP address or CIDR block"),
    (["--since", "yesterday"], "--since: 'yesterday' is not a time"),
    (["--type", "spamm"], "--type: unknown type 'spamm'"),
    (["--since", "2026-11-22", "--until", "2026-11-21"], "--since must be before --until"),
    (["--since", "99999999999d"], "--since: '99999999999d' is outside the years 1 to 9999"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, args, message):
    cfg = tmp_path / "abuso.yaml"
    cfg.write_text("parsers: []\nprocessors:\n  - store: {path: store}\n")
    done = subprocess.run([sys.executable, "-c", "from abuso.cli import main; main()", "query", "-c", str(cfg),
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == QueryError.status
    assert done.stderr == f"abuso: {message}" + done.stderr.split(message, 1)[1]
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "store").exists()  # a bad query creates nothing


def test_config_without_store_or_without_history(tmp_path):
    cfg = tmp_path / "abuso.yaml"
    cfg.write_text("parsers: []\n")
    with pytest.raises(QueryError, match="no store processor configured"):
        CliRunner().invoke(cli, ["query", "-c", str(cfg)], catch_exceptions=False)
    cfg.write_text("parsers: []\nprocessors:\n  - store: {path: store}\n")
    done = subprocess.run([sys.executable, "-c", "from abuso.cli import main; main()", "query", "-c", str(cfg)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.startswith(f"abuso: no store index at {tmp_path}/store/index.sqlite")
    assert not (tmp_path / "store").exists()


def test_a_read_only_role_can_query_a_prepared_postgresql_store(request, tmp_path):
    import psycopg

    url = request.getfixturevalue("pg_url")
    with Store.open(tmp_path / "store", url) as s:
        s.put(_report(1, "192.0.2.7", T0, "spam"))
    with psycopg.connect(url, autocommit=True) as admin:
        role = "desk_" + url.rsplit("/", 1)[1]  # roles are cluster-wide: one per test database
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'desk-pw'")
        admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    desk = re.sub(r"//abuso:[^@]*@", f"//{role}@", url)
    (tmp_path / "desk.pw").write_text("desk-pw\n")
    cfg = tmp_path / "abuso.yaml"
    options = {"path": "store", "url": desk, "password_file": "desk.pw"}
    cfg.write_text("parsers: []\nprocessors:\n  - store: " + json.dumps(options) + "\n")
    assert [row["ip"] for row in query("-c", str(cfg))] == ["192.0.2.7"]
    with psycopg.connect(desk, password="desk-pw") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("CREATE TABLE x (y int)")  # the role really cannot create tables


def test_parse_helpers():
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert parse_when("7d", "--since", now) == datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
    assert parse_when("90m", "--since", now) == datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
    assert parse_when("2026-11-22", "--since") == datetime(2026, 11, 22, tzinfo=UTC)
    assert parse_when("2026-11-22T08:00:00+01:00", "--since") == datetime(2026, 11, 22, 7, tzinfo=UTC)
    assert str(parse_network("192.0.2.7")) == "192.0.2.7/32"
    assert str(parse_network("2001:db8::1/32")) == "2001:db8::/32"


def test_nothing_matches_is_exit_1_and_said(config):
    result = CliRunner().invoke(cli, ["query", "-c", str(config), "--user", "bob"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "no incidents match" in result.stderr


def test_a_limit_that_hides_matches_says_how_many(config):
    result = CliRunner().invoke(cli, ["query", "-c", str(config), "--limit", "2"])
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 3                     # header + 2 rows
    assert "2 of 5 shown (--limit 2; --limit 0 shows all)" in result.stderr
    shown_all = CliRunner().invoke(cli, ["query", "-c", str(config), "--limit", "5"])
    assert "shown" not in shown_all.stderr


def test_customer_by_name_from_the_network_table_and_short_file_column(config):
    table = config.parent / "networks.txt"
    table.write_text("192.0.2.0/25  id=ACME;name=Acme Widgets Ltd\n2001:db8::/64 id=GAMMA;name=Gamma SA\n")
    config.write_text(config.read_text().replace("processors:\n", "processors:\n  - table: {file: networks.txt}\n"))
    assert ips(config, "--customer", "acme widgets ltd") == ["192.0.2.200", "192.0.2.7"]
    assert ips(config, "--customer", "Gamma SA") == ["2001:db8::5"]
    assert ips(config, "--customer", "GAMMA") == ["2001:db8::5"]
    assert ips(config, "--customer", "Nobody") == []
    table_out = CliRunner().invoke(cli, ["query", "-c", str(config), "--customer", "Gamma SA"]).stdout
    row = query("-c", str(config), "--customer", "Gamma SA")[0]
    folder, digest = row["path"].rsplit("/", 1)
    assert f" {folder}/{digest[:12]}" in table_out and digest not in table_out
    assert max(len(line) for line in table_out.splitlines()) < 120


def test_an_unreachable_postgresql_says_the_error_in_one_line(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "abuso.yaml"
    cfg.write_text(f"parsers: []\nprocessors:\n  - store: {{path: store, url: 'postgresql://abuso@127.0.0.1:{port}/x'}}\n")
    done = subprocess.run([sys.executable, "-m", "abuso", "query", "-c", str(cfg)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 75
    assert done.stderr.count("\n") == 1
    assert "Connection refused" in done.stderr and done.stderr.startswith("abuso: store index postgresql://")


# -- streaming and indexes (issue 8): a big store is searched in constant memory, an address by its index --

def _many(store: Store, n: int, ip: str = "192.0.2.9") -> None:
    for k in range(n):
        store.put(_report(100 + k, ip, T0 + timedelta(minutes=k), "spam"))


def test_rows_stream_in_batches_in_search_order(tmp_path, monkeypatch):
    """rows() hands out rows as the cursor gives them, BATCH at a time, in the order search() has."""
    from abuso.storage.index import Index

    monkeypatch.setattr(Index, "BATCH", 3)
    with Store.open(tmp_path / "store") as s:
        _many(s, 10)
        fetched: list[int] = []
        real_cursor = s.index.conn.cursor

        class Counting:
            def __init__(self, cur):
                self.cur = cur

            def __getattr__(self, name):
                return getattr(self.cur, name)

            def fetchmany(self, size):
                batch = self.cur.fetchmany(size)
                fetched.append(len(batch))
                return batch

        monkeypatch.setattr(s.index.conn, "cursor", lambda: Counting(real_cursor()))
        rows = s.rows(network=ipaddress.ip_network("192.0.2.0/24"))
        first = next(rows)
        assert fetched == [3]                         # one batch read for the first row, not all ten
        rest = list(rows)
        assert fetched == [3, 3, 3, 1, 0]
        monkeypatch.setattr(s.index.conn, "cursor", real_cursor)
        assert [first, *rest] == s.search(network=ipaddress.ip_network("192.0.2.0/24"))
        assert [r["time"] for r in [first, *rest]] == sorted((r["time"] for r in rest + [first]), reverse=True)


def test_postgresql_rows_stream_through_a_server_side_cursor(request, tmp_path, monkeypatch):
    from abuso.storage.index import Index

    monkeypatch.setattr(Index, "BATCH", 4)
    url = request.getfixturevalue("pg_url")
    with Store.open(tmp_path / "store", url) as s:
        _many(s, 9)
        rows = s.rows(network=ipaddress.ip_network("192.0.2.9/32"), limit=7)
        first = next(rows)
        cursors = s.index.conn.execute("SELECT name FROM pg_cursors").fetchall()
        assert cursors == [("abuso_rows",)]           # the rows come from a cursor on the server
        rest = list(rows)
        assert len([first, *rest]) == 7 and first["evidence"] == "line 108"   # newest first, limit kept
        assert s.index.conn.execute("SELECT count(*) FROM pg_cursors").fetchone()[0] == 0


def _plan(s: Store, **criteria) -> str:
    where, params = s.index._where(**criteria)
    statement = ("EXPLAIN QUERY PLAN SELECT i.ip FROM incidents i JOIN reports r ON r.id = i.report" + where
                 + " ORDER BY " + s.index.dialect.newest + " LIMIT 10")
    return "\n".join(row[3] for row in s.index.conn.execute(statement, params))


def test_an_address_is_found_newest_first_by_its_index_without_sorting(tmp_path):
    with Store.open(tmp_path / "store") as s:
        _many(s, 5)
        s.index.conn.execute("ANALYZE")
        plan = _plan(s, network=ipaddress.ip_network("192.0.2.9/32"))
        assert "incidents_ipkey_time" in plan and "TEMP B-TREE" not in plan, plan
        block = _plan(s, network=ipaddress.ip_network("192.0.0.0/16"))
        # a block: the address range of the index, or the time index read newest first (SQLite's choice by
        # its statistics); either streams, neither reads the table in its own order
        assert "USING INDEX incidents_ipkey_time" in block or "USING INDEX incidents_time" in block, block


def test_an_index_made_before_the_address_time_index_is_migrated(tmp_path):
    """A store index of schema 1 (ipkey index only) gains incidents_ipkey_time on the next open; its rows stay."""
    import sqlite3

    from abuso.sqlite import connect

    with Store.open(tmp_path / "store") as s:
        _many(s, 3)
    db = sqlite3.connect(tmp_path / "store" / "index.sqlite")   # make it what an older abuso left
    db.executescript("DROP INDEX incidents_ipkey_time; CREATE INDEX incidents_ipkey ON incidents (ipkey);"
                     "UPDATE schema_version SET version = 1 WHERE kind = 'store-index';")
    db.close()
    with Store.open(tmp_path / "store") as s:
        assert len(s.search()) == 3
    db = connect(tmp_path / "store" / "index.sqlite", readonly=True)
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "incidents_ipkey_time" in names and "incidents_ipkey" not in names
    assert db.schema_version("store-index") == 2
    db.close()


def test_a_prepared_postgresql_store_without_the_new_index_works_for_a_read_only_role(request, tmp_path):
    """An older abuso's database: the writer adds the index; a role that may not create it searches without."""
    import psycopg

    url = request.getfixturevalue("pg_url")
    with Store.open(tmp_path / "store", url) as s:
        s.put(_report(1, "192.0.2.7", T0, "spam"))
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("DROP INDEX incidents_ipkey_time")
        role = "old_" + url.rsplit("/", 1)[1]
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'old-pw'")
        admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    reader = Store.open(tmp_path / "store", re.sub(r"//abuso:[^@]*@", f"//{role}@", url), create=False,
                        password="old-pw")
    assert [r["ip"] for r in reader.search()] == ["192.0.2.7"]
    reader.close()
    with Store.open(tmp_path / "store", url) as s, psycopg.connect(url) as check:
        assert check.execute("SELECT to_regclass('incidents_ipkey_time') IS NOT NULL").fetchone()[0]
        assert len(s.search()) == 1


def test_a_long_table_is_written_in_the_widths_of_its_first_rows(tmp_path, monkeypatch):
    from abuso.commands import query as q

    monkeypatch.setattr(q, "TABLE_WIDTH_ROWS", 2)
    cfg = tmp_path / "abuso.yaml"
    cfg.write_text("parsers: []\nprocessors:\n  - store: {path: store}\n")
    with Store.open(tmp_path / "store") as s:
        _many(s, 4, "192.0.2.9")
        s.put(_report(50, "2001:db8:aaaa:bbbb:cccc:dddd:eeee:1", T0 - timedelta(days=1), "spam"))
    result = CliRunner().invoke(cli, ["query", "-c", str(cfg), "--limit", "0"], catch_exceptions=False)
    lines = result.output.splitlines()
    assert result.exit_code == 0 and len(lines) == 6
    col = lines[0].index("IP")
    assert [line[col:].split()[0] for line in lines[1:3]] == ["192.0.2.9", "192.0.2.9"]
    assert lines[5].split()[1] == "2001:db8:aaaa:bbbb:cccc:dddd:eeee:1"   # longer than its column: written whole


def _statement(index, **criteria) -> tuple[str, list]:
    where, params = index._where(**criteria)
    return ("SELECT i.ip FROM incidents i JOIN reports r ON r.id = i.report" + where
            + " ORDER BY " + index.dialect.newest + " LIMIT 10"), params


def test_time_windows_are_read_from_the_time_index_without_sorting(tmp_path):
    with Store.open(tmp_path / "store") as s:
        _many(s, 5)
        s.index.conn.execute("ANALYZE")
        address = ipaddress.ip_network("192.0.2.9/32")
        windowed = _plan(s, network=address, since=T0, until=T0 + timedelta(days=1))
        assert "incidents_ipkey_time (ipkey=? AND time>? AND time<?)" in windowed and "TEMP B-TREE" not in windowed
        for criteria in ({}, {"since": T0}):
            plan = _plan(s, **criteria)
            assert "incidents_time" in plan and "TEMP B-TREE" not in plan, plan
        count = "\n".join(r[3] for r in s.index.conn.execute(
            "EXPLAIN QUERY PLAN SELECT count(*) FROM incidents i WHERE i.ipkey = ?", (b"\4" + address[0].packed,)))
        assert "COVERING INDEX incidents_ipkey_time" in count   # "N of M shown" counts from the index alone


def test_postgresql_finds_an_address_and_the_newest_by_their_indexes_without_sorting(request, tmp_path):
    url = request.getfixturevalue("pg_url")
    with Store.open(tmp_path / "store", url) as s:
        _many(s, 30)
        s.put(_report(1, "198.51.100.1", T0, "scanner"))
        s.index.conn.execute("ANALYZE")

        def plan(**criteria) -> str:
            statement, params = _statement(s.index, **criteria)
            with s.index.conn.transaction(), s.index.conn.cursor() as cur:
                # A test table is small enough to scan and sort: ask whether the indexes answer without either.
                cur.execute("SET LOCAL enable_seqscan = off")
                cur.execute("SET LOCAL enable_sort = off")
                cur.execute(s.index.dialect.sql("EXPLAIN " + statement), params)
                return "\n".join(r[0] for r in cur.fetchall())

        address = ipaddress.ip_network("198.51.100.1/32")
        for criteria in ({"network": address}, {"network": address, "since": T0, "until": T0 + timedelta(days=1)}):
            found = plan(**criteria)
            assert "incidents_ipkey_time" in found and "Sort" not in found, found
        newest = plan()
        assert "incidents_time" in newest and "Sort" not in newest, newest


def test_json_lines_and_a_table_are_the_same_written_in_chunks(config, monkeypatch):
    from abuso.commands import query as q

    everything = query("-c", str(config), "--limit", "0")
    table = CliRunner().invoke(cli, ["query", "-c", str(config), "--limit", "0"]).stdout
    monkeypatch.setattr(q, "CHUNK", 2)
    assert query("-c", str(config), "--limit", "0") == everything
    assert CliRunner().invoke(cli, ["query", "-c", str(config), "--limit", "0"]).stdout == table
    with Store.open(config.parent / "store", json.loads(config.read_text().split("store: ", 1)[1]).get("url"),
                    create=False) as s:
        assert table == format_table(s.search()) + "\n"     # fewer rows than set the widths: as before, exactly


def test_a_limited_block_sorts_ids_from_the_index_and_joins_only_those(config):
    with Store.open(config.parent / "store", json.loads(config.read_text().split("store: ", 1)[1]).get("url"),
                    create=False) as s:
        for block in ("192.0.2.0/24", "2001:db8::/32", "0.0.0.0/0"):
            net = ipaddress.ip_network(block)
            every = s.search(network=net)
            for limit in (1, 2, 10):
                assert s.search(network=net, limit=limit) == every[:limit], (block, limit)
        assert ips(config, "--ip", "192.0.2.0/24", "--limit", "1") == ["192.0.2.200"]
        if s.index.dialect.name == "sqlite":
            statement, params = s.index.search_sql(network=ipaddress.ip_network("192.0.2.0/24"), limit=100)
            plan = "\n".join(r[3] for r in s.index.conn.execute("EXPLAIN QUERY PLAN " + statement, params))
            assert "COVERING INDEX incidents_ipkey_time (ipkey>? AND ipkey<?)" in plan, plan


def test_an_index_at_schema_version_1_is_upgraded_with_its_rows(tmp_path):
    """A file made by migration 1 alone (what abuso wrote before version 2), rows and all, opened by this one."""
    from abuso.sqlite import connect
    from abuso.storage.schema import sqlite_migrations

    path = tmp_path / "store" / "index.sqlite"
    db = connect(path, foreign_keys=True)
    db.migrate("store-index", sqlite_migrations()[:1])
    with db.transaction() as cur:
        for k in range(40):
            ip = ipaddress.ip_address("10.1.3.3" if k % 4 == 3 else "10.1.3.4" if k % 2 else f"10.2.0.{k}")
            cur.execute("INSERT INTO reports (digest, path, valid, verdicts, stored) VALUES (?, ?, 1, '{}', ?)",
                        (f"{k:064x}", f"2026/11/22/{k:064x}", "2026-11-22T02:14:07.000000Z"))
            cur.execute("INSERT INTO incidents (report, ip, ipkey, type, taxonomy, time) VALUES (?, ?, ?, 'spam',"
                        " 'abusive-content', ?)", (cur.lastrowid, str(ip), b"\4" + ip.packed,
                                                   f"2026-11-22T02:{k:02d}:07.000000Z"))
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "incidents_ipkey" in names and "incidents_ipkey_time" not in names
    db.close()
    with Store.open(tmp_path / "store", create=False) as s:
        assert s.index.conn.schema_version("store-index") == len(sqlite_migrations()) == 2
        names = {r[0] for r in s.index.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "incidents_ipkey_time" in names and "incidents_ipkey" not in names
        assert s.index.count() == (40, 40)
        assert [r["time"] for r in s.rows(network=ipaddress.ip_network("10.1.3.3/32"))] == [
            f"2026-11-22T02:{k:02d}:07+00:00" for k in range(39, 0, -4)]
        assert "incidents_ipkey_time (ipkey=?)" in _plan(s, network=ipaddress.ip_network("10.1.3.3/32"))
