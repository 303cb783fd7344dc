"""Occurrences of addresses and their grouping into one incident per (address, time)."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime, timedelta

from ...model import IPAddress
from ...timestamps import Stamp
from .lines import Lazy


@dataclass
class Occurrence:
    """An address seen on a log line, with the line's stamp."""

    ip: IPAddress
    stamp: Stamp | None
    line: str
    hint: str | None  # type from the line or its record
    port: int | None = None
    evidence: str = ""
    #: Was the address labelled as the source ("SRC=", "from", "Source IP:")?
    explicit: bool = True
    #: The type the subject or the whole block names, for when no nearby line does.
    fallback: Lazy | None = None
    #: A log line accuses it: its own line is stamped and names no other source (issue 11 class 4).
    accused: bool = False


Key = tuple[IPAddress, "datetime | None"]


def coarseness(group: list[Occurrence]) -> float:
    """The finest precision among a group's stamps, in seconds."""
    return min(o.stamp.precision for o in group if o.stamp is not None)


def group(occurrences: list[Occurrence]) -> dict[Key, list[Occurrence]]:
    """One group per (ip, time), in order of first occurrence.

    A mention without time of an address whose events have times joins none. A coarse stamp
    folds into a finer one of the same address inside its span: "03:14" into "03:14:07",
    "03:14:07" into snort's "03:14:07.123456" - one event, not two.
    """
    groups: dict[Key, list[Occurrence]] = {}
    timed_ips = {o.ip for o in occurrences if o.stamp is not None}
    for o in occurrences:
        if o.stamp is None and o.ip in timed_ips:
            continue  # a mention ("Source IP: ...") of an address whose events have times
        groups.setdefault((o.ip, o.stamp.time if o.stamp else None), []).append(o)
    _fold(groups)
    return groups


def _fold(groups: dict[Key, list[Occurrence]]) -> None:
    """Fold coarse groups into finer ones, coarsest first; among several finer groups inside a
    span, the first to occur takes it.

    Indexed by address and searched by time: each group looks only at the groups of its address
    inside its span (stamps of one precision are aligned to it, so spans of one precision do not
    overlap). Scanning every group of the address was quadratic: 3,000 timed lines of one address
    took seconds.
    """
    # By position in ``groups`` (the order of first occurrence): an address's hash runs in
    # Python (ipaddress), so each key is hashed once here rather than at every look-up.
    items = list(groups.items())
    timed = [n for n, (key, _) in enumerate(items) if key[1] is not None]
    span = {n: coarseness(items[n][1]) for n in timed}
    by_ip: dict[IPAddress, tuple[list[datetime], list[int]]] = {}
    mine: dict[int, tuple[list[datetime], list[int]]] = {}
    dated: list[tuple[datetime, int]] = []
    for n in timed:
        when = items[n][0][1]
        assert when is not None
        dated.append((when, n))
    for when, n in sorted(dated):  # by time, ties in order of occurrence
        ip = items[n][0][0]
        times, members = mine[n] = by_ip.setdefault(ip, ([], []))
        times.append(when)
        members.append(n)
    alive = [True] * len(items)
    for n in sorted(timed, key=lambda n: -span[n]):
        t = items[n][0][1]
        assert t is not None
        times, members = mine[n]
        if len(members) < 2:
            continue
        s = span[n]
        lo, hi = bisect_left(times, t), bisect_left(times, t + timedelta(seconds=s))
        finer = [m for m in members[lo:hi] if m != n and span[m] < s and alive[m]]
        if finer:
            alive[n] = False
            items[min(finer)][1].extend(groups.pop(items[n][0]))
