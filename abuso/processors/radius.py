"""``radius``: who held the incident's address at the incident's time, from RADIUS accounting logs.

    processors:
      - radius: {detail: /var/log/freeradius/radacct, index: ~/abuso/radius.idx}

Options: ``detail`` (file or folder tree, or a list of them; plain or gzip),
``index`` (the SQLite session index, default ``~/abuso/radius.idx``),
``pattern`` (file names taken from folders, default ``detail*`` - not
``auth-detail-*``), ``zone`` (zone of the date lines of records without a
``Timestamp`` attribute, default ``local`` as FreeRADIUS writes them),
``slack`` (tolerance around a session, default 0), ``grace`` (how long a session
with no Stop is believed to last after it was last seen, default 1h: make it at
least the NASes' interim-update interval; a later session on the same address
ends it sooner),
``lock_timeout`` (wait for another process indexing, default 10m),
``budget`` (the most time one message may spend indexing, default 20s, 0 for no
limit: keep it under ``defaults.timeout``; past it the message is retried later
and the next run goes on where this one stopped) and ``refresh`` (re-scan the
logs once per run, default true).

The logs are indexed once into ``index`` and refreshed once per run (new
bytes only), never read per report; ``abuso radius -c CONFIG`` from cron keeps
it warm so that a piped message never pays for a first build. A match needs
the incident's time inside a session's window - Start (or Stop/Interim time
minus Acct-Session-Time) to Stop, or to last seen + ``grace`` while there is no
Stop, cut short by the NAS's Accounting-On/Off or by the next session on the
address; sessions of two different users covering it are reported as
ambiguous instead of picking one. Results: ``user`` and ``radius`` on the
incident, ``notes["radius"]`` with a reason for every incident.
"""

from __future__ import annotations

import time
from datetime import timezone
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import TransientError
from ..model import Report
from ..options import Option
from .base import Processor

if TYPE_CHECKING:  # imported when first needed: a message without incidents never opens the index
    from ..radius.index import RadiusIndex, Session

#: Accounting records reach the log up to this late (Acct-Delay-Time, buffering): an incident newer
#: than the last refresh minus this may have a session the index has not read yet.
RECENT = 600.0


