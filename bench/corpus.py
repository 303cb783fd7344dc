#!/usr/bin/env python3
"""The bench corpus: N varied abuse reports built from samples/ and ../shared/corpus/.

Every distinct source message (ARF, X-ARF, CSV, SpamCop, ACNS, forwarded spam, HTML notices, logs,
mailer noise) is used in turn, and in between come generated reports of the shapes a real abuse@
mailbox gets in bulk:

- long logs (sshd, iptables, Apache; 50 to 1,000 lines, several addresses, UTC or a named zone);
- HTML notices (a table of addresses and stamps, base64 or quoted-printable);
- prose notices in English, German, French, Spanish, Italian, Dutch and Portuguese.

Each copy gets its own ``X-Abuso-Bench`` header, so no two messages have the same bytes (a store
would otherwise skip the repeats as duplicates and flatter the store's cost). Deterministic for a
given N and seed.

    python bench/corpus.py OUTDIR [-n 2000] [--seed 1]     # writes OUTDIR/000000.eml ...
"""

from __future__ import annotations

import argparse
import base64
import os
import quopri
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("ABUSO_CORPUS", ROOT.parent / "shared" / "corpus"))

def sources() -> list[Path]:
    """Every distinct sample message, samples/ first, then the shared corpus."""
    found: list[Path] = []
    for base in (ROOT / "samples", CORPUS):
        if base.is_dir():
            found += sorted(p for p in base.rglob("*.eml") if p.is_file())
    if not found:
        sys.exit("bench: no messages found in samples/ or the shared corpus")
    return found


def _ip(rnd: random.Random) -> str:
    return rnd.choice([f"198.51.100.{rnd.randrange(1, 255)}", f"203.0.113.{rnd.randrange(1, 255)}",
                       f"192.0.2.{rnd.randrange(1, 255)}", f"2001:db8::{rnd.randrange(1, 0xffff):x}"])


def _headers(subject: str, sender: str, date: datetime, extra: str = "") -> str:
    return (f"From: {sender}\nTo: abuse@isp.example.net\nSubject: {subject}\n"
            f"Date: {date.strftime('%a, %d %b %Y %H:%M:%S +0000')}\n"
            f"Message-ID: <bench-{date.timestamp():.0f}-{sum(subject.encode()) % 997}@{sender.split('@')[-1]}>\n"
            f"MIME-Version: 1.0\n{extra}")


def long_log(rnd: random.Random, when: datetime) -> bytes:
    lines = rnd.choice([50, 200, 200, 500, 1000])
    addresses = [_ip(rnd) for _ in range(rnd.randrange(1, 8))]
    kind = rnd.choice(["sshd", "iptables", "apache"])
    zone, offset = rnd.choice([("UTC", 0), ("CET", 1), ("EST", -5)])
    out = []
    t = when - timedelta(hours=6)
    for i in range(lines):
        t += timedelta(seconds=rnd.randrange(1, 40))
        ip = addresses[i % len(addresses)] if rnd.random() < 0.8 else rnd.choice(addresses)
        local = t + timedelta(hours=offset)
        if kind == "sshd":
            out.append(f"{local:%b %d %H:%M:%S} gw1 sshd[{1000 + i}]: Failed password for invalid user "
                       f"u{i % 97} from {ip} port {rnd.randrange(1024, 65535)} ssh2")
        elif kind == "iptables":
            out.append(f"{local:%b %d %H:%M:%S} fw kernel: [{i}.{i % 1000:03d}] DROP IN=eth0 OUT= SRC={ip} "
                       f"DST=192.0.2.1 LEN=60 PROTO=TCP SPT={rnd.randrange(1024, 65535)} "
                       f"DPT={rnd.choice([22, 23, 445])}")
        else:
            out.append(f'{ip} - - [{local:%d/%b/%Y:%H:%M:%S} {offset:+03d}00] "POST /wp-login.php HTTP/1.1" 200 '
                       f"{rnd.randrange(100, 9000)}")
    body = (f"Hello,\n\nwe see {kind} abuse from your network. Times are {zone}. Excerpt of our logs:\n\n"
            + "\n".join(out) + "\n\nPlease stop it.\n-- \nsecurity team\n")
    head = _headers(f"{kind} abuse from your network ({len(addresses)} hosts)", "soc@victim.example.org", when,
                    "Content-Type: text/plain; charset=us-ascii\n")
    return (head + "\n" + body).encode()


