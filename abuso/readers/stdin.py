"""One message on standard input: procmail, ``.forward`` and ``| abuso run`` pipes."""

from __future__ import annotations

import sys
from typing import Iterator

from .base import Item, Reader


class StdinReader(Reader):
    name = "stdin"
    OPTIONS = ()  # ``stream`` (tests, the library) is not a config option

    def __iter__(self) -> Iterator[Item]:
        stream = self.options.get("stream") or sys.stdin.buffer
        data = stream.read()
        if data:
            yield Item(data, "-")
