"""The contract every reader keeps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Mapping


@dataclass
class Item:
    """One raw message and where it came from."""

    data: bytes
    origin: str
    #: Reader-specific handle (Maildir key, IMAP UID, POP3 UIDL ...).
    key: Any = None


class Reader:
    """Iterate to get items; call ``done`` once each item's processors finished.

    ``done(item, error)`` with ``error=None`` marks success; a reader that
    manages a mailbox moves or flags the message only then (at-least-once).
    """

    name: ClassVar[str] = "reader"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    def __iter__(self) -> Iterator[Item]:  # pragma: no cover - interface
        raise NotImplementedError

    def done(self, item: Item, error: str | None = None) -> None:
        """Record the outcome of one item (default: nothing to record)."""

    def close(self) -> None:
        """Log out, unlock, flush state."""
