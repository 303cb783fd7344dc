"""`abuso stats` over a store of 100,000 reports (issue target: an answer in <= 2 s).

    python bench/stats_bench.py [--reports 100000] [--store bench/out/stats-store]

Builds the store once (kept in --store for the next run), then times, each in a fresh process as a user
runs it: `abuso query --ip <one address>` (the baseline: one indexed look-up), `abuso stats --by type`,
`--by day --chronic 3/30`, `--by asn`, and `-f html`. Prints seconds and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from abuso.model import Incident, Report  # noqa: E402
from abuso.storage import Store  # noqa: E402

TYPES = ["spam", "brute-force", "scanner", "phishing", "malware-distribution", "ddos-amplifier", "copyright"]


def build(folder: Path, count: int) -> None:
    rng = random.Random(8)
    t0 = datetime(2026, 8, 1, tzinfo=timezone.utc)
    with Store.open(folder, fsync=False) as store:
        for n in range(count):
            ip = ipaddress.ip_address(0xC0000200 + rng.randrange(4096))       # a /20 of ours: repeat offenders
            when = t0 + timedelta(seconds=rng.randrange(120 * 86400))
            inc = Incident(ip, rng.choice(TYPES), when, "log", "explicit", evidence=f"line {n}").with_extra(
                customer={"id": f"C{rng.randrange(300)}"}, asn=64500 + rng.randrange(20))
            sender = f"reports@reporter{rng.randrange(50)}.example"
            raw = f"From: {sender}\nSubject: r{n}\nMessage-ID: <{n}@b>\n\n{ip}\n".encode()
            store.put(Report(raw=raw, origin=f"/m/{n}", message_id=f"<{n}@b>", subject=f"r{n}", sender=sender,
                             date=when + timedelta(hours=rng.randrange(48)), incidents=[inc]))


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "abuso", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reports", type=int, default=100_000)
    ap.add_argument("--store", type=Path, default=ROOT / "bench" / "out" / "stats-store")
    a = ap.parse_args()
    folder = a.store.resolve()
    marker = folder / f".built-{a.reports}"
    if not marker.exists():
        start = time.perf_counter()
        build(folder, a.reports)
        marker.touch()
        print(f"built {a.reports} reports in {time.perf_counter() - start:.1f} s")
    cfg = folder.parent / "stats-bench.yaml"
    cfg.write_text(f"parsers: []\nprocessors:\n  - store: {{path: {folder}}}\n")
    c = ["-c", str(cfg)]
    base = min(timed(["query", *c, "--ip", "192.0.2.77", "--limit", "10"]) for _ in range(3))
    print(f"baseline query --ip (one address): {base:.2f} s")
    runs = {"stats --by type": ["stats", *c, "--by", "type"],
            "stats --by day --chronic 3/30": ["stats", *c, "--by", "day", "--chronic", "3/30",
                                              "--until", "2026-11-29"],
            "stats --by asn": ["stats", *c, "--by", "asn"],
            "stats -f html": ["stats", *c, "-f", "html", "-o", str(folder.parent / "stats.html")]}
    for name, args in runs.items():
        t = min(timed(args) for _ in range(3))
        print(f"{name:<32} {t:5.2f} s  ({t / base:.1f}x the one-address query){'' if t <= 2 else '  OVER 2 s'}")


if __name__ == "__main__":
    main()
