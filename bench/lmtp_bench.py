"""`abuso serve` over LMTP against `abuso run -j 2` on the same messages (issue target: median <= 10 ms per
message, throughput >= 0.8x the batch).

    python bench/lmtp_bench.py [--messages 2000] [--jobs 2] [--clients 4]

The messages are the bundled samples repeated with distinct Message-IDs. Prints per-message latency over
one connection (median, p99), throughput with --clients connections, and the batch's messages/s, as ratios.
"""

from __future__ import annotations

import argparse
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ABUSO = [sys.executable, "-m", "abuso"]


def corpus(count: int) -> list[bytes]:
    samples = sorted(p for p in (ROOT / "samples").rglob("*.eml"))
    out = []
    for i in range(count):
        raw = samples[i % len(samples)].read_bytes()
        out.append(f"X-Bench: {i}\n".encode() + raw)
    return [m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for m in out]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--clients", type=int, default=4)
    a = ap.parse_args()
    messages = corpus(a.messages)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        cfg = t / "abuso.yaml"
        cfg.write_text(f"quarantine: {t / 'q'}\n")
        folder = t / "mail"
        folder.mkdir()
        for i, m in enumerate(messages):
            (folder / f"{i:06}.eml").write_bytes(m)
        start = time.perf_counter()
        subprocess.run(ABUSO + ["run", "-c", str(cfg), "-j", str(a.jobs), "-f", "json", str(folder)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        batch = a.messages / (time.perf_counter() - start)
        sock = t / "lmtp.sock"
        proc = subprocess.Popen(ABUSO + ["serve", "-c", str(cfg), "--lmtp", f"unix:{sock}", "-j", str(a.jobs)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while True:
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(sock))
                break
            except OSError:
                time.sleep(0.05)
        latencies = []
        with smtplib.LMTP(str(sock)) as c:
            for m in messages[: min(500, len(messages))]:
                t0 = time.perf_counter()
                c.sendmail("r@example.org", ["abuse@example.net"], m)
                latencies.append(time.perf_counter() - t0)
        latencies.sort()
        chunks = [messages[i::a.clients] for i in range(a.clients)]

        def send(chunk: list[bytes]) -> None:
            with smtplib.LMTP(str(sock)) as c:
                for m in chunk:
                    c.sendmail("r@example.org", ["abuse@example.net"], m)

        start = time.perf_counter()
        threads = [threading.Thread(target=send, args=(c,)) for c in chunks]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        served = a.messages / (time.perf_counter() - start)
        proc.terminate()
        proc.wait()
    median = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(f"batch abuso run -j {a.jobs}:          {batch:7.0f} msg/s")
    print(f"LMTP, {a.clients} connections, -j {a.jobs}:  {served:7.0f} msg/s  ({served / batch:.2f}x the batch)")
    print(f"LMTP latency, one connection: median {median:.1f} ms, p99 {p99:.1f} ms")


if __name__ == "__main__":
    main()
