"""Messages from files, folder trees, Maildirs and mbox files, told apart by content.

Archives are streamed: an mbox is split as it is read and a folder tree is
walked lazily, so a batch over 100k messages keeps a flat memory profile.
By default nothing is changed on disk (cron runs over archives). With
``mark: true`` only unfinished mail is processed, and marked only after its
processors finished (at-least-once): Maildir messages move to ``cur/`` with the
``S`` flag; an mbox, which cannot be changed in place safely, gets the SHA-256
of each finished message appended to ``<mbox>.abuso-done`` beside it.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Mapping

from ..lazy import lazy_compile
from ..options import Option
from .base import Item, Reader

#: An mbox "From " separator line: ``From sender@host Sat Nov 22 03:14:07 2026``.
_FROM_LINE = lazy_compile(rb"^From \S+ +.*\d{4}\s*$|^From \S+ +\w{3} \w{3} [ \d]\d \d\d:\d\d")
_HEADER = lazy_compile(rb"^(?:[A-Za-z][A-Za-z0-9_-]*:|From )")
_ESCAPED_FROM = lazy_compile(rb"^>+From ")


def is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def sniff(head: bytes) -> str:
    """'mbox' if the bytes start like an mbox, else 'message'."""
    first = head.split(b"\n", 1)[0]
    if first.startswith(b"From ") and _FROM_LINE.match(first.rstrip(b"\r")):
        return "mbox"
    return "message"


def iter_mbox(stream: IO[bytes], origin: str) -> Iterator[Item]:
    """Split an mbox (mboxo/mboxrd) as it is read; '>From ' lines are unescaped."""
    lines: list[bytes] = []
    n = 0
    prev_blank = True
    for line in stream:
        if line.startswith(b"From ") and prev_blank and _FROM_LINE.match(line.rstrip(b"\r\n")):
            if lines:
                n += 1
                yield Item(_strip_trailing_blank(lines), f"{origin}#{n}", ("mbox", origin, n))
            lines = []
            prev_blank = False
            continue
        if _ESCAPED_FROM.match(line):
            line = line[1:]
        lines.append(line)
        prev_blank = line in (b"\n", b"\r\n")
    if lines and any(ln.strip() for ln in lines):
        n += 1
        yield Item(_strip_trailing_blank(lines), f"{origin}#{n}", ("mbox", origin, n))


def _strip_trailing_blank(lines: list[bytes]) -> bytes:
    data = b"".join(lines)
    if data.endswith(b"\n\n"):
        data = data[:-1]
    return data


class PathsReader(Reader):
    """Options: ``paths`` (list), ``files_from`` (a file of paths, '-' for stdin), ``mark`` (bool),
    ``max_bytes`` (the config's ``defaults.max_bytes``: a bigger file is read only that far, enough
    for the pipeline to quarantine it with the reason, never whole)."""

    name = "paths"
    OPTIONS = (
        Option("paths", "strings", help="files, folders, Maildirs and mboxes"),
        Option("files_from", "str", help="a file of paths, one a line ('-': stdin)"),
        Option("mark", "bool", False, help="Maildir: only unseen mail, marked seen when done"),
    )

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.paths = [Path(p).expanduser() for p in self.options.get("paths", [])]
        self.files_from = self.options.get("files_from")
        self.mark = bool(self.options.get("mark", False))
        self.max_bytes = int(self.options.get("max_bytes") or 0)
        self.errors: list[str] = []

    def total_bytes(self) -> int | None:
        """The bytes the named paths hold (for the progress line's ETA); None when paths stream in
        (``--files-from``) and the total is unknown. Walks folders without reading a file."""
        if self.files_from:
            return None
        total = 0
        stack = list(self.paths)
        while stack:
            path = stack.pop()
            try:
                if path.is_dir():
                    stack.extend(p for p in path.iterdir() if not p.name.startswith(".")
                                 or p.name in (".Spam", ".Archive") or is_maildir(p))
                else:
                    total += path.stat().st_size
            except OSError:
                continue
        return total

    def _sources(self) -> Iterable[Path]:
        yield from self.paths
        if self.files_from:
            stream = sys.stdin if self.files_from == "-" else open(self.files_from, encoding="utf-8",
                                                                     errors="surrogateescape")
            try:
                for line in stream:
                    line = line.rstrip("\n")
                    if line.strip():
                        yield Path(line)
            finally:
                if stream is not sys.stdin:
                    stream.close()

    def __iter__(self) -> Iterator[Item]:
        for path in self._sources():
            yield from self._walk(path)

    def _walk(self, path: Path) -> Iterator[Item]:
        if path.is_dir():
            if is_maildir(path):
                yield from self._maildir(path)
                # Maildir++ sub-folders (.Spam, .Archive) are Maildirs inside the Maildir.
                for sub in sorted(path.iterdir()):
                    if sub.name.startswith(".") and sub.is_dir() and is_maildir(sub):
                        yield from self._maildir(sub)
                return
            try:
                entries = sorted(path.iterdir())
            except OSError as e:
                self.errors.append(f"{path}: cannot list folder: {e.strerror}")
                return
            for entry in entries:
                if entry.name.startswith(".") or entry.name.endswith(".abuso-done"):
                    continue
                yield from self._walk(entry)
            return
        yield from self._file(path)

    def _file(self, path: Path) -> Iterator[Item]:
        try:
            f = open(path, "rb")
        except OSError as e:
            self.errors.append(f"{path}: cannot read: {e.strerror}")
            return
        with f:
            head = f.read(1024)
            if sniff(head) == "mbox":
                f.seek(0)
                done = _read_done(path) if self.mark else set()
                found = 0
                for item in iter_mbox(f, str(path)):
                    found += 1
                    if not done or hashlib.sha256(item.data).hexdigest() not in done:
                        yield item
                if found:
                    return
                f.seek(0)        # an mbox line and no message after it: the file itself, for the quarantine
                head = f.read(1024)
            # Mail or not, the file goes on: the pipeline judges it as it judges a piped message
            # (readers.base.not_mail), and what is not mail is quarantined with the reason, never dropped.
            data = head + self._rest(f, len(head))
        yield Item(data, str(path), ("file", str(path)))

    def _rest(self, f: IO[bytes], done: int) -> bytes:
        """The rest of a message file: all of it, or max_bytes + 1 in all when it is bigger (its size is
        checked first; the read is bounded too, for files that grow or do not know their size)."""
        if not self.max_bytes:
            return f.read()
        try:
            size = os.fstat(f.fileno()).st_size
        except OSError:
            size = 0
        if size and size <= self.max_bytes:
            return f.read()
        return f.read(max(0, self.max_bytes + 1 - done))

    def _maildir(self, path: Path) -> Iterator[Item]:
        for sub in ("new", "cur"):
            folder = path / sub
            try:
                names = sorted(os.listdir(folder))
            except OSError as e:
                self.errors.append(f"{folder}: cannot list folder: {e.strerror}")
                continue
            for name in names:
                if name.startswith("."):
                    continue
                if self.mark and sub == "cur" and "S" in _flags(name):
                    continue
                file = folder / name
                try:
                    with open(file, "rb") as f:
                        data = self._rest(f, 0)
                except OSError as e:  # delivered and removed meanwhile, or unreadable
                    self.errors.append(f"{file}: cannot read: {e.strerror}")
                    continue
                yield Item(data, str(file), ("maildir", str(file)))

    def done(self, item: Item, error: str | None = None) -> None:
        """With ``mark``, a processed Maildir message moves to cur/ with the S flag;
        a processed mbox message is recorded in ``<mbox>.abuso-done``."""
        if not self.mark or not item.key:
            return
        if item.key[0] == "mbox":
            try:
                with open(_done_path(Path(item.key[1])), "a", encoding="ascii") as f:
                    f.write(hashlib.sha256(item.data).hexdigest() + "\n")
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as e:
                self.errors.append(f"{item.key[1]}: cannot record message {item.key[2]} as done: {e.strerror}")
            return
        if item.key[0] != "maildir":
            return
        src = Path(item.key[1])
        base, _, info = src.name.partition(":2,")
        flags = "".join(sorted(set(info) | {"S"}))
        dst = src.parent.parent / "cur" / f"{base}:2,{flags}"
        try:
            os.replace(src, dst)
        except OSError as e:
            self.errors.append(f"{src}: cannot mark as seen: {e.strerror}")


def _done_path(mbox: Path) -> Path:
    return mbox.with_name(mbox.name + ".abuso-done")


def _read_done(mbox: Path) -> set[str]:
    try:
        return set(_done_path(mbox).read_text(encoding="ascii", errors="replace").split())
    except FileNotFoundError:
        return set()


def _flags(name: str) -> str:
    return name.partition(":2,")[2]
