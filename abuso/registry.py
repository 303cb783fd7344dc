"""Where stage names in the config come from: built-ins, then entry points.

Built-ins are named by "module:Class" strings so that nothing is imported until
a config asks for it (start-up time is paid by every piped message).
Third-party stages register in the entry-point groups ``abuso.parsers``,
``abuso.readers``, ``abuso.filters`` and ``abuso.processors``.

Parsers run in the order of their declared ``priority`` (parsers/base.py);
without ``parsers`` in the config, every built-in and plugin parser runs
(:func:`default_parsers`), so a plugin joins the default chain where it says.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any, Sequence

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
    """Built-ins are checked without listing the installed distributions' entry points."""
    return name in BUILTINS[kind] or any(ep.name == name for ep in _entry_points(kind))


class _EntryPoint:
    """An entry point as listed (``name = module:attr``), loaded on demand.

    A plain class: a NamedTuple's generated code costs every piped message ~2 ms.
    """

    __slots__ = ("name", "value")

    def __init__(self, name: str, value: str) -> None:
        self.name, self.value = name, value

    def load(self) -> Any:
        module, _, attrs = self.value.partition(":")
        obj = importlib.import_module(module.strip())
        for attr in attrs.split("[", 1)[0].split("."):
            if attr.strip():
                obj = getattr(obj, attr.strip())
        return obj


def plugin_names(kind: str) -> list[list[str]]:
    """The installed plugins of a kind, as listed (``[name, module:attr]``), without importing them."""
    return [[name, value] for name, value in _listing().get(kind, [])]


def _entry_points(kind: str) -> list[Any]:
    return [_EntryPoint(name, value) for name, value in _listing().get(kind, [])]


# Listing the installed distributions' entry points means importing importlib.metadata and reading
# every dist-info (~10-20 ms); with plugins joining the default chain a piped message would pay that
# each time. The listing is kept per process and in the user's cache folder, keyed by the sys.path
# entries and their mtimes: installing or removing a distribution changes its folder's mtime.
_LISTINGS: dict[str, dict[str, list[list[str]]]] = {}


def _listing() -> dict[str, list[list[str]]]:
    import os
    import sys

    key = []
    for entry in sys.path:
        try:
            key.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            key.append([entry, None])
    memo = repr(key)
    if memo in _LISTINGS:
        return _LISTINGS[memo]
    file = _listing_file(repr(sys.path))  # one file per sys.path; the mtimes are checked inside
    listing = _read_listing(file, key) if file is not None else None
    if listing is None:
        listing = _scan()
        if listing is not None and file is not None:
            _write_listing(file, key, listing)
    _LISTINGS[memo] = listing or {}
    return _LISTINGS[memo]


def _scan() -> dict[str, list[list[str]]] | None:
    try:
        from importlib.metadata import entry_points

        found = entry_points()
        return {kind: [[ep.name, ep.value] for ep in found.select(group=f"abuso.{kind}")] for kind in BUILTINS}
    except Exception:  # a broken third-party distribution must not stop abuso
        return None


def _listing_file(paths: str) -> Any:
    import os
    from binascii import crc32  # = zlib.crc32; binascii is loaded already (base64)
    from pathlib import Path

    if os.environ.get("ABUSO_NO_CACHE"):
        return None
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "abuso" / f"entry-points-{crc32(paths.encode('utf-8', 'surrogateescape')):08x}.marshal"


def _read_listing(file: Any, key: list) -> dict[str, list[list[str]]] | None:
    import marshal  # not json: a piped message that outputs text does not import it

    try:
        entry = marshal.loads(file.read_bytes())
        if entry.get("key") != key or not isinstance(entry.get("groups"), dict):
            return None
        return {k: [[str(n), str(v)] for n, v in eps] for k, eps in entry["groups"].items()}
    except (OSError, ValueError, EOFError, TypeError, AttributeError):
        return None


def _write_listing(file: Any, key: list, listing: dict[str, list[list[str]]]) -> None:
    import marshal
    import os
    import tempfile

    try:
        data = marshal.dumps({"key": key, "groups": listing})
        file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, file)
    except (OSError, TypeError, ValueError):
        pass  # a cache that cannot be written is only slower


def load(kind: str, name: str) -> Any:
    """The class for stage ``name`` of ``kind``; KeyError if nobody provides it."""
    spec = BUILTINS[kind].get(name)
    if spec is not None:
        return _import(spec)
    for ep in _entry_points(kind):
        if ep.name == name:
            return ep.load()
    raise KeyError(name)


# --- the parser chain ---------------------------------------------------------------


def priority(cls: Any) -> int:
    """A parser class's declared place in the chain (parsers/base.py; 50 when a plugin declares none)."""
    value = getattr(cls, "priority", 50)
    return value if isinstance(value, int) and not isinstance(value, bool) else 50


def in_priority_order(classes: Sequence[Any]) -> list[int]:
    """Indexes of ``classes`` in chain order: higher priority first, the given order among equals."""
    return sorted(range(len(classes)), key=lambda i: -priority(classes[i]))


def default_parsers() -> list[str]:
    """The chain when the config omits ``parsers``: every built-in and plugin parser, by priority.

    Plugins (entry-point group ``abuso.parsers``) join at their declared priority;
    ties keep built-ins first, then plugins by name. A plugin that cannot be
    imported stops the config load, as it would if the config named it.
    """
    from .errors import ConfigError

    names = list(BUILTINS["parsers"])
    names += sorted({ep.name for ep in _entry_points("parsers")} - set(names))
    classes = []
    for name in names:
        try:
            classes.append(load("parsers", name))
        except Exception as e:  # a third party's import error: say whose
            raise ConfigError(f"cannot load parser {name!r} (entry point abuso.parsers) for the default "
                              f"chain: {type(e).__name__}: {e}", key="parsers")
    return [names[i] for i in in_priority_order(classes)]


def __getattr__(name: str) -> Any:
    # DEFAULT_PARSERS, as it was a constant before priorities were declared on the classes.
    if name == "DEFAULT_PARSERS":
        return default_parsers()
    raise AttributeError(name)
