#!/usr/bin/env python3
"""abuso benchmarks (never run as timed tests): every figure of issue 8, each beside its target.

On the varied bench corpus (bench/corpus.py: the samples and the shared corpus, long logs, HTML
notices, prose in seven languages), N messages:

- the **floor**: the stdlib's parse + decode of the same messages in one process (bench/floor.py);
- batch ``abuso run -j 1`` and ``-j 2`` (the whole CLI: reading, every parser, the table
  processor, JSON output), as seconds, messages/s and the **ratio to the floor**; both without and
  with a store processor (SQLite, fsync on, a fresh store per run) and the store's cost as a ratio;
- peak resident memory of any one process of those runs;
- one piped message, interpreter start included (procmail mode): median and worst over a sample
  of the corpus, with and without the store (bench/piped.py when present);
- ``abuso query`` over a 100,000-report index (bench/query_bench.py when present);
- the log parser's grouping: one address's 3,000 timed lines against the same from 1,000 addresses.

    python bench/run.py [-n 2000] [-r 5] [--skip piped,query,grouping]

Targets (issue 8): -j 2 <= 1.5x the floor, -j 1 <= 3x; piped median <= 60 ms and worst <= 150 ms;
the store within 1.3x of the run without it; query of an address <= 50 ms, a /16 in <= 100 MB.
Peak RSS at 100,000 messages: bench/fuzz.py -n 100000 prints it (too long for this run).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(BENCH)]

import corpus  # noqa: E402
from floor import floor_times  # noqa: E402

ABUSO = [sys.executable, str(ROOT / "bin" / "abuso")]


def verdict(value: float, target: float) -> str:
    return "ok" if value <= target else "OVER"


def write_config(folder: Path, store: bool, name: str = "abuso") -> Path:
    """A config like etc/abuso.yaml (the table processor), with or without a store in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"quarantine: {folder / 'quarantine'}", "processors:",
             f"  - table: {{file: {ROOT / 'etc' / 'networks.txt'}}}"]
    if store:
        lines.append(f"  - store: {{path: {folder / 'store'}, fsync: true}}")
    path = folder / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def batch(config: Path, listing: Path, jobs: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of abuso and its workers) of ``abuso run -j JOBS`` over the listed files,
    JSON to /dev/null. CPU time is what other load on a shared machine disturbs least."""
    cpu = children_cpu()
    t = time.perf_counter()
    with open(listing) as lst, open(os.devnull, "w") as null:
        rc = subprocess.run(ABUSO + ["run", "-c", str(config), "-f", "json", "-j", str(jobs), "--files-from", "-"],
                            stdin=lst, stdout=null, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t
    if rc.returncode not in (0, 65):
        sys.exit(f"bench: abuso exited {rc.returncode}: {rc.stderr[-500:]}")
    return elapsed, children_cpu() - cpu


def peak_children_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def batch_figures(files: list[Path], tmp: Path, rounds: int = 1) -> dict[str, Any]:
    """Floor, -j 1 / -j 2 with and without the store, best of ``rounds``; ratios to the floor."""
    listing = tmp / "list"
    listing.write_text("".join(f"{p}\n" for p in files))
    fig: dict[str, Any] = {"messages": len(files)}
    floors = [floor_times(files) for _ in range(max(rounds, 2))]
    fig["floor"], fig["floor_cpu"] = min(f[0] for f in floors), min(f[1] for f in floors)
    runs = 0
    for store in (False, True):
        for jobs in (1, 2):
            best, best_cpu = float("inf"), float("inf")
            for _ in range(rounds):
                runs += 1
                config = write_config(tmp / f"run{runs}", store)   # a fresh store: no run skips repeats
                wall, cpu = batch(config, listing, jobs)
                best, best_cpu = min(best, wall), min(best_cpu, cpu)
            fig[f"j{jobs}{'_store' if store else ''}"] = best
            fig[f"j{jobs}{'_store' if store else ''}_cpu"] = best_cpu
    fig["peak_rss_mb"] = peak_children_mb()
    return fig


def print_batch(fig: dict[str, Any]) -> None:
    n, fl = fig["messages"], fig["floor"]
    print(f"floor (stdlib parse + decode, one process): {fl:.2f} s ({n / fl:.0f} messages/s), "
          f"{fig['floor_cpu']:.2f} s CPU")
    for store in (False, True):
        tag = "_store" if store else ""
        for jobs, target in ((1, 3.0), (2, 1.5)):
            t = fig[f"j{jobs}{tag}"]
            ratio = t / fl
            cpu = fig[f"j{jobs}{tag}_cpu"]
            print(f"batch -j {jobs}{' with store' if store else '           '}: {t:6.2f} s {n / t:5.0f} msg/s "
                  f"= {ratio:4.1f}x the floor (target <= {target}x: {verdict(ratio, target)}); "
                  f"CPU {cpu:.2f} s = {cpu / fig['floor_cpu']:.1f}x the floor's")
    for jobs in (1, 2):
        ratio = fig[f"j{jobs}_store"] / fig[f"j{jobs}"]
        cpu = fig[f"j{jobs}_store_cpu"] / fig[f"j{jobs}_cpu"]
        print(f"store on / off, -j {jobs}: {ratio:.2f}x (target <= 1.3x: {verdict(ratio, 1.3)}); CPU {cpu:.2f}x")
    print(f"peak RSS of any one batch process: {fig['peak_rss_mb']:.0f} MB (target <= 150 MB)")


def piped_fallback(files: list[Path], tmp: Path, runs: int) -> None:
    """Without bench/piped.py: median and worst of a few corpus messages piped through the CLI."""
    sample = files[:: max(1, len(files) // 20)][:20]
    for store in (False, True):
        config = write_config(tmp / f"piped{int(store)}", store)
        times = []
        for p in sample:
            best = float("inf")
            for _ in range(runs):
                with open(p, "rb") as f, open(os.devnull, "w") as null:
                    t = time.perf_counter()
                    subprocess.run(ABUSO + ["run", "-c", str(config)], stdin=f, stdout=null, stderr=null)
                    best = min(best, time.perf_counter() - t)
            times.append(best)
        times.sort()
        print(f"piped{' with store' if store else ''}: median {times[len(times) // 2] * 1000:.0f} ms, "
              f"worst {times[-1] * 1000:.0f} ms over {len(sample)} messages (targets 60 / 150 ms)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=2000, help="messages in the batch corpus")
    ap.add_argument("-r", type=int, default=3, help="rounds of each piped measurement (best of)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of each batch run (best of)")
    ap.add_argument("--skip", default="", help="comma-separated: batch, piped, query, grouping")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    # An installed abuso has its bytecode compiled (pip does it); with PYTHONDONTWRITEBYTECODE set,
    # as on some CI machines, a source checkout would otherwise recompile every module on every run.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "abuso")], check=True,
                   stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory(prefix="abuso-bench-") as tmpname:
        tmp = Path(tmpname)
        files = corpus.build(args.n, tmp / "corpus")
        size = sum(p.stat().st_size for p in files) / 1e6
        print(f"corpus: {len(files)} messages, {size:.1f} MB (bench/corpus.py)")
        if "batch" not in skip:
            print_batch(batch_figures(files, tmp, args.rounds))
        if "piped" not in skip:
            try:
                import piped
            except ImportError:
                piped_fallback(files, tmp, args.r)
            else:
                piped.report(files, tmp, args.r)
    if "query" not in skip:
        try:
            import query_bench
        except ImportError:
            print("query: bench/query_bench.py not present")
        else:
            query_bench.report()
    if "grouping" not in skip:
        from log_parse import grouping_ratio

        from abuso.parsers.log import LogParser

        print(grouping_ratio(LogParser({})))


if __name__ == "__main__":
    main()
