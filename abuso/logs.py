"""The run's log: standard :mod:`logging`, one line per message, to stderr, syslog, journald or a file.

``abuso run`` always says problems on stderr (quarantined, will retry); the log is for the record of every
message, what a mail service keeps: origin, Message-ID, incidents, and what each processor did, in words.

    --log stderr|syslog|journald|FILE    where the log goes (default: nowhere unless -v)
    -v / -vv                             more (info: a line per message; debug), -q less
    --log-level LEVEL                    exactly this level
"""

from __future__ import annotations

import logging
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any

    from .model import Report

LOGGER = "abuso"
TARGETS = ("stderr", "syslog", "journald")
LEVELS = ("debug", "info", "warning", "error")

#: journald reads a "<N>" priority prefix on each line of a service's stderr (SyslogLevelPrefix=).
_JOURNAL_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"<{_JOURNAL_PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


class _Said(logging.Filter):
    """On stderr, what the run already said there (quarantined, will retry) is not said twice."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "said", False)


def level_for(verbose: int = 0, quiet: bool = False, level: str | None = None, target: str | None = None) -> int:
    if level:
        return getattr(logging, level.upper())
    if quiet:
        return logging.ERROR
    if verbose >= 2:
        return logging.DEBUG
    if verbose == 1 or (target and target != "stderr"):
        return logging.INFO        # a log file or syslog is for the record of every message
    return logging.WARNING


def setup(target: str | None = None, verbose: int = 0, quiet: bool = False, level: str | None = None,
          stream: Any = None) -> logging.Logger | None:
    """Configure the ``abuso`` logger once per process; None when nothing is to be logged."""
    from .errors import UsageError

    log = logging.getLogger(LOGGER)
    for old in list(log.handlers):
        log.removeHandler(old)
        old.close()
    log.propagate = False
    if level and level.lower() not in LEVELS:
        raise UsageError(f"--log-level: {level!r} is not one of {', '.join(LEVELS)}")
    lvl = level_for(verbose, quiet, level, target)
    if target is None and lvl > logging.INFO:
        log.addHandler(logging.NullHandler())
        log.setLevel(lvl)
        return None
    target = target or "stderr"
    handler: logging.Handler
    if target == "stderr":
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(logging.Formatter("abuso: %(message)s"))
        handler.addFilter(_Said())
    elif target == "journald":
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(_JournalFormatter("%(message)s"))
    elif target == "syslog":
        from logging.handlers import SysLogHandler

        try:
            handler = SysLogHandler(address="/dev/log", facility=SysLogHandler.LOG_MAIL)
        except OSError as e:
            raise UsageError(f"--log syslog: cannot reach the syslog socket /dev/log: {e.strerror or e}")
        handler.setFormatter(logging.Formatter("abuso[%(process)d]: %(message)s"))
    else:
        from logging.handlers import WatchedFileHandler  # follows logrotate's renames

        try:
            handler = WatchedFileHandler(target, encoding="utf-8")
        except OSError as e:
            raise UsageError(f"--log {target}: {e.strerror or e}")
        handler.setFormatter(logging.Formatter("%(asctime)s abuso[%(process)d] %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(lvl)
    return log


def _note(note: Any) -> str:
    """A processor's note in a few words: a Note says itself; a dict gives its plain fields."""
    from .processors.base import Note

    if isinstance(note, Note) or isinstance(note, str):
        return str(note)
    if isinstance(note, dict):
        parts = []
        for k, v in note.items():
            if isinstance(v, (list, tuple)):
                parts.append(f"{k}={len(v)}")
            elif isinstance(v, (str, int, float, bool)) or v is None:
                parts.append(f"{k}={v}")
        return ", ".join(parts)
    return str(note)


def describe(report: Report) -> str:
    """The log line of one processed message (after its origin): id, incidents, what each processor did."""
    ips = sorted({str(i.ip) for i in report.incidents})
    shown = ", ".join(ips[:5]) + (f" and {len(ips) - 5} more" if len(ips) > 5 else "")
    parts = [f"message-id {report.message_id or '(none)'}",
             f"{len(report.incidents)} incident{'s' * (len(report.incidents) != 1)}" + (f" ({shown})" if ips else "")]
    for name, note in report.notes.items():
        if name == "explain":
            continue
        parts.append(f"{name}: {_note(note)}")
    return oneline("; ".join(parts))


def oneline(text: str, limit: int = 2000) -> str:
    """Hostile mail must not forge log lines: control characters shown escaped, the length bounded."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return text if len(text) <= limit else text[:limit] + "…"
