#!/usr/bin/env python3
"""Piped start-up (issue 8): one message on stdin, ``abuso run -c CONFIG``, interpreter start included.

Every message of a corpus folder (or a sample of K of them) is piped through the CLI R times, as
procmail does, once with a config like etc/abuso.yaml (the table processor) and once with a store
processor added (SQLite, fsync on, in a temp folder). Per message the median of its R runs counts;
over the messages, the median and the worst are reported, with the bare interpreter start
(``python -c pass``) of the same interpreter as the baseline ratio, measured in the same run.

    python bench/piped.py CORPUS_DIR [-k 40] [-r 3] [--venv /tmp/pv]

``--venv``: an installed (non-editable, compiled) abuso, e.g.
``python3 -m venv /tmp/pv && /tmp/pv/bin/pip install . && /tmp/pv/bin/python -m compileall -q /tmp/pv/lib``;
without it, this checkout's bin/abuso under the current interpreter (compiled first).

For bench/run.py: :func:`measure` returns the figures as a dict, :func:`report` prints them.
Targets: median <= 60 ms, worst <= 150 ms, with and without the store; the store within 1.3x.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent
TARGET_MEDIAN, TARGET_WORST, TARGET_STORE = 0.060, 0.150, 1.3


def command(venv: str | Path | None = None) -> list[str]:
    """How to start abuso: an installed venv's console script, or this checkout's bin/abuso."""
    if venv is not None:
        return [str(Path(venv) / "bin" / "abuso")]
    return [sys.executable, str(ROOT / "bin" / "abuso")]


def interpreter(venv: str | Path | None = None) -> str:
    return str(Path(venv) / "bin" / "python") if venv is not None else sys.executable


def write_config(folder: Path, store: bool) -> Path:
    """A config like etc/abuso.yaml (every parser, the table processor); with a store in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"quarantine: {folder / 'quarantine'}", "processors:",
             f"  - table: {{file: {ROOT / 'etc' / 'networks.txt'}}}"]
    if store:
        lines.append(f"  - store: {{path: {folder / 'store'}, fsync: true}}")
    path = folder / ("store.yaml" if store else "plain.yaml")
    path.write_text("\n".join(lines) + "\n")
    return path


#: What each run is measured by: wall seconds (the target), or the child's CPU seconds (user + system),
#: which other load on a shared machine disturbs far less.
CLOCK = "wall"


def _time(argv: list[str], stdin: Path | None, cwd: Path) -> float:
    with open(stdin if stdin is not None else os.devnull, "rb") as f, open(os.devnull, "wb") as null, \
            tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=f, stdout=null, stderr=err, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode not in (0, 65):
            err.seek(0)
            sys.exit(f"bench: {' '.join(argv)} < {stdin} exited {proc.returncode}: {err.read()[-500:]!r}")
    return elapsed if CLOCK == "wall" else usage.ru_utime + usage.ru_stime


def sample(files: Sequence[Path], k: int | None) -> list[Path]:
    """K messages spread evenly over the corpus (all of them when k is None or 0)."""
    files = list(files)
    if not k or k >= len(files):
        return files
    step = len(files) / k
    return [files[int(i * step)] for i in range(k)]


def _figures(times: dict[str, list[float]]) -> dict[str, Any]:
    per = {name: statistics.median(ts) for name, ts in times.items()}
    worst = max(per, key=lambda n: per[n])
    return {"median": statistics.median(per.values()), "worst": per[worst], "worst_message": worst,
            "worst_single": max(max(ts) for ts in times.values())}


