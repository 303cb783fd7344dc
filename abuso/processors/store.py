"""``store``: keep every processed report (raw bytes, text, incidents, verdicts) and index it.

Config::

    - store: {path: ~/abuso/store}                          # index: <path>/index.sqlite
    - store: {path: /srv/abuso, url: sqlite:////srv/abuso.db}
    - store: {path: /srv/abuso, url: postgresql://abuso@db/abuso}   # several machines, one index
    - store: {path: /srv/abuso, url: postgresql://abuso@db/abuso, password_file: /etc/abuso/db.pw}
    - store: {path: ~/abuso/store, fsync: false}     # re-runs over an archive: 3x faster, less durable
    - store: {path: ~/abuso/store, duplicates: update}   # re-processing refreshes stored analyses

Keep the database password out of the URL (check-config prints options): use
``password_file`` or libpq's ``~/.pgpass``.

Re-process the stored mail after an upgrade with
``find ~/abuso/store -name '*.eml' | abuso run -c CONFIG --files-from -``.

The store is listed first so that its note (path, duplicate) is there for the
processors after it, but it writes in :meth:`finish`, after every processor has
run, so the index holds the customers and users that ``table`` and ``radius``
attached. Other processors reach the store's memory for rate limits through
:func:`active_store`::

    from abuso.processors.store import active_store
    store = active_store()            # None when the config has no store
    if store is None or store.remember(f"mailer:{sender}", 86400): ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError
from ..model import Report
from ..storage.store import Store, digest_of
from .base import Processor

_ACTIVE: Store | None = None


def active_store() -> Store | None:
    """The store opened by the store processor of the running pipeline, if any."""
    return _ACTIVE


class StoreProcessor(Processor):
    name = "store"
    OPTIONS = {"path", "url", "password_file", "timeout", "fsync", "duplicates"}

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        for key in options:
            if key not in cls.OPTIONS:
                raise ConfigError(f"unknown option (expected one of: {', '.join(sorted(cls.OPTIONS))})", key=key)
        for key in ("path", "url", "password_file"):
            if key in options and not (isinstance(options[key], str) and options[key].strip()):
                raise ConfigError("must be a non-empty string", key=key)
        url = options.get("url")
        if url is not None and url.split(":", 1)[0].lower() not in ("sqlite", "postgresql", "postgres"):
            raise ConfigError("unsupported scheme (use sqlite:///path or postgresql://…)", key="url")
        if url is not None and url.lower().startswith("sqlite"):
            from ..storage.index import sqlite_path

            sqlite_path(url, None)
        elif url is not None:
            import importlib.util

            if importlib.util.find_spec("psycopg") is None:
                raise ConfigError("a postgresql:// index needs psycopg: pip install 'abuso[postgres]'", key="url")
        elif "password_file" in options:
            raise ConfigError("only a postgresql:// url takes a password", key="password_file")
        if options.get("duplicates", "skip") not in ("skip", "update"):
            raise ConfigError("must be skip (a re-sent report changes nothing) or update (re-processing"
                              " refreshes its analysis)", key="duplicates")
        if not isinstance(options.get("fsync", True), bool):
            raise ConfigError("must be true or false", key="fsync")
        timeout = options.get("timeout", 30)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigError("must be a positive number of seconds", key="timeout")

    def __init__(self, options: Mapping[str, Any] | None = None, base: Any = None) -> None:
        global _ACTIVE
        super().__init__(options, base)
        self.check_options(self.options)
        self.store = open_store(self.options, self.base)
        _ACTIVE = self.store

    def process(self, report: Report) -> None:
        """Decide where the report goes and whether it is a duplicate; writing waits for :meth:`finish`."""
        digest = digest_of(report.raw)
        found = self.store.index.has(digest)
        location = found if found is not None else self.store.location(report, digest)
        report.notes[self.name] = {"digest": digest, "path": str(self.store.root / (location + ".eml")),
                                   "duplicate": found is not None}

    def finish(self, report: Report) -> None:
        note = report.notes.get(self.name)
        update = self.options.get("duplicates") == "update"
        if not note or (note.get("duplicate") and not update):
            return
        location, new = self.store.put(report, note["digest"], update=update)
        if not new and update:
            note["updated"] = True
        note["path"] = str(self.store.root / (location + ".eml"))
        note["duplicate"] = not new

    def close(self) -> None:
        global _ACTIVE
        if _ACTIVE is self.store:
            _ACTIVE = None
        self.store.close()


def open_store(options: Mapping[str, Any], base: Any, create: bool = True) -> Store:
    """The Store a store processor's options describe (also used by `abuso query`, with ``create=False``)."""
    password = None
    if options.get("password_file"):
        p = Path(options["password_file"]).expanduser()
        p = p if p.is_absolute() else Path(base or Path.cwd()) / p
        try:
            password = p.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read {p}: {getattr(e, 'strerror', None) or e}", key="password_file")
    return Store.open(options.get("path"), options.get("url"), base, float(options.get("timeout", 30)), create,
                      bool(options.get("fsync", True)), password)
