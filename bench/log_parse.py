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

    hostile = ("Nov 22 03:14:07 " + "1.2.3.4 " * 40 + "\n") * 60_000
    from abuso.normalize import Block, Message

    msg = Message(raw=b"", email=None, blocks=[Block(hostile, "1", "text/plain")])  # type: ignore[arg-type]
    start = time.perf_counter()
    verdict = parser.parse(msg)
    print(f"hostile {len(hostile) / 1e6:.1f} MB of address lines: {time.perf_counter() - start:.2f} s -> {verdict}")


if __name__ == "__main__":
    main()
