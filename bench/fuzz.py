"""Fuzz the whole batch path and prove nothing is lost (issue 13).

    python bench/fuzz.py [--count 100000] [--seed 13] [--jobs 2] [--keep DIR]

Mutates samples/ and ../shared/corpus (byte flips, truncation, duplicated headers, broken MIME boundaries,
bad charsets, NUL bytes, CRLF/LF mixes, 30-level message/rfc822 nesting, an mbox From line alone, empty and
binary files), runs ``abuso run -j N -f json`` with a store over them, and checks that every input appears
in the output or in the quarantine (exactly once in each place it appears), with no traceback anywhere.
Prints inputs, lost, duplicated, quarantined, tracebacks, wall time, messages/s and the peak RSS of any one
process of the run. Exit 1 when anything was lost, duplicated or a traceback was seen.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("ABUSO_CORPUS", ROOT.parent / "shared" / "corpus"))


def sources() -> list[bytes]:
    files = sorted((ROOT / "samples").rglob("*.eml"))
    if CORPUS.is_dir():
        files += sorted(CORPUS.rglob("*.eml"))
    return [p.read_bytes() for p in files]


def _flip(d: bytes, r: random.Random) -> bytes:
    b = bytearray(d)
    for _ in range(r.randint(1, 20)):
        if b:
            b[r.randrange(len(b))] = r.randrange(256)
    return bytes(b)


def _truncate(d: bytes, r: random.Random) -> bytes:
    return d[: r.randrange(len(d) + 1)]


def _dup_headers(d: bytes, r: random.Random) -> bytes:
    head, sep, body = d.partition(b"\n\n")
    lines = head.split(b"\n")
    extra = [r.choice(lines) for _ in range(r.randint(1, 50))] if lines else []
    return b"\n".join(lines + extra) + sep + body


def _boundary(d: bytes, r: random.Random) -> bytes:
    return re.sub(rb'boundary="?([^";\r\n]+)"?', lambda m: b'boundary="' + m.group(1)[::-1] + b'"', d, count=1) \
        if r.random() < 0.5 else d.replace(b"\n--", b"\n-", r.randint(1, 3))


def _charset(d: bytes, r: random.Random) -> bytes:
    bad = r.choice([b"bogus-8", b"utf-7", b"x-\xff\xfe", b"", b"utf-8\x00", b"cp65001", b"iso-2022-jp-9"])
    return re.sub(rb"charset=\"?[A-Za-z0-9_-]+\"?", b"charset=" + bad, d)


def _nul(d: bytes, r: random.Random) -> bytes:
    i = r.randrange(len(d) + 1)
    return d[:i] + b"\x00" * r.randint(1, 100) + d[i:]


def _eol(d: bytes, r: random.Random) -> bytes:
    return b"".join(line + r.choice([b"\r\n", b"\n", b"\r"]) for line in d.split(b"\n"))


def _nest(d: bytes, r: random.Random) -> bytes:
    for level in range(30):
        d = (b"From: fwd%d@example.org\nSubject: Fwd\nMIME-Version: 1.0\n"
             b"Content-Type: message/rfc822\n\n" % level) + d
    return d


def _special(d: bytes, r: random.Random) -> bytes:
    return r.choice([b"", b"From someone@example.org Sat Nov 28 10:00:00 2026\n", bytes(r.randrange(256)
                     for _ in range(r.randint(1, 2000))), b"\n\n\n", b"not mail at all\n"])


MUTATIONS = [_flip, _truncate, _dup_headers, _boundary, _charset, _nul, _eol, _nest, _special]


def mutate(data: bytes, r: random.Random) -> bytes:
    for _ in range(r.randint(1, 3)):
        data = r.choice(MUTATIONS)(data, r)
    return data


def generate(folder: Path, count: int, seed: int) -> list[Path]:
    r = random.Random(seed)
    originals = sources()
    paths = []
    for n in range(count):
        p = folder / f"fuzz-{n:07d}.eml"
        p.write_bytes(mutate(r.choice(originals), r))
        paths.append(p)
    return paths


def check(paths: list[Path], stdout: bytes, stderr: bytes, quarantine: Path) -> dict[str, int]:
    wanted = {str(p) for p in paths}
    out_seen: dict[str, int] = {}
    for line in stdout.decode("utf-8").split("\n"):   # JSON Lines: \n only (U+2028 may sit in a string)
        if not line:
            continue
        origin = json.loads(line).get("file")
        out_seen[origin] = out_seen.get(origin, 0) + 1
    q_seen: dict[str, int] = {}
    for reason in quarantine.glob("*.reason"):
        for line in reason.read_text(encoding="utf-8", errors="replace").splitlines():
            m = re.search(r"\torigin: (.*?)\treason: ", line)
            if m:
                q_seen[m.group(1)] = q_seen.get(m.group(1), 0) + 1
    # A file that reads as an mbox gives one origin per message in it: "<path>#1", "<path>#2", ...
    found = {re.sub(r"#\d+$", "", o) for o in (*out_seen, *q_seen)}
    lost = [p for p in wanted if p not in found]
    duplicated = [o for o in (*out_seen, *q_seen) if out_seen.get(o, 0) > 1 or q_seen.get(o, 0) > 1]
    return {"inputs": len(wanted), "lost": len(lost), "duplicated": len(duplicated),
            "quarantined": len(q_seen), "output": len(out_seen),
            "tracebacks": stderr.count(b"Traceback"), "examples_lost": lost[:3]}  # type: ignore[dict-item]


def run(count: int, seed: int, jobs: int, work: Path) -> dict[str, object]:
    folder = work / "in"
    folder.mkdir()
    paths = generate(folder, count, seed)
    cfg = work / "abuso.yaml"
    cfg.write_text(f"quarantine: {work / 'q'}\nprocessors:\n  - store: {{path: {work / 'store'}}}\n")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "abuso", "run", "-c", str(cfg), "-j", str(jobs), "-f", "json",
                           str(folder)], capture_output=True, cwd=ROOT)
    wall = time.perf_counter() - start
    result: dict[str, object] = dict(check(paths, done.stdout, done.stderr, work / "q"))
    result.update(exit=done.returncode, wall_s=round(wall, 1), per_s=round(count / wall, 1),
                  peak_rss_mb=round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1))
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="work in this (new) folder and keep it")
    a = ap.parse_args()
    if a.keep:
        a.keep.mkdir(parents=True)
        result = run(a.count, a.seed, a.jobs, a.keep)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = run(a.count, a.seed, a.jobs, Path(tmp))
    print(json.dumps(result))
    sys.exit(1 if result["lost"] or result["duplicated"] or result["tracebacks"] else 0)


if __name__ == "__main__":
    main()
