#!/usr/bin/env python3
"""abuso benchmarks (never run as timed tests).

Builds a corpus of N messages from samples/ and ../shared/corpus/ and reports:
- batch messages/s with -j 1 and -j 2 (the whole CLI: reading, all parsers, JSON output);
- wall time of one piped message, interpreter start included (procmail mode), median of R runs;
- peak resident memory of the batch runs;
- the log parser's grouping: one address's 3,000 timed lines against the same from 1,000 addresses.

    python bench/run.py [-n 2000] [-r 20] [-c etc/abuso.yaml]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("ABUSO_CORPUS", ROOT.parent / "shared" / "corpus"))
ABUSO = [sys.executable, str(ROOT / "bin" / "abuso")]


def sources() -> list[Path]:
    found = []
    for base in (ROOT / "samples", CORPUS):
        if base.is_dir():
            found += sorted(p for p in base.rglob("*.eml") if p.is_file())
    if not found:
        sys.exit("bench: no messages found in samples/ or the shared corpus")
    return found


def build(n: int, folder: Path) -> list[Path]:
    src = sources()
    out = []
    for i in range(n):
        dst = folder / f"{i:06d}.eml"
        shutil.copyfile(src[i % len(src)], dst)
        out.append(dst)
    return out


def peak_children_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def batch(config: str, listing: Path, jobs: int, n: int) -> tuple[float, float]:
    t = time.perf_counter()
    with open(listing) as lst, open(os.devnull, "w") as null:
        rc = subprocess.run(ABUSO + ["run", "-c", config, "-f", "json", "-j", str(jobs), "--files-from", "-"],
                            stdin=lst, stdout=null, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t
    if rc.returncode not in (0, 65):
        sys.exit(f"bench: abuso exited {rc.returncode}: {rc.stderr[-500:]}")
    return n / elapsed, elapsed


def piped(config: str, message: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        with open(message, "rb") as f, open(os.devnull, "w") as null:
            t = time.perf_counter()
            subprocess.run(ABUSO + ["run", "-c", config], stdin=f, stdout=null, stderr=null)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=2000, help="messages in the batch corpus")
    ap.add_argument("-r", type=int, default=20, help="runs of the piped-message measurement")
    ap.add_argument("-c", default=str(ROOT / "etc" / "abuso.yaml"), help="config")
    args = ap.parse_args()
    # An installed abuso has its bytecode compiled (pip does it); with PYTHONDONTWRITEBYTECODE set,
    # as on some CI machines, a source checkout would otherwise recompile every module on every run.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "abuso")], check=True,
                   stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory(prefix="abuso-bench-") as tmp:
        files = build(args.n, Path(tmp))
        listing = Path(tmp) / "list"
        listing.write_text("".join(f"{p}\n" for p in files))
        size = sum(p.stat().st_size for p in files) / 1e6
        print(f"corpus: {args.n} messages, {size:.1f} MB, from {len(sources())} distinct samples")
        for jobs in (1, 2):
            rate, secs = batch(args.c, listing, jobs, args.n)
            print(f"batch -j {jobs}: {rate:7.0f} messages/s ({secs:.2f} s)")
        print(f"peak memory of a batch run: {peak_children_mb():.0f} MB")
        typical = next((p for p in sources() if p.name == "log-10.eml"), sources()[0])
        print(f"one piped message ({typical.name}), interpreter start included: "
              f"{piped(args.c, typical, args.r) * 1000:.0f} ms median of {args.r}")
    # Issue 8 item 2: the log parser's grouping, one busy address against many quiet ones.
    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
    from log_parse import grouping_ratio

    from abuso.parsers.log import LogParser

    print(grouping_ratio(LogParser({})))


if __name__ == "__main__":
    main()
