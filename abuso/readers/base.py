"""The contract every reader keeps."""

from __future__ import annotations

from dataclasses import dataclass

from ..options import Configurable, Option

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any, ClassVar, Iterator, Mapping

_HEADER = None


def not_mail(data: bytes) -> str | None:
    """Why ``data`` is not a mail message, or None. The one judgement every reader and the piped path
    share: what fails it is quarantined with this reason, whether it came from a pipe, a file or a mailbox."""
    global _HEADER
    if _HEADER is None:
        import re

        _HEADER = re.compile(rb"[A-Za-z][A-Za-z0-9_-]*[ \t]*:")
    if not data:
        return "empty: no bytes at all"
    rest = data.lstrip(b"\r\n")
    if rest.startswith(b"From "):               # an mbox separator line: the message follows it
        rest = rest.partition(b"\n")[2].lstrip(b"\r\n")
        if not rest:
            return "an mbox 'From ' line and nothing else"
    if not rest.strip():
        return "blank: no header or body"
    if not _HEADER.match(rest):
        return "not a mail message (it does not start with header lines)"
    return None


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
