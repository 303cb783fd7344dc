"""Keep incidents whose time falls in a window around the report's own Date.

Relative to the report, never to *now*: re-processing an old archive must give
the same answer as processing the mail when it arrived (Mail::Abuse got this wrong).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

from ..durations import parse_duration
from ..model import Incident, Report
from ..options import Option
from .base import Filter


class TimeFilter(Filter):
    """``before``: how long before the report's Date an incident may be (default 30d);
    ``after``: how long after (clock skew, default 1d); ``untimed``: keep or drop
    incidents the report gives no time for (default keep)."""

    name = "time"
    OPTIONS = (
        Option("before", "duration", "30d", help="how long before the report's Date an incident may be"),
        Option("after", "duration", "1d", help="how long after it (clock skew)"),
        Option("untimed", "choice", "keep", choices=("keep", "drop"), help="incidents the report gives no time for"),
    )

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.check_options(self.options)
        self.before = parse_duration(self.setting("before"))
        self.after = parse_duration(self.setting("after"))
        self.keep_untimed = self.setting("untimed") == "keep"

    def reject(self, incident: Incident, report: Report) -> str | None:
        if incident.time is None:
            return None if self.keep_untimed else "no time given (untimed: drop)"
        ref = report.date
        basis = "the report's Date"
        if ref is None:
            ref = report.notes.get("arrival") or datetime.now(timezone.utc)
            basis = "arrival time (the report has no valid Date)"
            if "arrival" not in report.notes:
                basis = "now (the report has no valid Date nor Received header)"
        delta = incident.time - ref  # not ref ± window: that overflows at the ends of the calendar
        if delta < -self.before:
            return f"{incident.time.isoformat()} is more than {_human(self.before)} before {basis}"
        if delta > self.after:
            return f"{incident.time.isoformat()} is more than {_human(self.after)} after {basis}"
        return None


def _human(td: Any) -> str:
    s = int(td.total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s and s % n == 0:
            return f"{s // n}{unit}"
    return f"{s}s"
