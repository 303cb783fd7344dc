"""The run's log: standard :mod:`logging`, one line per message, to stderr, syslog, journald or a file.

``abuso run`` always says problems on stderr (quarantined, will retry); the log is for the record of every
message, what a mail service keeps: origin, Message-ID, incidents, and what each processor did, in words.

    --log stderr|syslog|journald|FILE    where the log goes (default: nowhere unless -v)
    -v / -vv                             more (info: a line per message; debug), -q less
    --log-level LEVEL                    exactly this level
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    import logging
    from typing import Any

    from .model import Report

LOGGER = "abuso"
TARGETS = ("stderr", "syslog", "journald")
LEVELS = ("debug", "info", "warning", "error")
#: logging's levels (its documented values), without importing logging.
DEBUG, INFO, WARNING, ERROR, CRITICAL = 10, 20, 30, 40, 50
_BY_NAME = {"debug": DEBUG, "info": INFO, "warning": WARNING, "error": ERROR, "critical": CRITICAL}

#: journald reads a "<N>" priority prefix on each line of a service's stderr (SyslogLevelPrefix=).
_JOURNAL_PRIORITY = {DEBUG: 7, INFO: 6, WARNING: 4, ERROR: 3, CRITICAL: 2}


def _logging() -> Any:
    """The logging module; its traceback is imported when first used (formatting an exception)."""
    from .lazy import import_deferring

    import_deferring("logging", ("traceback",))
    import logging

    return logging


def level_for(verbose: int = 0, quiet: bool = False, level: str | None = None, target: str | None = None) -> int:
    if level:
        return _BY_NAME[level.lower()]
    if quiet:
        return ERROR
    if verbose >= 2:
        return DEBUG
    if verbose == 1 or (target and target != "stderr"):
        return INFO        # a log file or syslog is for the record of every message
    return WARNING


def _quiet(logging: Any, level: int) -> None:
    """The abuso logger when nothing is to be logged: every record dropped (none reaches logging's last resort)."""
    log = logging.getLogger(LOGGER)
    for old in list(log.handlers):
        log.removeHandler(old)
        old.close()
    log.propagate = False
    log.addHandler(logging.NullHandler())
    log.setLevel(level)


class _WhenImported:
    """Makes the abuso logger quiet if and when something imports logging: a piped message that logs
    nothing does not import it (with threading and string, ~16 M instructions, ~7% of its cost)."""

    def __init__(self, level: int) -> None:
        self.level = level

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "logging":
            return None
        _unhook()
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        loader, level = spec.loader, self.level
        run = getattr(loader, "exec_module", None)
        if run is None:
            return spec

        def exec_module(module: Any) -> None:
            run(module)
            _quiet(module, level)

        loader.exec_module = exec_module
        return spec


def _unhook() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _WhenImported)]


def setup(target: str | None = None, verbose: int = 0, quiet: bool = False, level: str | None = None,
          stream: Any = None) -> logging.Logger | None:
    """Configure the ``abuso`` logger once per process; None when nothing is to be logged (then logging is
    configured when something imports it, not imported for it)."""
    from .errors import UsageError

    if level and level.lower() not in LEVELS:
        raise UsageError(f"--log-level: {level!r} is not one of {', '.join(LEVELS)}")
    lvl = level_for(verbose, quiet, level, target)
    _unhook()
    if target is None and lvl > INFO:
        if "logging" in sys.modules:
            _quiet(sys.modules["logging"], lvl)
        else:
            sys.meta_path.insert(0, _WhenImported(lvl))
        return None
    _logging()  # without its traceback
    import logging

    log = logging.getLogger(LOGGER)
    for old in list(log.handlers):
        log.removeHandler(old)
        old.close()
    log.propagate = False
    target = target or "stderr"
    handler: logging.Handler
    if target == "stderr":
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(logging.Formatter("abuso: %(message)s"))
        handler.addFilter(_not_said)
    elif target == "journald":
        class JournalFormatter(logging.Formatter):
            def format(self, record: logging.LogRecord) -> str:
                return f"<{_JOURNAL_PRIORITY.get(record.levelno, 6)}>{super().format(record)}"

        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(JournalFormatter("%(message)s"))
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


def _not_said(record: Any) -> bool:
    """On stderr, what the run already said there (quarantined, will retry) is not said twice."""
    return not getattr(record, "said", False)


def _hooked() -> bool:
    return any(isinstance(f, _WhenImported) for f in sys.meta_path)


def enabled(level: int, name: str = LOGGER) -> bool:
    """Whether logger ``name`` takes records of ``level``; False without importing logging when setup()
    left it quiet until imported."""
    logging = sys.modules.get("logging")
    if logging is None:
        if _hooked():
            return False
        logging = _logging()
    return bool(logging.getLogger(name).isEnabledFor(level))


class Logger:
    """logging.getLogger(name), imported only when a record is to go somewhere (see :func:`enabled`)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        if enabled(level, self.name):
            _logging().getLogger(self.name).log(level, msg, *args, **kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(INFO, msg, *args, **kwargs)


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
