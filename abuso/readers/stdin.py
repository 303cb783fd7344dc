"""One message on standard input: procmail, ``.forward`` and ``| abuso run`` pipes."""

from __future__ import annotations

import sys

from .base import Item, Reader

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Iterator


class StdinReader(Reader):
    name = "stdin"
    OPTIONS = ()  # ``stream`` (tests, the library) is not a config option

    def __iter__(self) -> Iterator[Item]:
        stream = self.options.get("stream") or sys.stdin.buffer
        if stream is sys.stdin.buffer and sys.stdin.isatty():   # a person typed "abuso run" and waits
            sys.stderr.write("abuso: reading one message from stdin (end it with Ctrl-D; "
                             "give files or folders to read those instead)\n")
        # Even empty: an empty delivery is quarantined with its reason ("empty: no bytes at all"), not lost.
        yield Item(stream.read(), "-")
