#!/usr/bin/env python3
"""dateparser calls and per-message cost on reports whose dates are written in prose (issue 8.1).

Builds a corpus in memory: reports in German, French, Spanish, Italian, Dutch, Portuguese and English
whose times are prose ("am 12.11.2026 um 23:14:05 Uhr (MEZ)", "el 12/11/2026 a las 21:05:33
(GMT-3)", "on 2026-11-12 between 10:00 and 10:30 UTC"), reports whose stamps no reader can read
(a month name of no language, clock times without a date), and the same reports with no stamp at
all. Each source tree (this one, and ``--baseline DIR``, e.g. a worktree of main before the change)
runs in its own fresh process - so dateparser's first load is counted, as a piped message pays it -
and the figures are printed with their ratios, measured in the same run.

    python bench/prose_dates.py [--baseline /tmp/abuso-before] [-n 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_HEAD = ("From: {frm}\nTo: abuse@example.net\nSubject: {subject}\nDate: Fri, 13 Nov 2026 09:00:00 +0000\n"
         "Message-ID: <b{n}@bench.example>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
         "Content-Transfer-Encoding: 8bit\n\n")

READABLE = [
    ("noc@netz.example", "Missbrauch aus Ihrem Netz",
     "Sehr geehrte Damen und Herren,\n\nvon der IP-Adresse {ip} wurde am {d:02d}.11.2026 um 23:14:{s:02d} Uhr (MEZ) "
     "ein SMTP-AUTH-Angriff auf unseren Mailserver durchgeführt.\n\nMit freundlichen Grüßen\n"),
    ("seg@proveedor.example", "Reporte de abuso",
     "Estimados,\n\nDetectamos intentos de acceso por fuerza bruta al servicio SSH desde la dirección {ip} el "
     "{d:02d}/11/2026 a las 21:05:{s:02d} (GMT-3).\n\nSaludos cordiales,\n"),
    ("csirt@univ.example", "Signalement d'abus",
     "Bonjour,\n\nL'adresse {ip} a effectué un scan de ports sur notre réseau le {d:02d}/11/2026 à 14h{s:02d} "
     "(heure de Paris).\n\nCordialement,\n"),
    ("pm@azienda.example", "Segnalazione spam",
     "Buongiorno,\n\nl'indirizzo {ip} ha inviato spam ai nostri utenti il {d:02d}/11/2026 alle ore 16:20:{s:02d} "
     "(ora italiana).\n\nCordiali saluti\n"),
    ("beheer@hosting.example", "Misbruik vanuit uw netwerk",
     "Geachte heer/mevrouw,\n\nOp {d:02d}-11-2026 om 08:15:{s:02d} (CET) heeft {ip} een poortscan uitgevoerd op "
     "onze servers.\n\nMet vriendelijke groet,\n"),
    ("seg@provedor.example", "Notificacao de abuso",
     "Prezados,\n\nO endereço {ip} enviou spam para nossos clientes em {d} de novembro de 2026 às 18:45:{s:02d} "
     "(horário de Brasília).\n\nAtenciosamente,\n"),
    ("noc@isp.example", "Attacks from your network",
     "Hello,\n\nWe saw SSH brute force from {ip} on 2026-11-{d:02d} between 10:{s:02d} and 10:59 UTC.\n\nRegards,\n"),
    ("watch@monitor.example", "Abuse from {ip} at 2026-11-{d:02d}T03:14:{s:02d} UTC", "Thanks.\n"),
]
#: Stamps no reader can read: a month of no language, clock times without any date.
UNREADABLE = [
    ("noc@netz.example", "Missbrauch aus Ihrem Netz",
     "Sehr geehrte Damen und Herren,\n\nvon der IP-Adresse {ip} wurde am {d}. Brumaire 2026 um 23:14:{s:02d} Uhr "
     "ein Angriff auf unseren Mailserver durchgeführt.\nDer Angriff dauerte bis 23:59 Uhr.\n\n"
     "Mit freundlichen Grüßen\n"),
    ("csirt@univ.example", "Signalement d'abus",
     "Bonjour,\n\nL'adresse {ip} a effectué un scan de ports le {d} vendémiaire an 235 vers 14:{s:02d}, puis "
     "de nouveau vers 15:10.\n\nCordialement,\n"),
    ("noc@isp.example", "Attacks from your network",
     "Hello,\n\nWe saw SSH brute force from {ip} starting at 10:{s:02d} and again at 11:20, local time.\n\n"
     "Regards,\n"),
]
#: The same reports with no stamp at all.
NONE = [
    (frm, subj.replace(" at 2026-11-{d:02d}T03:14:{s:02d} UTC", ""),
     "Hello,\n\nPlease look into {ip}; it attacked our servers.\n\nRegards,\n")
    for frm, subj, _ in READABLE[:3]
]


def corpus(n: int) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for group, templates in (("readable", READABLE), ("unreadable", UNREADABLE), ("none", NONE)):
        msgs = []
        for i in range(n):
            frm, subject, body = templates[i % len(templates)]
            fill = {"ip": f"198.51.{100 + i // 250}.{i % 250 + 1}", "d": i % 28 + 1, "s": i % 60}
            msgs.append((_HEAD.format(frm=frm, subject=subject.format(**fill), n=i) + body.format(**fill)).encode())
        out[group] = msgs
    return out


_CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from abuso import timestamps
from abuso.pipeline import Pipeline
data = json.load(sys.stdin)
p = Pipeline.from_config({})
out = {}
for group in data["order"]:
    msgs = [m.encode("utf-8", "surrogateescape") for m in data["groups"][group]]
    calls, times, found = timestamps.FALLBACK_CALLS[0], [], 0
    for raw in msgs:
        t = time.perf_counter()
        r = p.analyse(raw, "bench")
        times.append(time.perf_counter() - t)
        found += sum(1 for i in r.incidents if i.time is not None)
    out[group] = {"calls": timestamps.FALLBACK_CALLS[0] - calls, "times": times, "timed": found}
json.dump(out, sys.stdout)
"""


