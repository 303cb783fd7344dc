#!/usr/bin/env python3
"""Do batch workers give memory back? 500 big-header messages through ``abuso run -j 2`` (issue 13).

The messages cycle through the header floods of bench/hostile.py (encoded words, ``<`` runs, Received
floods, long Content-Type and From headers). While the batch runs, every process of it is sampled from
/proc (VmHWM: its peak resident memory, VmRSS: now), so the figures are per process: the parent and
each worker, including workers that were replaced on the way.

    python bench/recycle.py                       # this tree
    python bench/recycle.py --tree /work/main     # another checkout, for a before/after in one run
    python bench/recycle.py -n 500 --tree A --tree B
    python bench/recycle.py --heavy -n 100            # the costliest bodies of the hostile set instead

Prints, per tree: wall time, workers started, the parent's peak RSS, the largest worker peak, the mean
worker peak, and the largest message alone (one piped run of the costliest case).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import hostile  # noqa: E402

#: (name, builder): what one message of the batch is, in turn.
KINDS = [
    ("encoded-words-224k", lambda: hostile.encoded_words(224 << 10)),
    ("header-lt-256k", lambda: hostile.char_header("<", 256 << 10)),
    ("received-20k", lambda: hostile.received_flood(20_000)),
    ("content-type-ips-100k", hostile.content_type_ips),
    ("from-100k", hostile.big_from),
]

#: ``--heavy``: the costliest bodies of the hostile set at a quarter of their size (each alone ~50-130 MB).
HEAVY = [
    ("log-lines-8mb", lambda: hostile.log_lines(8 << 20)),
    ("addresses-250k", lambda: hostile.many_addresses(250_000)),
    ("blank-lines-8mb", lambda: hostile.blank_lines(8 << 20)),
    ("timed-log-20k", hostile.timed_log),
    ("encoded-words-1mb", hostile.encoded_words),
]


def _status(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "PPid"):
                out[key] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return out


def _tree(root: int) -> list[int]:
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    todo.append(int(stat.parent.name))
            except (OSError, ValueError, IndexError):
                pass
    return found


def run_batch(tree: Path, folder: Path, config: Path, jobs: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "abuso", "run", "-c", str(config), "-j", str(jobs), "-f", "json",
                             str(folder)], cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peaks: dict[int, int] = {}
    while proc.poll() is None:
        for pid in _tree(proc.pid):
            hwm = _status(pid).get("VmHWM")
            if hwm:
                peaks[pid] = max(peaks.get(pid, 0), hwm)
        time.sleep(0.05)
    wall = time.perf_counter() - t
    err = proc.stderr.read().decode() if proc.stderr else ""
    parent = peaks.pop(proc.pid, 0)
    workers = sorted(peaks.values())
    return {"wall": wall, "status": proc.returncode, "parent_mb": parent / 1024, "workers": len(workers),
            "worker_max_mb": (workers[-1] if workers else 0) / 1024,
            "worker_mean_mb": (sum(workers) / len(workers) if workers else 0) / 1024, "summary": err.strip()[-200:]}


def alone(tree: Path, folder: Path, config: Path, kinds: list) -> float:
    """The largest peak RSS of one message of each kind, piped alone (MB)."""
    worst = 0.0
    for i, (name, _) in enumerate(kinds):
        path = folder / f"{i:04d}-{name}.eml"
        run = hostile.run_abuso(["run", "-c", str(config), "-f", "json"], path,
                                env={**os.environ, "PYTHONPATH": str(tree)})
        worst = max(worst, run.rss_mb)
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=500, help="messages in the batch")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--max-memory", help="defaults.max_memory of the config (workers recycle at a quarter of it)")
    ap.add_argument("--heavy", action="store_true", help="the costliest bodies instead of header floods")
    ap.add_argument("--tree", action="append", type=Path, help="abuso source tree (repeatable; default: this one)")
    args = ap.parse_args()
    trees = args.tree or [HERE.parent]
    with tempfile.TemporaryDirectory(prefix="abuso-recycle-") as tmp:
        folder = Path(tmp) / "mail"
        folder.mkdir()
        kinds = HEAVY if args.heavy else KINDS
        built = {name: build() for name, build in kinds}
        for i in range(args.n):
            name = kinds[i % len(kinds)][0]
            (folder / f"{i:04d}-{name}.eml").write_bytes(built[name])
        del built
        config = Path(tmp) / "abuso.yaml"
        config.write_text(f"quarantine: {Path(tmp) / 'quarantine'}\n"
                          + (f"defaults: {{max_memory: {args.max_memory}}}\n" if args.max_memory else ""))
        print(f"{args.n} messages ({', '.join(name for name, _ in kinds)}), -j {args.jobs}")
        print(f"{'tree':<28} {'wall s':>7} {'workers':>7} {'parent MB':>9} {'worker max MB':>13} "
              f"{'worker mean MB':>14} {'one alone MB':>12}  exit")
        for tree in trees:
            r = run_batch(tree.resolve(), folder, config, args.jobs)
            one = alone(tree.resolve(), folder, config, kinds)
            print(f"{str(tree):<28} {r['wall']:7.1f} {r['workers']:7d} {r['parent_mb']:9.0f} "
                  f"{r['worker_max_mb']:13.0f} {r['worker_mean_mb']:14.0f} {one:12.0f}  {r['status']}", flush=True)
            if r["status"] not in (0, 65):
                print("   ", r["summary"])


if __name__ == "__main__":
    main()
