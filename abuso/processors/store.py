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

from ..errors import ConfigError
from ..model import Report
from ..options import Option
from ..storage.index import redact_url
from ..storage.store import Store, digest_of
from .base import Processor

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any, Iterator, Mapping

_ACTIVE: Store | None = None


def active_store() -> Store | None:
    """The store opened by the store processor of the running pipeline, if any."""
    return _ACTIVE


def _check_url(url: str) -> None:
    scheme = url.split(":", 1)[0].lower()
    if scheme not in ("sqlite", "postgresql", "postgres"):
        raise ValueError("unsupported scheme (use sqlite:///path or postgresql://…)")
    if scheme == "sqlite":
        from ..storage.index import sqlite_path

        try:
            sqlite_path(url, None)
        except ConfigError as e:
            raise ValueError(e.bare)
    else:
        import importlib.util

        if importlib.util.find_spec("psycopg") is None:
            raise ValueError("a postgresql:// index needs psycopg: pip install 'abuso[postgres]'")


class StoreProcessor(Processor):
    name = "store"
    OPTIONS = (
        Option("path", "folder", "~/abuso/store", help="the folder of the stored reports"),
        Option("url", "str", check=_check_url, help="the index elsewhere: sqlite:///path or postgresql://…"),
        Option("password_file", "file", help="the postgresql:// index's password (first line)"),
        Option("timeout", "number", 30, above=0, help="seconds to wait for a locked or busy database"),
        Option("fsync", "bool", True),
        Option("duplicates", "choice", "skip", choices=("skip", "update"),
               help="skip: a re-sent report changes nothing; update: re-processing refreshes its analysis"),
    )
    side_effects = True

    @classmethod
    def check_rules(cls, options: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        if "password_file" in options and not str(options.get("url", "")).lower().startswith("postgres"):
            yield "password_file", "only a postgresql:// url takes a password"

    def preview(self, report: Report) -> str:
        root = self.path(self.setting("path"))
        where = f" (index {redact_url(self.options['url'])})" if self.options.get("url") else ""
        return f"would store this report in {root}{where}, unless it is stored already"

    def __init__(self, options: Mapping[str, Any] | None = None, base: Any = None) -> None:
        global _ACTIVE
        super().__init__(options, base)
        self.check_options(self.options)
        self.store = open_store(self.options, self.base)
        _ACTIVE = self.store

    def process(self, report: Report) -> None:
        """Decide where the report goes and whether it is a duplicate; writing waits for :meth:`finish`."""
        digest = digest_of(report.raw)
        found = self.store.has(digest)
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

    def hold(self) -> bool:
        """Group commit in a batch worker (:meth:`Store.hold`); never when re-processing (duplicates: update)."""
        if self.options.get("duplicates") == "update":
            return False
        self.store.hold()
        return True

    @property
    def held(self) -> int:
        return self.store.held

    def commit(self) -> None:
        self.store.commit()

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
