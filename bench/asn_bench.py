"""The asn processor's table at full size: ~1 M generated RouteViews prefixes (IPv4 and IPv6).

    python bench/asn_bench.py [--prefixes 1000000]

Prints: parse time of the text table, load time from the cache (what every later process pays),
look-ups per second, and the peak RSS. The table is generated here; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
from ipaddress import ip_address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from abuso.asn import PrefixTable  # noqa: E402


def generate(path: Path, count: int, rng: random.Random) -> None:
    """Like a real table: mostly /24../16 IPv4 prefixes with nested more-specifics, ~10% IPv6."""
    with open(path, "w") as f:
        for _ in range(count):
            if rng.random() < 0.1:
                length = rng.choice((32, 36, 40, 44, 48))
                net = rng.getrandbits(length) << (128 - length)
                f.write(f"{ip_address(net)}\t{length}\t{rng.randint(1, 400000)}\n")
            else:
                length = rng.choice((24, 24, 24, 23, 22, 20, 19, 16))
                net = rng.getrandbits(length) << (32 - length)
                f.write(f"{ip_address(net)}\t{length}\t{rng.randint(1, 400000)}\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefixes", type=int, default=1_000_000)
    ap.add_argument("--lookups", type=int, default=200_000)
    args = ap.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = tmp
        os.environ.pop("ABUSO_NO_CACHE", None)
        path = Path(tmp) / "pfx2as.txt"
        generate(path, args.prefixes, rng)
        t0 = time.perf_counter()
        PrefixTable.load(path)
        parse = time.perf_counter() - t0
        t0 = time.perf_counter()
        table = PrefixTable.load(path)
        cached = time.perf_counter() - t0
        probes = [ip_address(rng.getrandbits(32)) for _ in range(args.lookups)]
        probes += [ip_address(rng.getrandbits(128)) for _ in range(args.lookups // 10)]
        t0 = time.perf_counter()
        hits = sum(table.lookup(ip) is not None for ip in probes)
        per = (time.perf_counter() - t0) / len(probes)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"asn: {args.prefixes:,} prefixes ({table.size:,} kept); parse {parse:.2f} s, load from cache "
          f"{cached * 1000:.0f} ms ({parse / cached:.0f}x faster); {1 / per:,.0f} lookups/s ({per * 1e6:.1f} µs "
          f"each, {hits:,} of {len(probes):,} routed); peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
