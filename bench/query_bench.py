#!/usr/bin/env python3
"""``abuso query`` over a large store index (issue 8): an address in-process, a /16 streamed by the CLI.

Builds (once; cached under ``--cache``) a store whose index holds N reports (default 100,000), written
straight through the Index API in one transaction (no mail, no pipeline; the raw files are not written,
``abuso query`` never reads them). Half the incidents fall in 198.18.0.0/16, the block streamed; one address
of it is a repeat offender with ~1 report in 400. Then it measures:

- **address, in-process**: ``Store.rows(network=<address>, limit=100)`` read to the end plus the
  ``search_count`` that ``abuso query`` adds when the limit is reached, on an open store; median and best
  of ``--repeat`` (target: 50 ms);
- **/16, subprocess**: ``abuso query --ip 198.18.0.0/16 --limit 0`` (JSON lines and the table), stdout to
  /dev/null: wall time and peak RSS (``ru_maxrss`` of the child, measured by a wrapper process so that no
  other child of this process counts; target: 100 MB), beside the same for ``python -c "import abuso.cli"``
  (the floor every abuso command pays) as a ratio;
- for scale, the /16 with the default ``--limit 100``: the same command's wall time.

    python bench/query_bench.py [-n 100000] [--cache DIR] [--repeat 20] [--against OTHER_CHECKOUT]

From bench/run.py: ``query_bench.report()``; the figures as a dict: ``query_bench.main_figures(n)``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from abuso.model import Incident  # noqa: E402
from abuso.storage import Store  # noqa: E402
from abuso.storage.index import Index  # noqa: E402
from abuso.storage.schema import sqlite_migrations  # noqa: E402

BLOCK = "198.18.0.0/16"
ADDRESS = "198.18.7.7"
TYPES = ["spam", "brute-force", "scanner", "phishing", "malware-distribution", "ddos-amplifier", "copyright"]
ADDRESS_TARGET_MS = 50.0
RSS_TARGET_MB = 100.0
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "abuso-query-bench"

#: Measures peak RSS of one command in a process of its own: RUSAGE_CHILDREN of *this* process would be the
#: largest of every child it ever waited for.
_WRAPPER = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"wall": wall, "rss_kb": rss, "status": done.returncode, "stderr": done.stderr.decode()[-300:]}))
"""


def _address(rng: random.Random) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    roll = rng.random()
    if roll < 0.0025:
        return ipaddress.ip_address(ADDRESS)                                    # the repeat offender
    if roll < 0.5:
        return ipaddress.ip_address(0xC6120000 + rng.randrange(1 << 16))       # 198.18.0.0/16
    if roll < 0.9:
        return ipaddress.ip_address(0xC6130000 + rng.randrange(1 << 16))       # 198.19.0.0/16
    return ipaddress.ip_address((0x20010DB8 << 96) + rng.randrange(1 << 32))    # 2001:db8::/32


def build(folder: Path, n: int) -> Path:
    """A store of ``n`` reports under ``folder`` (reused when already built with this schema); its config."""
    folder = folder.resolve()
    store = folder / f"store-{n}"
    marker = store / f".built-v{len(sqlite_migrations())}"
    config = folder / f"abuso-{n}.yaml"
    config.write_text(f"parsers: []\nprocessors:\n  - store: {json.dumps({'path': str(store)})}\n")
    if marker.exists():
        return config
    if store.exists():
        for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm"):
            (store / name).unlink(missing_ok=True)
    rng = random.Random(8)
    t0 = datetime(2026, 8, 1, tzinfo=timezone.utc)
    index = Index.open(None, store / "index.sqlite")
    try:
        with index.conn.transaction():             # Index.add's own transactions join this one
            for k in range(n):
                when = t0 + timedelta(seconds=rng.randrange(120 * 86400))
                incidents = []
                for j in range(1 + (rng.random() < 0.2)):
                    ip = _address(rng)
                    incidents.append(Incident(
                        ip, rng.choice(TYPES), when + timedelta(seconds=j), "log", "explicit", port=22,
                        evidence=f"{when:%b %d %H:%M:%S} host sshd[{k}]: Failed password for root from {ip} port 22",
                        extra={"customer": {"id": f"C{rng.randrange(300)}"}, "asn": 64500 + rng.randrange(20)}))
                sender = f"reports@reporter{rng.randrange(50)}.example"
                report = SimpleNamespace(
                    message_id=f"<{k}@bench.example>", subject=f"Abuse report {k}", sender=sender,
                    date=when + timedelta(hours=rng.randrange(48)), origin=f"/var/mail/abuse/{k}", valid=True,
                    verdicts={}, incidents=incidents)
                digest = f"{k:064x}"
                index.add(digest, f"{when:%Y/%m/%d}/{digest}", report, when)
        index.conn.execute("ANALYZE")
    finally:
        index.close()
    marker.write_text("")
    return config


