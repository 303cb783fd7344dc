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
    order = {k: n for n, k in enumerate(groups)}
    span = {k: coarseness(g) for k, g in groups.items() if k[1] is not None}
    by_ip: dict[IPAddress, tuple[list[datetime], list[Key]]] = {}
    timed = [(ip, when) for ip, when in span if when is not None]  # every key of ``span``: it has a time
    for ip, when in sorted(timed, key=lambda k: k[1]):
        times, keys = by_ip.setdefault(ip, ([], []))
        times.append(when)
        keys.append((ip, when))
    for key in sorted(span, key=lambda k: -span[k]):
        ip, t = key
        assert t is not None
        times, keys = by_ip[ip]
        if len(keys) < 2:
            continue
        s = span[key]
        lo, hi = bisect_left(times, t), bisect_left(times, t + timedelta(seconds=s))
        finer = [k for k in keys[lo:hi] if k != key and span[k] < s and k in groups]
        if finer:
            groups[min(finer, key=order.__getitem__)].extend(groups.pop(key))