def measure(files: Sequence[Path], tmp: Path | None = None, repeat: int = 3, k: int | None = None,
            venv: str | Path | None = None, clock: str = "wall",
            against: str | Path | None = None) -> dict[str, Any]:
    """Figures of piped runs, in seconds: ``{"baseline": python -c pass (median), "messages": n,
    "plain": {...}, "store": {...}, "store_ratio": store median / plain median}``, where each of
    plain/store is ``{"median", "worst" (the slowest message, median of its runs), "worst_message",
    "worst_single" (the slowest single run), "median_ratio" and "worst_ratio" (to the baseline)}``.

    ``clock``: "wall" (the target's) or "cpu" (the child's user + system time). ``against``: another
    installed abuso (an older one) run interleaved with this one; its figures come as
    ``out["against"]`` and ``out["speedup"]`` = its median / this median (plain and store).

    Runs are interleaved (baseline, plain, store per message and round) so that load from other
    processes falls on all alike. The configs are run once first: a procmail host runs a config
    many times, and its first run fills the parsed-config and start caches.
    """
    global CLOCK
    CLOCK = clock
    holder = tempfile.TemporaryDirectory(prefix="abuso-piped-") if tmp is None else None
    try:
        folder = Path(holder.name) if holder is not None else Path(tmp)  # type: ignore[arg-type]
        chosen = sample(files, k)
        setups = {"this": venv} if against is None else {"this": venv, "against": against}
        configs = {"plain": False, "store": True}
        # Each abuso its own store: an older one may not read a newer one's index.
        paths = {(s, c): write_config(folder / f"piped-{s}-{c}", store) for s in setups for c, store in configs.items()}
        for setup, v in setups.items():
            for name in configs:
                for _ in range(2):
                    _time(command(v) + ["run", "-c", str(paths[setup, name])], chosen[0], folder)
        base: list[float] = []
        times: dict[tuple[str, str], dict[str, list[float]]] = {(s, c): {} for s in setups for c in configs}
        for _ in range(repeat):
            for p in chosen:
                base.append(_time([interpreter(venv), "-c", "pass"], None, folder))
                for setup, v in setups.items():
                    for name in configs:
                        times[setup, name].setdefault(p.name, []).append(
                            _time(command(v) + ["run", "-c", str(paths[setup, name])], p, folder))
        out: dict[str, Any] = {"baseline": statistics.median(base), "messages": len(chosen), "repeat": repeat,
                               "clock": clock}
        for setup in setups:
            figs: dict[str, Any] = {"baseline": out["baseline"]}
            for name in configs:
                fig = _figures(times[setup, name])
                fig["median_ratio"] = fig["median"] / out["baseline"]
                fig["worst_ratio"] = fig["worst"] / out["baseline"]
                figs[name] = fig
            figs["store_ratio"] = figs["store"]["median"] / figs["plain"]["median"]
            if setup == "this":
                out.update(figs)
            else:
                out["against"] = {**figs, "messages": len(chosen), "repeat": repeat, "clock": clock}
        if against is not None:
            out["speedup"] = {name: out["against"][name]["median"] / out[name]["median"] for name in configs}
        return out
    finally:
        if holder is not None:
            holder.cleanup()


def verdict(value: float, target: float) -> str:
    return "ok" if value <= target else "OVER"


def show(fig: dict[str, Any]) -> str:
    lines = [f"piped ({fig['clock']} time): {fig['messages']} messages x {fig['repeat']} runs; "
             f"python -c pass {fig['baseline'] * 1000:.0f} ms"]
    for name in ("plain", "store"):
        f = fig[name]
        lines.append(
            f"  {'without store' if name == 'plain' else 'with store   '}: median {f['median'] * 1000:.0f} ms "
            f"({f['median_ratio']:.1f}x python) [{verdict(f['median'], TARGET_MEDIAN)} <= 60 ms], "
            f"worst {f['worst'] * 1000:.0f} ms ({f['worst_ratio']:.1f}x) [{verdict(f['worst'], TARGET_WORST)} "
            f"<= 150 ms] {f['worst_message']}; slowest single run {f['worst_single'] * 1000:.0f} ms")
    lines.append(f"  store / no store (median): {fig['store_ratio']:.2f}x "
                 f"[{verdict(fig['store_ratio'], TARGET_STORE)} <= 1.3x]")
    if "against" in fig:
        lines.append("against the other abuso, interleaved in the same run:")
        lines += ["  " + line for line in show(fig["against"]).splitlines()[1:]]
        lines.append(f"  its median / this median: {fig['speedup']['plain']:.2f}x without store, "
                     f"{fig['speedup']['store']:.2f}x with store")
    return "\n".join(lines)


def report(files: Sequence[Path], tmp: Path, runs: int = 3, k: int | None = 40) -> dict[str, Any]:
    """For bench/run.py: measure a sample of K messages with this checkout, print, return the figures."""
    fig = measure(files, tmp, repeat=runs, k=k)
    print(show(fig))
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path, help="a folder of .eml files (bench/corpus.py OUTDIR -n 300)")
    ap.add_argument("-k", type=int, default=0, help="a sample of K messages (0: all)")
    ap.add_argument("-r", type=int, default=3, help="runs of each message (its median counts)")
    ap.add_argument("--venv", help="an installed abuso's venv (default: this checkout, current interpreter)")
    ap.add_argument("--against", help="another installed abuso's venv, run interleaved (e.g. the old version)")
    ap.add_argument("--cpu", action="store_true", help="the children's CPU time instead of wall time")
    args = ap.parse_args()
    files = sorted(p for p in args.corpus.iterdir() if p.is_file())
    if not files:
        sys.exit(f"bench: no messages in {args.corpus}")
    if args.venv is None:  # with PYTHONDONTWRITEBYTECODE a checkout would recompile every module per run
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "abuso")], check=True,
                       stdout=subprocess.DEVNULL, env={k: v for k, v in os.environ.items()
                                                       if k != "PYTHONDONTWRITEBYTECODE"})
    print(show(measure(files, repeat=args.r, k=args.k or None, venv=args.venv, clock="cpu" if args.cpu else "wall",
                       against=args.against)))


if __name__ == "__main__":
    main()
