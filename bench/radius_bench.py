"""Benchmark the RADIUS index: generate a detail log, index it, look addresses up.

    nice -n 19 python bench/radius_bench.py --size 1G --dir /tmp/radbench

Generates a FreeRADIUS detail log of about ``--size`` bytes (sessions with
Start, an Interim-Update every 10 minutes and Stop, over a /16 pool, records
in time order as a server writes them), indexes it from scratch, then
measures: index time and MB/s, index size, a no-change refresh, a refresh
after appending, and lookups per second. Lookups of sampled sessions are
checked against the user that really held the address, so the numbers are
for right answers.
"""

from __future__ import annotations

import argparse
import heapq
import ipaddress
import random
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from abuso.radius.index import RadiusIndex  # noqa: E402

RECORD = """{date}
\tAcct-Session-Id = "{sid:08X}"
\tFramed-Protocol = PPP
\tFramed-IP-Address = {ip}
\tUser-Name = "{user}"
\tNAS-IP-Address = 10.0.{nas}.1
\tNAS-Port = {port}
\tNAS-Port-Type = Ethernet
\tService-Type = Framed-User
\tCalling-Station-Id = "00:16:3e:{m1:02x}:{m2:02x}:{m3:02x}"
\tCalled-Station-Id = "bras{nas}"
\tAcct-Status-Type = {status}
\tAcct-Authentic = RADIUS
\tAcct-Session-Time = {dur}
\tAcct-Input-Octets = {inp}
\tAcct-Output-Octets = {out}
\tAcct-Input-Packets = {inpk}
\tAcct-Output-Packets = {outpk}
\tAcct-Delay-Time = {delay}
\tEvent-Timestamp = "{event}"
\tNAS-Identifier = "bras{nas}.example.net"
\tAcct-Unique-Session-Id = "{sid:08x}{nas:04x}"
\tTimestamp = {stamp}

"""

T0 = int(datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp())
POOL = ipaddress.ip_network("100.64.0.0/16")


def _ctime(t: int) -> str:
    return time.strftime("%a %b %e %H:%M:%S %Y", time.gmtime(t))


def _event(t: int) -> str:
    return time.strftime("%b %e %Y %H:%M:%S UTC", time.gmtime(t))


def generate(path: Path, size: int, seed: int = 1) -> tuple[list[tuple[str, int, str]], int]:
    """Write the log; return sampled (ip, time, user) truths and the number of sessions."""
    rnd = random.Random(seed)
    free = list(range(1, POOL.num_addresses - 1))
    rnd.shuffle(free)
    heap: list[tuple[int, int, int]] = []  # (time, seq, session number)
    sessions: dict[int, list] = {}
    truths: list[tuple[str, int, str]] = []
    written = 0
    t = T0
    sid = 0
    with open(path, "w", buffering=1 << 20) as out:
        while written < size:
            # A new session every ~0.5 s on average, while addresses are free.
            t += rnd.randint(0, 1)
            while heap and heap[0][0] <= t:
                et, _, n = heapq.heappop(heap)
                s = sessions[n]
                ip, user, start, stop, nas = s
                dur = et - start
                status = "Stop" if et >= stop else "Interim-Update"
                written += out.write(_record(rnd, n, ip, user, nas, status, et, dur))
                if status == "Stop":
                    free.append(int(ipaddress.ip_address(ip)) - int(POOL.network_address))
                    del sessions[n]
                else:
                    heapq.heappush(heap, (min(et + 600, stop), n, n))
            if free:
                sid += 1
                off = free.pop(rnd.randrange(len(free)) if len(free) < 100 else 0)
                ip = str(POOL.network_address + off)
                user = f"user{rnd.randrange(200000):06d}@isp.example"
                length = int(rnd.expovariate(1 / 7200)) + 30
                nas = rnd.randrange(8)
                sessions[sid] = [ip, user, t, t + length, nas]
                written += out.write(_record(rnd, sid, ip, user, nas, "Start", t, 0))
                heapq.heappush(heap, (min(t + 600, t + length), sid, sid))
                if sid % 97 == 0:
                    truths.append((ip, t + rnd.randrange(length + 1), user))
    return [x for x in truths if x[1] <= t - 7200], sid