def _address_times(store_root: Path, repeat: int) -> list[float]:
    network = ipaddress.ip_network(ADDRESS)
    times = []
    with Store.open(store_root, create=False) as store:
        for _ in range(repeat + 1):                # the first one warms the page cache: not counted
            start = time.perf_counter()
            shown = sum(1 for _ in store.rows(network=network, limit=100))
            if shown == 100:
                store.search_count(network=network)
            times.append(time.perf_counter() - start)
    return times[1:]


def _run_measured(args: list[str], code: Path | None = None) -> dict[str, Any]:
    """``args`` run by the wrapper; ``code``: another abuso checkout, put first on the child's path. Run in
    this checkout's root, where ``python -m abuso`` finds this abuso first (and the other one when asked)."""
    env = dict(os.environ, PYTHONPATH=str(code)) if code else dict(os.environ)
    out = subprocess.run([sys.executable, "-c", _WRAPPER, *args], capture_output=True, text=True, check=True,
                         env=env, cwd=code or ROOT)
    figures: dict[str, Any] = json.loads(out.stdout)
    return figures


def _cli(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "abuso", "query", "-c", str(config), *args]


def main_figures(n: int = 100_000, cache: Path | None = None, repeat: int = 20,
                 against: Path | None = None) -> dict[str, float]:
    """Build (or reuse) the ``n``-report store under ``cache`` and measure; every figure in a flat dict:

    ``reports``, ``incidents``, ``block_incidents``, ``address_incidents``, ``build_s`` (0 when reused),
    ``address_ms_median``, ``address_ms_best``, ``address_open_ms`` (opening the store, once),
    ``block_json_s``, ``block_json_rss_mb``, ``block_table_s``, ``block_table_rss_mb``, ``block_limit100_s``,
    ``floor_s``, ``floor_rss_mb`` (``python -c 'import abuso.cli'``), ``block_json_rss_ratio``
    (/16 JSON RSS over the floor's), and the targets ``address_target_ms``, ``rss_target_mb``. With
    ``against`` (another checkout of abuso, e.g. a worktree of an older commit): ``against_json_s``,
    ``against_json_rss_mb`` (its /16 --limit 0 -f json, run alternately with this one), ``json_s_ratio``
    (this one's time over that one's), ``against_limit100_s`` and ``limit100_s_ratio`` (the same for the /16
    with the default --limit 100)."""
    folder = (cache or DEFAULT_CACHE).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    # As installed (pip compiles): with PYTHONDONTWRITEBYTECODE set, each run would otherwise recompile abuso.
    for code in (ROOT, against):
        if code is not None:
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(code) / "abuso")], check=True,
                           stdout=subprocess.DEVNULL)
    start = time.perf_counter()
    fresh = not (folder / f"store-{n}" / f".built-v{len(sqlite_migrations())}").exists()
    config = build(folder, n)
    figures: dict[str, float] = {"build_s": time.perf_counter() - start if fresh else 0.0}
    store_root = folder / f"store-{n}"
    start = time.perf_counter()
    with Store.open(store_root, create=False) as store:
        figures["address_open_ms"] = (time.perf_counter() - start) * 1000
        figures["reports"], figures["incidents"] = store.index.count()
        figures["block_incidents"] = store.search_count(network=ipaddress.ip_network(BLOCK))
        figures["address_incidents"] = store.search_count(network=ipaddress.ip_network(ADDRESS))
    times = _address_times(store_root, repeat)
    figures["address_ms_median"] = statistics.median(times) * 1000
    figures["address_ms_best"] = min(times) * 1000
    floor = _run_measured([sys.executable, "-c", "import abuso.cli"])
    figures["floor_s"], figures["floor_rss_mb"] = floor["wall"], floor["rss_kb"] / 1024
    for fmt in ("json", "table"):
        got = _run_measured(_cli(config, "--ip", BLOCK, "--limit", "0", "-f", fmt))
        if got["status"] != 0:
            raise RuntimeError(f"abuso query failed: {got['stderr']}")
        figures[f"block_{fmt}_s"], figures[f"block_{fmt}_rss_mb"] = got["wall"], got["rss_kb"] / 1024
    figures["block_limit100_s"] = _run_measured(_cli(config, "--ip", BLOCK))["wall"]
    if against is not None:
        other = _run_measured(_cli(config, "--ip", BLOCK, "--limit", "0", "-f", "json"), against)
        if other["status"] != 0:
            raise RuntimeError(f"abuso query ({against}) failed: {other['stderr']}")
        again = _run_measured(_cli(config, "--ip", BLOCK, "--limit", "0", "-f", "json"))
        figures["block_json_s"] = min(figures["block_json_s"], again["wall"])
        figures["against_json_s"], figures["against_json_rss_mb"] = other["wall"], other["rss_kb"] / 1024
        figures["json_s_ratio"] = figures["block_json_s"] / other["wall"]
        other = _run_measured(_cli(config, "--ip", BLOCK), against)
        again = _run_measured(_cli(config, "--ip", BLOCK))
        figures["block_limit100_s"] = min(figures["block_limit100_s"], again["wall"])
        figures["against_limit100_s"] = other["wall"]
        figures["limit100_s_ratio"] = figures["block_limit100_s"] / other["wall"]
    figures["block_json_rss_ratio"] = figures["block_json_rss_mb"] / figures["floor_rss_mb"]
    figures["address_target_ms"], figures["rss_target_mb"] = ADDRESS_TARGET_MS, RSS_TARGET_MB
    return figures


