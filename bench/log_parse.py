#!/usr/bin/env python3
"""Time of the ``log`` parser alone, per message, over samples/ and ../shared/corpus/.

Messages are normalized once beforehand, and each figure is the best of N runs,
so it is the parser's own cost (addresses, timestamps, pairing), not the normalizer's. Also reports how
often dateparser ran (it must stay idle on ordinary lines) and a hostile case.

    python bench/log_parse.py [-r 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CORPUS = Path(os.environ.get("ABUSO_CORPUS", ROOT.parent / "shared" / "corpus"))

from abuso import timestamps  # noqa: E402
from abuso.normalize import normalize  # noqa: E402
from abuso.parsers.log import LogParser  # noqa: E402


def _timed_log(n: int, addresses: int) -> str:
    """n timed lines (every other one also logged at minute precision) from ``addresses`` addresses."""
    from datetime import datetime, timedelta

    t0, out = datetime(2026, 11, 22, 3, 0, 0), []
    for i in range(n):
        t, a = t0 + timedelta(seconds=i), i % addresses
        out.append(f"{t:%b %d %H:%M:%S} sshd[1]: Failed password for root from 203.0.{a // 250}.{1 + a % 250} port 22")
        if i % 2:
            out.append(f"{t:%b %d %H:%M} alert from 203.0.{a // 250}.{1 + a % 250}")
    return "\n".join(out)


def grouping_ratio(parser: LogParser, n: int = 2000, repeat: int = 3) -> str:
    """Issue 8 item 2: the same log from one address and from 1,000 addresses. Grouping looks up
    finer stamps per address by time, so one busy address must cost no more than many quiet ones
    (the scan of every group of an address made it ~5x as costly)."""
    from abuso.normalize import Block, Message

    best = {}
    for addresses in (1, 1000):
        msg = Message(raw=b"", email=None, blocks=[Block(_timed_log(n, addresses), "1", "text/plain")])  # type: ignore[arg-type]
        runs = []
        for _ in range(repeat):
            start = time.perf_counter()
            parser.parse(msg)
            runs.append(time.perf_counter() - start)
        best[addresses] = min(runs)
    return (f"grouping: {n * 3 // 2} timed lines from 1 address {best[1] * 1e3:.0f} ms, from 1,000 addresses "
            f"{best[1000] * 1e3:.0f} ms: ratio {best[1] / best[1000]:.2f} (linear grouping: <= 1.2)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-r", "--repeat", type=int, default=20)
    args = ap.parse_args()
    files = sorted(p for d in (ROOT / "samples", CORPUS) for p in d.rglob("*.eml"))
    messages = [(p, normalize(p.read_bytes())) for p in files]
    parser = LogParser({})
    calls = timestamps.FALLBACK_CALLS[0]
    per: list[tuple[float, int, Path]] = []
    for path, msg in messages:
        parser.parse(msg)  # warm
        runs = []
        for _ in range(args.repeat):  # best of N: the machine is shared, the minimum is the parser's cost
            start = time.perf_counter()
            parser.parse(msg)
            runs.append(time.perf_counter() - start)
        elapsed = min(runs)
        size = sum(len(b.text) for b in msg.blocks)
        per.append((elapsed, size, path))
    times = [t for t, _, _ in per]
    typical = [t for t, size, _ in per if 3000 <= size <= 8000]
    print(f"{len(per)} messages, log parser per message: median {statistics.median(times) * 1e3:.3f} ms, "
          f"mean {statistics.mean(times) * 1e3:.3f} ms, max {max(times) * 1e3:.3f} ms")
    if typical:
        print(f"{len(typical)} messages of 3-8 KB text: median {statistics.median(typical) * 1e3:.3f} ms")
    for t, size, path in sorted(per, reverse=True)[:5]:
        print(f"  slowest: {t * 1e3:.3f} ms  {size:6d} chars  {path.relative_to(path.parents[1])}")
    print(f"dateparser calls over {len(per) * (args.repeat + 1)} parses: {timestamps.FALLBACK_CALLS[0] - calls}")

    print(grouping_ratio(parser))

    hostile = ("Nov 22 03:14:07 " + "1.2.3.4 " * 40 + "\n") * 60_000
    from abuso.normalize import Block, Message

    msg = Message(raw=b"", email=None, blocks=[Block(hostile, "1", "text/plain")])  # type: ignore[arg-type]
    start = time.perf_counter()
    verdict = parser.parse(msg)
    print(f"hostile {len(hostile) / 1e6:.1f} MB of address lines: {time.perf_counter() - start:.2f} s -> {verdict}")


if __name__ == "__main__":
    main()