def _record(rnd: random.Random, sid: int, ip: str, user: str, nas: int, status: str, t: int, dur: int) -> str:
    delay = 0 if rnd.random() < 0.9 else rnd.randrange(1, 30)
    return RECORD.format(date=_ctime(t + delay), sid=sid, ip=ip, user=user, nas=nas, port=sid % 4096,
                         m1=sid & 255, m2=(sid >> 8) & 255, m3=(sid >> 16) & 255, status=status, dur=dur,
                         inp=dur * 1500, out=dur * 9000, inpk=dur * 3, outpk=dur * 8, delay=delay, event=_event(t),
                         stamp=t + delay)


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper()
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="100M", help="log size, e.g. 1G, 200M (default 100M)")
    ap.add_argument("--dir", default="/tmp/radius-bench", help="work folder (deleted afterwards unless --keep)")
    ap.add_argument("--lookups", type=int, default=20000)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    log = work / "radacct" / "bras" / "detail-20261101"
    log.parent.mkdir(parents=True, exist_ok=True)
    idx = work / "radius.idx"
    idx.unlink(missing_ok=True)
    try:
        t = time.monotonic()
        truths, nsessions = generate(log, _size(args.size))
        size = log.stat().st_size
        print(f"generated {size / 1e6:.0f} MB, {nsessions} sessions in {time.monotonic() - t:.1f}s")

        index = RadiusIndex(idx)
        cpu = time.process_time()
        st = index.refresh([work / "radacct"], zone="UTC")
        cpu = time.process_time() - cpu
        print(f"index: {st.seconds:.1f}s wall, {cpu:.1f}s CPU; {size / 1e6 / st.seconds:.1f} MB/s wall, "
              f"{size / 1e6 / cpu:.1f} MB/s CPU; {st.records} records "
              f"({st.records / st.seconds:.0f}/s), {st.corrupt} corrupt, "
              f"index size {idx.stat().st_size / 1e6:.1f} MB ({idx.stat().st_size / size:.1%} of the log)")

        st = RadiusIndex(idx).refresh([work / "radacct"], zone="UTC")
        print(f"refresh, nothing changed: {st.seconds * 1000:.1f} ms")
        with open(log, "a") as out:
            rnd = random.Random(2)
            for i in range(2000):
                out.write(_record(rnd, 10**7 + i, "100.65.0.1", "late", 1, "Start", T0 + 10**7 + i, 0))
        st = RadiusIndex(idx).refresh([work / "radacct"], zone="UTC")
        print(f"refresh after appending {st.bytes_read / 1e6:.2f} MB: {st.seconds * 1000:.0f} ms")

        rnd = random.Random(3)
        queries = []
        for i in range(args.lookups):
            if i % 2 == 0 and truths:
                ip, when, user = truths[rnd.randrange(len(truths))]
                queries.append((ipaddress.ip_address(ip), when, user))
            else:  # misses: outside the pool, or nobody at that time
                queries.append((ipaddress.ip_address(f"198.51.100.{rnd.randrange(1, 255)}"),
                                T0 + rnd.randrange(86400), None))
        index = RadiusIndex(idx)
        index.open()
        wrong = ambiguous = 0
        t, cpu = time.monotonic(), time.process_time()
        for ip, when, user in queries:
            res = index.lookup(ip, when, 0, 3600)
            if user is not None:
                if res.status == "ambiguous":
                    ambiguous += 1
                elif res.users != [user]:
                    wrong += 1
            elif res.status != "none":
                wrong += 1
        dt, cpu = time.monotonic() - t, time.process_time() - cpu
        print(f"lookups: {len(queries)} in {dt:.2f}s = {len(queries) / dt:.0f}/s wall, {len(queries) / cpu:.0f}/s CPU "
              f"(half known sessions, half misses); wrong answers: {wrong}, ambiguous: {ambiguous}")
        index.close()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)  # the log, the index and its lock all live in it


if __name__ == "__main__":
    main()
