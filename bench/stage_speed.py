#!/usr/bin/env python3
"""Per-call cost of the stages' hot paths (moved here from the test suite: timing is no test).

Each figure is the best of R rounds on this machine, printed beside the budget it was once asserted
against in tests/ (a shared machine makes a wall-clock assert flaky; a benchmark shows the trend):

- arf / xarf bail-out on a 30 KB non-ARF message (budget 100 µs per message);
- log parser on a typical 5 KB report, samples/log/windows-event.eml (budget 5 ms);
- timestamps fast path on ordinary log lines (budget 100 µs per line, dateparser never called);
- table: parsing a 10,000-line network table, then lookups per second (budget 20,000/s; a linear
  scan manages ~1,000/s).

    python bench/stage_speed.py [-r 5] [--check]      # --check: exit 1 if a figure is over budget
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from abuso import timestamps  # noqa: E402
from abuso.normalize import normalize  # noqa: E402
from abuso.parsers.arf import ArfParser  # noqa: E402
from abuso.parsers.log import LogParser  # noqa: E402
from abuso.parsers.xarf import XarfParser  # noqa: E402
from abuso.processors.table import NetworkTable  # noqa: E402
from tests.test_table import build_table  # noqa: E402

REF = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def best_per_call(fn: Callable[[], object], n: int, rounds: int) -> float:
    fn()  # warm: lazy imports and compiled patterns are paid once per process
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-r", "--rounds", type=int, default=5)
    ap.add_argument("--check", action="store_true", help="exit 1 when a figure is over its budget")
    args = ap.parse_args()
    over: list[str] = []

    def report(what: str, value: float, budget: float, unit: str, scale: float, higher_is_better: bool = False) -> None:
        ok = value >= budget if higher_is_better else value <= budget
        if not ok:
            over.append(what)
        print(f"{what:<48} {value * scale:>12,.1f} {unit:<10} (budget {budget * scale:,.0f} {unit}) "
              f"{'ok' if ok else 'OVER BUDGET'}")

    body = "\n".join(f"Nov 24 03:14:{i % 60:02d} srv sshd[1]: Failed password for root from 192.0.2.{i % 250} port 22"
                     for i in range(400))
    plain = normalize(f"From: a@b.example\nSubject: ssh\nContent-Type: text/plain\n\n{body}\n".encode())
    for cls in (ArfParser, XarfParser):
        parser = cls({})
        report(f"{parser.name} bail-out on a {len(plain.raw) // 1000} KB non-{parser.name} message",
               best_per_call(lambda p=parser: p.parse(plain), 2000, args.rounds), 100e-6, "µs", 1e6)

    typical = normalize((ROOT / "samples" / "log" / "windows-event.eml").read_bytes())
    log = LogParser({})
    report("log parser, samples/log/windows-event.eml", best_per_call(lambda: log.parse(typical), 20, args.rounds),
           5e-3, "ms", 1e3)

    lines = ["Nov 22 03:14:07 web1 sshd[28411]: Failed password for root from 203.0.113.45 port 50122 ssh2",
             "just some prose without digits", '1.2.3.4 - - [24/Nov/2026:13:05:01 +0100] "GET / HTTP/1.1" 200 5']
    calls = timestamps.FALLBACK_CALLS[0]
    per_line = best_per_call(lambda: [timestamps.find_timestamps(line, reference=REF) for line in lines],
                             1000, args.rounds) / len(lines)
    report("timestamps fast path, per ordinary line", per_line, 100e-6, "µs", 1e6)
    if timestamps.FALLBACK_CALLS[0] != calls:
        over.append("timestamps fast path called dateparser")
        print("timestamps fast path called dateparser: OVER BUDGET")

    text, probes = build_table(10_000)
    t0 = time.perf_counter()
    table = NetworkTable.parse(text, "big.txt")
    print(f"{'table: 10,000 lines parsed in':<48} {(time.perf_counter() - t0) * 1e3:>12,.1f} ms")
    ips = [ipaddress.ip_address(p) for p in probes]
    per_lookup = best_per_call(lambda: [table.lookup(ip, REF) for ip in ips], 1, args.rounds) / len(ips)
    report("table lookups per second", 1 / per_lookup, 20_000, "lookups/s", 1, higher_is_better=True)

    if over:
        print(f"over budget: {', '.join(over)}")
    return 1 if over and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
