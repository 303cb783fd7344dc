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
    return {(g[0].ip, g[0].stamp.time if g[0].stamp else None): g for g in groups(occurrences)}


def groups(occurrences: list[Occurrence]) -> list[list[Occurrence]]:
    """What :func:`group` gives, as the list of its groups: a group's (ip, time) is its first
    occurrence's (those folded into it come after its own).

    Addresses are keyed by :func:`~abuso.model.address_key`, each once: an ``ipaddress`` object
    hashes in Python, and a long log has tens of thousands of occurrences.
    """
    keys = []
    timed_ips = set()
    for o in occurrences:
        ip = o.ip
        key = ip._ip if ip._version == 4 else (ip._ip, ip._scope_id)  # type: ignore[union-attr]  # address_key
        keys.append(key)
        if o.stamp is not None:
            timed_ips.add(key)
    index: dict[tuple[object, datetime | None], int] = {}
    members: list[list[Occurrence]] = []
    where: list[tuple[object, datetime | None]] = []
    span: list[float] = []  # a timed group's finest precision (coarseness); 0 for untimed ones
    for o, key in zip(occurrences, keys, strict=True):
        stamp = o.stamp
        if stamp is None:
            if key in timed_ips:
                continue  # a mention ("Source IP: ...") of an address whose events have times
            at: tuple[object, datetime | None] = (key, None)
            precision = 0.0
        else:
            at = (key, stamp.time)
            precision = stamp.precision
        n = index.get(at)
        if n is None:
            index[at] = len(members)
            members.append([o])
            where.append(at)
            span.append(precision)
        else:
            members[n].append(o)
            if precision < span[n]:
                span[n] = precision
    return _fold(members, where, span)


def _fold(members: list[list[Occurrence]], where: list[tuple[object, datetime | None]],
          span: list[float]) -> list[list[Occurrence]]:
    """Fold coarse groups into finer ones, coarsest first; among several finer groups inside a
    span, the first to occur takes it. Groups are by position (order of first occurrence), each
    at ``where`` (address key, time) with ``span`` its coarseness.

    Indexed by address and searched by time: each group looks only at the groups of its address
    inside its span (stamps of one precision are aligned to it, so spans of one precision do not
    overlap). Scanning every group of the address was quadratic: 3,000 timed lines of one address
    took seconds.
    """
    timed = [n for n, at in enumerate(where) if at[1] is not None]
    if len({span[n] for n in timed}) < 2:
        return members  # one precision: no group is finer than another, none folds
    by_ip: dict[object, tuple[list[datetime], list[int]]] = {}
    mine: dict[int, tuple[list[datetime], list[int]]] = {}
    dated: list[tuple[datetime, int]] = []
    for n in timed:
        when = where[n][1]
        assert when is not None
        dated.append((when, n))
    for when, n in sorted(dated):  # by time, ties in order of occurrence
        times, positions = mine[n] = by_ip.setdefault(where[n][0], ([], []))
        times.append(when)
        positions.append(n)
    alive = [True] * len(members)
    for n in sorted(timed, key=lambda n: -span[n]):
        t = where[n][1]
        assert t is not None
        times, positions = mine[n]
        if len(positions) < 2:
            continue
        s = span[n]
        lo, hi = bisect_left(times, t), bisect_left(times, t + timedelta(seconds=s))
        finer = [m for m in positions[lo:hi] if m != n and span[m] < s and alive[m]]
        if finer:
            alive[n] = False
            members[min(finer)].extend(members[n])
    return [g for g, live in zip(members, alive, strict=True) if live]
