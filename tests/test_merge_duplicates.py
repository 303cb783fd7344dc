"""merge_duplicates keys addresses by address_key: it must merge exactly as the plain reading on ipaddress objects."""

from __future__ import annotations

import ipaddress
import random
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from abuso.model import Incident, _restates, merge_duplicates

T0 = datetime(2026, 11, 22, 3, 14, tzinfo=timezone.utc)


def _plain(incidents, fallback=(), restated=()):
    """merge_duplicates as it read before addresses were keyed (ipaddress objects in every dict)."""
    weak = set(fallback)
    strong: dict = {}
    incidents = list(incidents)
    if weak:
        timed: dict = {}
        for inc in incidents:
            if inc.parser in weak and inc.time is not None:
                first = timed.get(inc.ip)
                if first is None or inc.time < first.time:
                    timed[inc.ip] = inc
        out = []
        for inc in incidents:
            donor = timed.get(inc.ip) if inc.time is None and inc.parser not in weak else None
            if donor is not None:
                inc = replace(inc, time=donor.time, zone=donor.zone, port=inc.port if inc.port is not None
                              else donor.port, extra={**inc.extra, "time_from": donor.parser})
            out.append(inc)
        incidents = out
        texts = [" ".join(t.split()) for t in restated if t and t.strip()]
        if texts:
            reported = {i.ip for i in incidents if i.parser not in weak}
            incidents = [i for i in incidents
                         if i.parser not in weak or i.ip in reported or not _restates(i.evidence, texts)]
        for inc in incidents:
            if inc.parser not in weak:
                strong.setdefault(inc.ip, []).append(inc)
    seen: dict = {}
    for inc in incidents:
        if inc.parser in weak and inc.ip in strong and inc.key not in seen:
            same = next((s.key for s in strong[inc.ip] if s.time == inc.time), None)
            if same is not None and same in seen and inc.parser not in seen[same].parser.split("+"):
                seen[same] = replace(seen[same], parser=f"{seen[same].parser}+{inc.parser}")
            continue
        first = seen.get(inc.key)
        if first is None:
            seen[inc.key] = inc
        elif inc.parser not in first.parser.split("+"):
            seen[inc.key] = replace(first, parser=f"{first.parser}+{inc.parser}")
    typed: dict = {}
    for key, inc in seen.items():
        if inc.type != "undetermined":
            typed.setdefault((inc.ip, inc.time), key)
    for key in [k for k, inc in seen.items() if inc.type == "undetermined" and (inc.ip, inc.time) in typed]:
        vague, into = seen.pop(key), typed[(key[0], key[2])]
        if vague.parser not in seen[into].parser.split("+"):
            seen[into] = replace(seen[into], parser=f"{seen[into].parser}+{vague.parser}")
    return list(seen.values())


def _shown(incidents):
    return [(str(i.ip), i.type, i.time, i.parser, i.zone, i.port, i.evidence, dict(i.extra)) for i in incidents]


def test_merges_as_the_plain_reading_on_random_reports():
    rnd = random.Random(5)
    ips = ["192.0.2.1", "0.0.0.1", "::1", "fe80::1", "fe80::1%eth0", "2001:db8::1"]
    times = [None, T0, T0 + timedelta(seconds=1), T0.astimezone(timezone(timedelta(hours=2)))]
    for _ in range(400):
        found = []
        for _ in range(rnd.randrange(0, 30)):
            when = rnd.choice(times)
            found.append(Incident(ipaddress.ip_address(rnd.choice(ips)),
                                  rnd.choice(["spam", "undetermined", "scanner"]), when,
                                  rnd.choice(["log", "arf", "csv", "log", "received"]),
                                  "explicit" if when else "none", rnd.choice([None, 25]),
                                  rnd.choice(["Spam from 192.0.2.1", "other line", ""])))
        fallback = rnd.choice([(), ("log",), ("log", "received")])
        restated = rnd.choice([(), ("Spam from 192.0.2.1 at noon",)])
        assert _shown(merge_duplicates(found, fallback, restated)) == _shown(_plain(found, fallback, restated))