def run(tree: Path, groups: dict[str, list[bytes]], order: list[str]) -> dict:
    text = {g: [m.decode("utf-8", "surrogateescape") for m in ms] for g, ms in groups.items()}
    payload = json.dumps({"order": order, "groups": text})
    res = subprocess.run([sys.executable, "-c", _CHILD, str(tree)], input=payload, capture_output=True, text=True,
                         check=True)
    return json.loads(res.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", type=Path, help="another source tree (a worktree of main before the change)")
    ap.add_argument("-n", type=int, default=24, help="messages per group")
    args = ap.parse_args()
    groups = corpus(args.n)
    trees = [("this", ROOT)] + ([("baseline", args.baseline)] if args.baseline else [])
    # Each order in a fresh process: "none" first shows a message without stamps; then the others pay
    # dateparser's first load where they reach it, as a piped message would.
    results = {name: run(tree, groups, ["none", "readable", "unreadable"]) for name, tree in trees}
    print(f"{args.n} messages per group; ms per message: median / mean / max; dateparser calls; timed incidents")
    for name, res in results.items():
        for group in ("none", "readable", "unreadable"):
            r = res[group]
            ms = [t * 1000 for t in r["times"]]
            print(f"  {name:8} {group:10} {statistics.median(ms):7.2f} / {statistics.mean(ms):7.2f} / {max(ms):7.1f}"
                  f"   calls {r['calls']:3}   timed {r['timed']}")
    this = results["this"]
    none_mean = statistics.mean(this["none"]["times"])
    for group in ("readable", "unreadable"):
        print(f"this: {group} / none (mean per message): {statistics.mean(this[group]['times']) / none_mean:.2f}x")
    if "baseline" in results:
        base = results["baseline"]
        for group in ("readable", "unreadable"):
            b, t = statistics.mean(base[group]["times"]), statistics.mean(this[group]["times"])
            print(f"baseline/this ({group}, mean per message): {b / t:.1f}x; dateparser calls "
                  f"{base[group]['calls']} -> {this[group]['calls']}")


if __name__ == "__main__":
    main()
