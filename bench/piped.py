#!/usr/bin/env python3
"""Piped start-up (issue 8): one message on stdin, ``abuso run -c CONFIG``, interpreter start included.

Every message of a corpus folder (or a sample of K of them) is piped through the CLI R times, as
procmail does, once with a config like etc/abuso.yaml (the table processor) and once with a store
processor added (SQLite, fsync on, in a temp folder). Per message the median of its R runs counts;
over the messages, the median and the worst are reported, with the bare interpreter start
(``python -c pass``) of the same interpreter as the baseline ratio, measured in the same run.

    python bench/piped.py CORPUS_DIR [-k 40] [-r 3] [--venv /tmp/pv] [--lmtp]

``--venv``: an installed (non-editable, compiled) abuso, e.g.
``python3 -m venv /tmp/pv && /tmp/pv/bin/pip install . && /tmp/pv/bin/python -m compileall -q /tmp/pv/lib``;
without it, this checkout's bin/abuso under the current interpreter (compiled first).

``--lmtp``: also the client form, ``abuso run -c CONFIG --lmtp unix:SOCK`` (abuso/lmtpclient.py), each
message handed to an ``abuso serve -j 2`` started on a Unix socket in the temp folder (one per config,
each its own store), interleaved with the in-process runs; both are reported. The venv needs aiosmtpd.
With ``--cpu`` the client's figures are the client's CPU only (the server's work is in another process).

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


def start_server(venv: str | Path | None, config: Path, sock: Path, log: Path, jobs: int = 2) -> subprocess.Popen:
    """``abuso serve`` on a Unix socket, once it accepts connections (its output goes nowhere)."""
    import socket

    argv = command(venv) + ["serve", "-c", str(config), "--lmtp", f"unix:{sock}", "-j", str(jobs)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log.open("ab"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"bench: {' '.join(argv)} exited {proc.returncode}: {log.read_text()[-500:]}")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(sock))
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit(f"bench: {' '.join(argv)} did not listen within 60 s")


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
            against: str | Path | None = None, lmtp: bool = False) -> dict[str, Any]:
    """Figures of piped runs, in seconds: ``{"baseline": python -c pass (median), "messages": n,
    "plain": {...}, "store": {...}, "store_ratio": store median / plain median}``, where each of
    plain/store is ``{"median", "worst" (the slowest message, median of its runs), "worst_message",
    "worst_single" (the slowest single run), "median_ratio" and "worst_ratio" (to the baseline)}``.

    ``clock``: "wall" (the target's) or "cpu" (the child's user + system time). ``against``: another
    installed abuso (an older one) run interleaved with this one; its figures come as
    ``out["against"]`` and ``out["speedup"]`` = its median / this median (plain and store).
    ``lmtp``: the client form too (``--lmtp`` to an ``abuso serve`` per config), as ``out["lmtp"]``, and
    ``out["lmtp_speedup"]`` = the in-process median / the client's (plain and store).

    Runs are interleaved (baseline, plain, store per message and round) so that load from other
    processes falls on all alike. The configs are run once first: a procmail host runs a config
    many times, and its first run fills the parsed-config and start caches.
    """
    global CLOCK
    CLOCK = clock
    holder = tempfile.TemporaryDirectory(prefix="abuso-piped-") if tmp is None else None
    servers: list[subprocess.Popen] = []
    try:
        folder = Path(holder.name) if holder is not None else Path(tmp)  # type: ignore[arg-type]
        chosen = sample(files, k)
        setups = {"this": venv} if against is None else {"this": venv, "against": against}
        configs = {"plain": False, "store": True}
        # Each abuso its own store: an older one may not read a newer one's index.
        paths = {(s, c): write_config(folder / f"piped-{s}-{c}", store) for s in setups for c, store in configs.items()}
        # What each measured command is: (setup, config) -> argv without the message.
        argvs = {(s, c): command(v) + ["run", "-c", str(paths[s, c])] for s, v in setups.items() for c in configs}
        if lmtp:       # the client form against a server per config, with its own config (its own store)
            for c, store in configs.items():
                cfg = write_config(folder / f"piped-lmtp-{c}", store)
                sock = folder / f"lmtp-{c}.sock"
                servers.append(start_server(venv, cfg, sock, folder / f"lmtp-{c}.log"))
                argvs["lmtp", c] = command(venv) + ["run", "-c", str(cfg), "--lmtp", f"unix:{sock}"]
        for argv in argvs.values():
            for _ in range(2):
                _time(argv, chosen[0], folder)
        base: list[float] = []
        times: dict[tuple[str, str], dict[str, list[float]]] = {key: {} for key in argvs}
        for _ in range(repeat):
            for p in chosen:
                base.append(_time([interpreter(venv), "-c", "pass"], None, folder))
                for key, argv in argvs.items():
                    times[key].setdefault(p.name, []).append(_time(argv, p, folder))
        out: dict[str, Any] = {"baseline": statistics.median(base), "messages": len(chosen), "repeat": repeat,
                               "clock": clock}
        for setup in {s for s, _ in argvs}:
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
                out[setup] = {**figs, "messages": len(chosen), "repeat": repeat, "clock": clock}
        if against is not None:
            out["speedup"] = {name: out["against"][name]["median"] / out[name]["median"] for name in configs}
        if lmtp:
            out["lmtp_speedup"] = {name: out[name]["median"] / out["lmtp"][name]["median"] for name in configs}
        return out
    finally:
        for proc in servers:
            proc.terminate()
        for proc in servers:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
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
    if "lmtp" in fig:
        lines.append("abuso run --lmtp (handed to abuso serve -j 2), interleaved in the same run:")
        lines += ["  " + line for line in show(fig["lmtp"]).splitlines()[1:]]
        lines.append(f"  in-process median / --lmtp median: {fig['lmtp_speedup']['plain']:.2f}x without store, "
                     f"{fig['lmtp_speedup']['store']:.2f}x with store")
    if "against" in fig:
        lines.append("against the other abuso, interleaved in the same run:")
        lines += ["  " + line for line in show(fig["against"]).splitlines()[1:]]
        lines.append(f"  its median / this median: {fig['speedup']['plain']:.2f}x without store, "
                     f"{fig['speedup']['store']:.2f}x with store")
    return "\n".join(lines)


def report(files: Sequence[Path], tmp: Path, runs: int = 3, k: int | None = 40) -> dict[str, Any]:
    """For bench/run.py: measure a sample of K messages with this checkout, print, return the figures; the
    --lmtp client form too when aiosmtpd (for abuso serve) is installed."""
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        lmtp = False
    else:
        lmtp = True
    fig = measure(files, tmp, repeat=runs, k=k, lmtp=lmtp)
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
    ap.add_argument("--lmtp", action="store_true", help="also abuso run --lmtp, to an abuso serve per config")
    args = ap.parse_args()
    files = sorted(p for p in args.corpus.iterdir() if p.is_file())
    if not files:
        sys.exit(f"bench: no messages in {args.corpus}")
    if args.venv is None:  # with PYTHONDONTWRITEBYTECODE a checkout would recompile every module per run
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "abuso")], check=True,
                       stdout=subprocess.DEVNULL, env={k: v for k, v in os.environ.items()
                                                       if k != "PYTHONDONTWRITEBYTECODE"})
    print(show(measure(files, repeat=args.r, k=args.k or None, venv=args.venv, clock="cpu" if args.cpu else "wall",
                       against=args.against, lmtp=args.lmtp)))


if __name__ == "__main__":
    main()
