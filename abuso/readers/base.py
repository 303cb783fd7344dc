"""The contract every reader keeps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Mapping

from ..options import Configurable, Option


@dataclass
class Item:
    """One raw message and where it came from."""

    data: bytes
    origin: str
    #: Reader-specific handle (Maildir key, IMAP UID, POP3 UIDL ...).
    key: Any = None


class Reader(Configurable):
    """Iterate to get items; call ``done`` once each item's processors finished.

    ``done(item, error)`` with ``error=None`` marks success; a reader that
    manages a mailbox moves or flags the message only then (at-least-once).
    Options are declared in ``OPTIONS`` and checked by the config before any reader is built.
    """

    name: ClassVar[str] = "reader"
    #: None: undeclared (third-party stages written before declarations); built-ins declare theirs.
    OPTIONS: ClassVar[tuple[Option, ...] | None] = None
    #: Readers get no config folder: a relative path in their options is relative to the working directory.
    PATHS_FROM_CONFIG: ClassVar[bool] = False

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    def __iter__(self) -> Iterator[Item]:  # pragma: no cover - interface
        raise NotImplementedError

    def done(self, item: Item, error: str | None = None) -> None:
        """Record the outcome of one item (default: nothing to record)."""

    def close(self) -> None:
        """Log out, unlock, flush state."""
