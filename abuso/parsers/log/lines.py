"""Per-line reading for the log parser: caps, lazy stamps and types of lines, pasted header sections."""

from __future__ import annotations

import re

from ...lazy import lazy_compile
from ...taxonomy import KEYWORD_RULES, type_from_text
from ...timestamps import Stamp

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any, Callable

    from ...digitblind import Keyed

#: Work caps for hostile input: lines and characters read per message, characters per line.
MAX_LINES = 20_000
MAX_CHARS = 2_000_000
MAX_LINE = 2_000
#: Address occurrences read per message (each costs ~150 µs: a hostile list is cut at 3,000), and per line
#: (a line with more is a list, not a log line).
MAX_ADDRESSES = 3_000
MAX_PER_LINE = 32
#: Lines around an address searched for its stamp; how far back a record's heading stamp may be.
WINDOW = 2
RECORD_BACK = 40
EVIDENCE = 300
#: dateparser calls per message, for stamps no fast shape reads.
MAX_FALLBACK = 3

_PRIORITY = {name: i for i, (name, _) in enumerate(KEYWORD_RULES)}
_DIGIT = lazy_compile(r"\d")
_WORD = lazy_compile(r"[^\W\d_]{3,}")

_HEADER_FIELD = lazy_compile(r"^(?:Return-Path: +)?[A-Za-z][\w-]{0,40}:[ \t]")
_TRANSPORT = lazy_compile(r"^(?:Return-Path: +)?(?:Received|Return-Path|Delivered-To|Message-ID|X-Received|"
                          r"ARC-[\w-]+|DKIM-Signature|Authentication-Results):", re.I)


def pasted_headers(lines: list[str]) -> int | None:
    """Index of the first line of a pasted header section (2+ header lines, one a Received:), or None.

    A lone Received: line quoted as evidence is not a section: the log parser reads it.
    """
    run_start, run, has_received = 0, 0, False
    for i, ln in enumerate(lines):
        if _HEADER_FIELD.match(ln) or (run and ln[:1] in " \t" and ln.strip()):
            if run == 0:
                run_start, has_received = i, False
            run += 1
            has_received = has_received or bool(_TRANSPORT.match(ln)) and "received" in ln[:30].lower()
            if run >= 2 and has_received:
                return run_start
        else:
            run = 0
    return None


class Lazy:
    """A value computed on first use, then kept."""

    __slots__ = ("fn", "done", "value")

    def __init__(self, fn: Callable[[], str | None]) -> None:
        self.fn, self.done = fn, False
        self.value: str | None = None

    def __call__(self) -> str | None:
        if not self.done:
            self.value, self.done = self.fn(), True
        return self.value


class Stamps(dict[int, "list[Stamp]"]):
    """Timestamps of lines, read only for the lines something asks about (near an address, in a
    table): reading every line of 20,000 timestamped lines without an address took 1.5 s.

    ``read(line, keyed=...)`` reads a line. A dict by line number whose missing entries are read on first
    use (``__missing__``): a line asked about again (3 times per address line) is a plain dict lookup,
    not a Python call. ``stamps[i] = []`` sets a line's stamps (whois lines)."""

    __slots__ = ("lines", "read", "line_keys", "by_text")

    def __init__(self, lines: list[str], read: Callable[..., list[Stamp]],
                 keys: list[Keyed | None]) -> None:
        super().__init__()
        self.lines, self.read, self.line_keys = lines, read, keys
        self.by_text: dict[str, list[Stamp]] = {}  # a repeated line is read once

    def __missing__(self, i: int) -> list[Stamp]:
        ln = self.lines[i]
        found = self.by_text.get(ln)
        if found is None:
            found = self.by_text[ln] = self.read(ln, keyed=self.line_keys[i]) if _DIGIT.search(ln) else []
        self[i] = found
        return found


class LineTypes(dict[int, "str | None"]):
    """Keyword types of lines, computed only for lines near an address (a dict by line number whose
    missing entries are read on first use, as Stamps)."""

    __slots__ = ("lines", "line_keys")

    def __init__(self, lines: list[str], keys: list[Keyed | None]) -> None:
        super().__init__()
        self.lines, self.line_keys = lines, keys

    def __missing__(self, i: int) -> str | None:
        ln = self.lines[i]
        found = self[i] = type_from_text(ln, self.line_keys[i]) if ln.strip() else None
        return found

    def window(self, i: int) -> str | None:
        return best([self[j] for j in range(max(0, i - WINDOW), min(len(self.lines), i + WINDOW + 1))])


def has_word(text: str) -> bool:
    return bool(_WORD.search(text))


def mask(line: str, found: list[Any]) -> str:
    """The line with its addresses blanked out, positions kept."""
    for f in found:
        line = line[:f.start] + " " * (f.end - f.start) + line[f.end:]
    return line


def trim(line: str) -> str:
    line = " ".join(line.split())
    return line if len(line) <= EVIDENCE else line[: EVIDENCE - 1] + "…"


def best(types: list[str | None]) -> str | None:
    """The highest-priority type of the taxonomy keyword rules among ``types``."""
    known = [t for t in types if t]
    return min(known, key=lambda t: _PRIORITY.get(t, len(_PRIORITY))) if known else None