def _ok(value: float, target: float) -> str:
    return "ok" if value <= target else "OVER"


def report(n: int = 100_000, cache: Path | None = None, repeat: int = 20,
           against: Path | None = None) -> dict[str, float]:
    """Measure (:func:`main_figures`) and print the figures against issue 8's targets."""
    f = main_figures(n, cache, repeat, against)
    built = f"built in {f['build_s']:.1f} s" if f["build_s"] else "reused"
    print(f"query: store index of {f['reports']:,.0f} reports, {f['incidents']:,.0f} incidents ({built}); "
          f"{BLOCK} holds {f['block_incidents']:,.0f}, {ADDRESS} {f['address_incidents']:,.0f}")
    print(f"query: an address in-process: median {f['address_ms_median']:.2f} ms, best {f['address_ms_best']:.2f}"
          f" ms (target {ADDRESS_TARGET_MS:.0f} ms: {_ok(f['address_ms_median'], ADDRESS_TARGET_MS)}); "
          f"opening the store {f['address_open_ms']:.1f} ms")
    for fmt in ("json", "table"):
        rss = f[f"block_{fmt}_rss_mb"]
        print(f"query: {BLOCK} --limit 0 -f {fmt}: {f[f'block_{fmt}_s']:.2f} s, "
              f"{f['block_incidents'] / f[f'block_{fmt}_s']:,.0f} rows/s, peak RSS {rss:.1f} MB "
              f"(target {RSS_TARGET_MB:.0f} MB: {_ok(rss, RSS_TARGET_MB)}; "
              f"{rss / f['floor_rss_mb']:.2f}x the {f['floor_rss_mb']:.1f} MB of importing abuso.cli)")
    print(f"query: {BLOCK} --limit 100: {f['block_limit100_s']:.2f} s (importing abuso.cli alone: "
          f"{f['floor_s']:.2f} s)")
    if "json_s_ratio" in f:
        print(f"query: {BLOCK} --limit 0 -f json with {against}: {f['against_json_s']:.2f} s, peak RSS "
              f"{f['against_json_rss_mb']:.1f} MB; this one takes {f['json_s_ratio']:.2f}x its time")
        print(f"query: {BLOCK} --limit 100 with {against}: {f['against_limit100_s']:.2f} s; this one takes "
              f"{f['limit100_s_ratio']:.2f}x its time")
    return f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=100_000, help="reports in the store index")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the store is built and kept")
    ap.add_argument("--repeat", type=int, default=20, help="address queries timed (median, best)")
    ap.add_argument("--against", type=Path, help="another abuso checkout to time the /16 with (PYTHONPATH)")
    a = ap.parse_args()
    report(a.n, a.cache, a.repeat, a.against)


if __name__ == "__main__":
    main()