def _sources(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _check_zone(value: str) -> None:
    from ..radius.detail import zone_converter

    zone_converter(value)  # ValueError names an unknown zone


OPTIONS = (
    Option("detail", "files", required=True, help="where the RADIUS detail logs are (a file, a folder or a list)"),
    Option("index", "output", "~/abuso/radius.idx", help="the SQLite session index"),
    Option("pattern", "str", "detail*", help="file names taken from folders"),
    Option("zone", "str", "local", check=_check_zone, help="zone of date lines without a Timestamp"),
    Option("slack", "duration", 0, help="tolerance around a session"),
    Option("grace", "duration", "1h", help="how long a session with no Stop lasts after it was last seen"),
    Option("lock_timeout", "duration", "10m", help="wait for another process indexing"),
    Option("budget", "duration", "20s", help="the most time one message may spend indexing (0: no limit)"),
    Option("refresh", "bool", True, help="re-scan the logs once per run"),
)
DEFAULTS = {o.name: o.default for o in OPTIONS if o.default is not None}


class RadiusProcessor(Processor):
    """Adds ``user`` and ``radius`` to incidents whose (ip, time) falls in one user's session."""

    name = "radius"
    OPTIONS = OPTIONS

    def __init__(self, options: Mapping[str, Any] | None = None, base: Any = None) -> None:
        super().__init__(options, base)
        from ..durations import parse_duration

        self.check_options(self.options)
        opts = {**DEFAULTS, **self.options}
        self.sources = [self.path(p) for p in _sources(opts["detail"])]
        self.index_path = self.path(opts["index"])
        self.pattern = opts["pattern"]
        self.zone = opts["zone"]
        self.slack = parse_duration(opts["slack"]).total_seconds()
        self.grace = parse_duration(opts["grace"]).total_seconds()
        self.lock_timeout = parse_duration(opts["lock_timeout"]).total_seconds()
        #: Seconds one call may spend refreshing (0: no limit, as ``abuso radius`` from cron).
        self.budget = parse_duration(opts["budget"]).total_seconds()
        self.do_refresh = opts["refresh"]
        self.index: RadiusIndex | None = None
        #: What the refresh of this run did (RefreshStats.as_dict()), or why it did not happen.
        self.refresh_info: dict[str, Any] | None = None
        self._refreshed_at = 0.0
        self._untold = False

    def ready(self, newest: float | None) -> RadiusIndex:
        """The open index, refreshed at the first report with incidents.

        A long run (a daemon reading IMAP) refreshes again only when an incident
        is so recent that its session may have been logged after the last
        refresh - at most once a minute.
        """
        if self.index is not None:
            if not (self.do_refresh and newest is not None and newest >= self._refreshed_at - RECENT
                    and time.time() - self._refreshed_at >= 60):
                return self.index
            self.index.close()
            self.index = None
        import sqlite3

        from ..radius.index import IndexBusy, IndexNotReady, RadiusIndex

        index = RadiusIndex(self.index_path)
        if self.do_refresh:
            self._refreshed_at = time.time()
            deadline = time.monotonic() + self.budget if self.budget else None
            try:
                stats = index.refresh(self.sources, self.pattern, self.zone, self.lock_timeout, deadline)
                self.refresh_info = stats.as_dict()
            except (IndexBusy, IndexNotReady) as e:
                raise TransientError(f"radius: {e}")
            except FileNotFoundError as e:
                if not self.index_path.exists():
                    raise TransientError(f"radius: detail logs not found ({e.filename}) and no index yet")
                self.refresh_info = {"stale": f"index not refreshed: {e.filename} not found"}
            except sqlite3.DatabaseError as e:
                raise TransientError(f"radius: index {self.index_path}: {e}")
        try:
            index.open()
        except FileNotFoundError:
            raise TransientError(f"radius: no index at {self.index_path} (refresh is off)")
        except (sqlite3.DatabaseError, ValueError) as e:  # the index's fault, not the message's: retry later
            raise TransientError(f"radius: index {self.index_path}: {e}")
        self.index = index
        self._untold = self.refresh_info is not None
        return index

    def process(self, report: Report) -> None:
        if not report.incidents:
            return
        import sqlite3

        times = [inc.time.timestamp() for inc in report.incidents if inc.time is not None]
        index = self.ready(max(times)) if times else None  # no time, no question to ask the logs
        entries = []
        counts = {"matched": 0, "ambiguous": 0, "unmatched": 0}
        for i, inc in enumerate(report.incidents):
            entry: dict[str, Any] = {"ip": str(inc.ip), "time": inc.time.isoformat() if inc.time else None}
            entries.append(entry)
            if inc.time is None:
                counts["unmatched"] += 1
                entry.update(result="no-time", reason="the incident has no time, so who held the address is unknown")
                continue
            assert index is not None  # this incident has a time, so ``times`` was not empty
            try:
                res = index.lookup(inc.ip, inc.time.timestamp(), self.slack, self.grace)
            except sqlite3.DatabaseError as e:
                raise TransientError(f"radius: index {self.index_path}: {e}")
            entry["reason"] = res.reason
            if res.status == "matched":
                counts["matched"] += 1
                s = res.sessions[-1]
                entry.update(result="matched", user=s.user)
                report.incidents[i] = inc.with_extra(user=s.user, radius=self.describe(index, s))
            elif res.status == "ambiguous":
                counts["ambiguous"] += 1
                users = res.users
                entry.update(result="ambiguous", users=users)
                report.incidents[i] = inc.with_extra(user=None, radius={
                    "ambiguous": users, "sessions": [self.describe(index, s) for s in res.sessions]})
            else:
                counts["unmatched"] += 1
                entry["result"] = "unmatched"
        note: dict[str, Any] = {**counts, "incidents": entries, "index": str(self.index_path)}
        if self._untold:  # said once, with the report that caused the refresh
            note["refresh"] = self.refresh_info
            self._untold = False
        report.notes[self.name] = note

    # -- for `abuso radius` (commands use these, not the processor's insides) --

    @classmethod
    def for_config(cls, config: Any) -> RadiusProcessor:
        """The config's radius processor, set up for cron or a person: a first build takes what it needs."""
        from ..errors import ConfigError

        stages = [s for s in config.processors if s.name == "radius"]
        if not stages:
            raise ConfigError("no radius processor configured", config.file, key="processors")
        proc = cls(stages[0].options, config.base)
        proc.budget = 0
        return proc

    def refresh(self) -> dict[str, Any]:
        """Bring the index up to date: {"index": path, "refresh": what was read, or None}."""
        self.ready(None)
        return {"index": str(self.index_path), "refresh": self.refresh_info}

    def who(self, ip: Any, when: Any) -> dict[str, Any]:
        """Who held ``ip`` at ``when`` (an aware datetime): result, users, reason and the sessions."""
        index = self.ready(None)
        res = index.lookup(ip, when.timestamp(), self.slack, self.grace)
        return {"ip": str(ip), "time": when.astimezone(timezone.utc).isoformat(), "result": res.status,
                "users": res.users, "reason": res.reason, "sessions": [self.describe(index, s) for s in res.sessions]}

    @staticmethod
    def describe(index: RadiusIndex, s: Session) -> dict[str, Any]:
        from ..radius.detail import epoch_to_iso

        return {"user": s.user, "session": s.session, "nas": s.nas, "start": epoch_to_iso(s.start),
                "stop": epoch_to_iso(s.stop), "last_seen": epoch_to_iso(s.last),
                **({"stop_cause": s.cause} if s.cause else {}), "networks": index.networks(s)}

    def close(self) -> None:
        if self.index is not None:
            self.index.close()
            self.index = None