def html_notice(rnd: random.Random, when: datetime) -> bytes:
    rows = []
    for _ in range(rnd.randrange(1, 30)):
        t = when - timedelta(minutes=rnd.randrange(1, 600))
        port = rnd.choice([22, 23, 80, 443])
        rows.append(f"<tr><td>{_ip(rnd)}</td><td>{t:%Y-%m-%d %H:%M:%S}</td><td>{port}</td></tr>")
    html = ("<html><head><style>td{padding:2px}</style></head><body><p>Dear abuse team,</p>"
            "<p>Our sensors observed <b>port scans</b> from your network. All times are UTC.</p>"
            "<table><tr><th>Source IP</th><th>Timestamp</th><th>Port</th></tr>" + "".join(rows) +
            "</table><p>Regards,<br>SOC</p></body></html>\n").encode()
    if rnd.random() < 0.5:
        cte, payload = "base64", base64.encodebytes(html).decode()
    else:
        cte, payload = "quoted-printable", quopri.encodestring(html).decode()
    head = _headers("Port scan detected", "noc@monitor.example.com", when,
                    f"Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: {cte}\n")
    return (head + "\n" + payload).encode()


#: (language, subject, sentence with {ip} {d} {m} {y} {hh} {mm} {ss}) — day-first prose dates with a clock
#: time and a local zone name, the shapes issue 8 names.
PROSE = [
    ("en", "Abuse from your network", "On {y}-{m}-{d} at {hh}:{mm}:{ss} UTC the host {ip} attacked our mail server."),
    ("de", "Angriff aus Ihrem Netz", "am {d}.{m}.{y} um {hh}:{mm}:{ss} Uhr (MEZ) hat die IP {ip} unseren Server "
                                     "angegriffen (SSH-Brute-Force)."),
    ("fr", "Attaque depuis votre réseau", "le {d}/{m}/{y} à {hh}:{mm}:{ss} (heure de Paris), l'adresse {ip} a "
                                          "tenté de se connecter à notre serveur SSH."),
    ("es", "Ataque desde su red", "el {d}/{m}/{y} a las {hh}:{mm}:{ss} (hora de Madrid) la IP {ip} intentó "
                                  "acceder a nuestro servidor."),
    ("it", "Attacco dalla vostra rete", "il {d}/{m}/{y} alle ore {hh}:{mm}:{ss} l'indirizzo {ip} ha attaccato il "
                                        "nostro server."),
    ("nl", "Aanval vanaf uw netwerk", "op {d}-{m}-{y} om {hh}:{mm}:{ss} uur (CET) heeft {ip} onze server "
                                      "aangevallen."),
    ("pt", "Ataque a partir da sua rede", "em {d}/{m}/{y} às {hh}:{mm}:{ss} o endereço {ip} atacou o nosso "
                                          "servidor."),
    ("en", "Scan from your customer", "Between {hh}:{mm} and 23:59 UTC on {y}-{m}-{d} the address {ip} scanned "
                                      "our network."),
]


def prose(rnd: random.Random, when: datetime) -> bytes:
    lang, subject, sentence = rnd.choice(PROSE)
    t = when - timedelta(minutes=rnd.randrange(1, 600))
    text = sentence.format(ip=_ip(rnd), d=f"{t.day:02d}", m=f"{t.month:02d}", y=t.year, hh=f"{t.hour:02d}",
                           mm=f"{t.minute:02d}", ss=f"{t.second:02d}")
    body = f"Hello / Hallo / Bonjour,\n\n{text}\n\nRegards\n"
    head = _headers(subject, f"admin@{lang}.example.org", when,
                    "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n")
    return (head + "\n" + body).encode()


GENERATORS = [long_log, long_log, html_notice, prose, prose]


def tagged(raw: bytes, i: int) -> bytes:
    """The message with a header of its own, so its bytes (and store digest) are unique."""
    return f"X-Abuso-Bench: {i}\n".encode() + raw


def messages(n: int, seed: int = 1) -> list[tuple[str, bytes]]:
    """(origin, bytes) of the N messages: each distinct source once before any repeats, generated ones between."""
    rnd = random.Random(seed)
    src = sources()
    when = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
    out = []
    k = 0
    for i in range(n):
        if i % 2:  # every other message is generated; the sources come in turn between them
            gen = GENERATORS[i % len(GENERATORS)]
            out.append((gen.__name__, tagged(gen(rnd, when + timedelta(minutes=i)), i)))
        else:
            path = src[k % len(src)]
            k += 1
            out.append((str(path.relative_to(path.parents[1])), tagged(path.read_bytes(), i)))
    return out


def build(n: int, folder: Path, seed: int = 1) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (_, raw) in enumerate(messages(n, seed)):
        p = folder / f"{i:06d}.eml"
        p.write_bytes(raw)
        paths.append(p)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir", type=Path)
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    paths = build(args.n, args.outdir, args.seed)
    size = sum(p.stat().st_size for p in paths) / 1e6
    print(f"{len(paths)} messages, {size:.1f} MB, in {args.outdir}")


if __name__ == "__main__":
    main()
