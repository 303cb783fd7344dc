"""Trends and chronic cases over the store: what ``abuso stats`` counts.

The counting is done by the index's database (GROUP BY over the same criteria as ``abuso query``, so the
counts agree); Python only merges reporters (one address, many display names), folds days into ISO weeks and
buckets the time from incident to report.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from email.utils import parseaddr
from functools import lru_cache
from typing import Any

#: What ``--by`` can group by.
GROUPS = ("day", "week", "type", "customer", "asn", "reporter", "ip")

#: Time from incident to report, in buckets a desk talks about.
DELAYS = ((3600, "< 1 hour"), (86400, "1 hour - 1 day"), (7 * 86400, "1 - 7 days"), (30 * 86400, "7 - 30 days"))
LATE = "> 30 days"
NONE = {"customer": "(none)", "asn": "(none)", "day": "(no time)", "week": "(no time)", "ip": "-", "type": "-"}


@dataclass
class Chronic:
    """An address reported at least N times in the last DAYS days."""

    ip: str
    reports: int
    incidents: int
    first: str | None
    last: str | None
    customer: str | None
    user: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Stats:
    """Counts of stored incidents and reports."""

    incidents: int = 0
    reports: int = 0
    by: dict[str, Counter] = field(default_factory=dict)
    #: day -> type -> count, for the stacked chart.
    daily_types: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    delays: Counter = field(default_factory=Counter)
    chronic: list[Chronic] = field(default_factory=list)

    def top(self, group: str, n: int | None) -> list[tuple[str, int]]:
        """Rows of one grouping: days and weeks in time order, the rest largest first (ties by name)."""
        counts = self.by.get(group, Counter())
        if group in ("day", "week"):
            rows = sorted(counts.items())
            return rows[-n:] if n else rows
        rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return rows[:n] if n else rows

    def as_dict(self, group: str, n: int | None) -> dict[str, Any]:
        return {"incidents": self.incidents, "reports": self.reports, "by": group,
                "rows": [{group: k, "incidents": v} for k, v in self.top(group, n)],
                "delays": {label: self.delays.get(label, 0) for label in delay_labels()},
                "chronic": [c.as_dict() for c in self.chronic]}


def delay_labels() -> list[str]:
    return [label for _, label in DELAYS] + [LATE, "unknown"]


def _time(value: Any) -> datetime | None:
    """The index's fixed-width UTC text (``2026-11-22T02:14:07.000000Z``) as a datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = str(value)
    try:
        return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        return None


def _short(value: Any) -> str | None:
    t = _time(value)
    return t.strftime("%Y-%m-%d %H:%M:%S") if t else None


def week(day: str) -> str:
    iso = date.fromisoformat(day).isocalendar()
    return f"{iso[0]}-W{iso[1]:02d}"


@lru_cache(maxsize=4096)      # a desk has few reporters and many reports from each
def reporter(sender: str | None) -> str:
    """The reporter's address, lower-cased (the display name varies between reports)."""
    if not sender:
        return "(unknown)"
    name, address = parseaddr(sender)
    return (address or name or sender).strip().lower() or "(unknown)"


def delay(incident_time: Any, report_date: Any) -> str:
    start, end = _time(incident_time), _time(report_date)
    if start is None or end is None:
        return "unknown"
    seconds = (end - start).total_seconds()
    for bound, label in DELAYS:
        if seconds < bound:
            return label
    return LATE


def gather(index: Any, groups: tuple[str, ...], *, delays: bool = False, daily_types: bool = False,
           chronic: tuple[int, int] | None = None, end: datetime | None = None, **criteria: Any) -> Stats:
    """Ask the index (:class:`abuso.storage.index.Index`) for what is wanted, nothing more.

    ``chronic=(N, DAYS)``: addresses in at least N distinct reports with incidents in the DAYS days before
    ``end`` (default: ``until``, else now), narrowed by the other criteria.
    """
    stats = Stats()
    stats.incidents, stats.reports = index.totals(**criteria)
    for group in groups:
        counter: Counter = Counter()
        if group == "week":
            for day, n in index.counts(["day"], **criteria):
                counter[week(day) if day else NONE["week"]] += n
        elif group == "reporter":
            for sender, n in index.counts(["sender"], **criteria):
                counter[reporter(sender)] += n
        elif group == "asn":
            for asn, n in index.counts(["asn"], **criteria):
                counter[f"AS{asn}" if asn not in (None, "") else NONE["asn"]] += n
        else:
            for value, n in index.counts([group], **criteria):
                counter[str(value) if value not in (None, "") else NONE.get(group, "-")] += n
        stats.by[group] = counter
    if daily_types:
        for day, type_, n in index.counts(["day", "type"], **criteria):
            stats.daily_types[day or NONE["day"]][type_] += n
    if delays:
        for t, d in index.times(**criteria):
            stats.delays[delay(t, d)] += 1
    if chronic:
        end = end or criteria.get("until") or datetime.now(timezone.utc)
        window = {**criteria, "since": max(end - timedelta(days=chronic[1]), criteria.get("since") or end.min
                                           .replace(tzinfo=timezone.utc)), "until": end}
        rows = index.repeated(chronic[0], **window)
        names = index.latest_names([r[0] for r in rows], **window)
        stats.chronic = sorted(
            (Chronic(ip, int(reports), int(n), _short(first), _short(last), *names.get(ip, (None, None)))
             for ip, reports, n, first, last in rows),
            key=lambda c: (-c.reports, -c.incidents, c.ip))
    return stats
