"""Where stage names in the config come from: built-ins, then entry points.

Built-ins are named by "module:Class" strings so that nothing is imported until
a config asks for it (start-up time is paid by every piped message).
Third-party stages register in the entry-point groups ``abuso.parsers``,
``abuso.readers``, ``abuso.filters`` and ``abuso.processors``.
"""

from __future__ import annotations

import importlib
from typing import Any

BUILTINS: dict[str, dict[str, str]] = {
    "parsers": {
        "log": "abuso.parsers.log:LogParser",
        "received": "abuso.parsers.received:ReceivedParser",
        "spamcop": "abuso.parsers.spamcop:SpamCopParser",
        "arf": "abuso.parsers.arf:ArfParser",
        "xarf": "abuso.parsers.xarf:XarfParser",
        "csv": "abuso.parsers.csv:CsvParser",
        "acns": "abuso.parsers.acns:AcnsParser",
    },
    "filters": {
        "ip": "abuso.filters.ip:IpFilter",
        "time": "abuso.filters.time:TimeFilter",
    },
    "processors": {
        "store": "abuso.processors.store:StoreProcessor",
        "table": "abuso.processors.table:TableProcessor",
        "radius": "abuso.processors.radius:RadiusProcessor",
        "mailer": "abuso.processors.mailer:MailerProcessor",
        "explain": "abuso.processors.explain:ExplainProcessor",
        "asn": "abuso.processors.asn:AsnProcessor",
    },
    "readers": {
        "stdin": "abuso.readers.stdin:StdinReader",
        "paths": "abuso.readers.paths:PathsReader",
        "pop3": "abuso.readers.pop3:Pop3Reader",
        "imap": "abuso.readers.imap:ImapReader",
    },
}

#: Parser order when the config omits ``parsers``: structured formats first,
#: free text last, so that the most specific evidence is kept on merge.
DEFAULT_PARSERS = ["arf", "xarf", "spamcop", "acns", "csv", "received", "log"]


def _import(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def names(kind: str) -> list[str]:
    """All names known for a stage kind, built-ins first."""
    found = list(BUILTINS[kind])
    for ep in _entry_points(kind):
        if ep.name not in found:
            found.append(ep.name)
    return found


def exists(kind: str, name: str) -> bool:
    """Built-ins are checked without scanning installed distributions (that costs ~20 ms)."""
    return name in BUILTINS[kind] or any(ep.name == name for ep in _entry_points(kind))


def _entry_points(kind: str) -> list[Any]:
    from importlib.metadata import entry_points

    try:
        return list(entry_points(group=f"abuso.{kind}"))
    except Exception:  # a broken third-party distribution must not stop abuso
        return []


def load(kind: str, name: str) -> Any:
    """The class for stage ``name`` of ``kind``; KeyError if nobody provides it."""
    spec = BUILTINS[kind].get(name)
    if spec is not None:
        return _import(spec)
    for ep in _entry_points(kind):
        if ep.name == name:
            return ep.load()
    raise KeyError(name)
