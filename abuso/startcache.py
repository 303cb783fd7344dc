"""What a piped message's start-up compiles, kept between processes: regular expressions and dataclasses.

Every piped message is a new process. Before it reads a byte of mail it compiles ~80 of abuso's
regular expressions (~30 ms) and the generated methods of ~20 dataclasses (~20 ms), the same ones
every time. Both are pure functions of their source text, so their results are kept in the user's
cache folder, with the Python build they came from:

- the compiled program of a LazyPattern (abuso.lazy: abuso's module-level patterns, the same in
  every process; what ``re._compiler.compile`` hands to ``_sre.compile``: flags, code, groups,
  group names); ``_sre.compile`` rebuilds the very same pattern object from it. Not every
  ``re.compile``: the stdlib's email package builds patterns from sets (another order in every
  process) and from each message's MIME boundaries, which would only grow the file;
- a dataclass method's code object (what ``dataclasses`` would ``exec`` from its text).

:func:`install` is called by the procmail path only (abuso.cli), never by a library user. Anything
unexpected (another Python, a damaged file, a changed stdlib) falls back to compiling as usual.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, TypeVar

T = TypeVar("T")

#: Entries one process may add, and entries the file may hold (patterns built from a message's
#: own text must not grow it without bound): past the bound the cache starts afresh.
MAX_NEW, MAX_ENTRIES = 400, 4000
#: Patterns longer than this are compiled as usual (a one-off, most likely).
MAX_PATTERN = 50_000
#: A larger file is not written (a piped message reads it whole).
MAX_BYTES = 2 * 1024 * 1024

_STATE: dict[str, Any] = {}


def _file() -> str | None:
    if os.environ.get("ABUSO_NO_CACHE"):
        return None
    import zlib

    try:
        import _sre  # type: ignore[import-not-found]

        magic = _sre.MAGIC
    except (ImportError, AttributeError):
        return None
    build = f"2|{sys.version}|{sys.hexversion}|{sys.implementation.cache_tag}|{magic}"
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "abuso", f"compiled-{zlib.crc32(build.encode('utf-8', 'replace')):08x}.marshal")


def _load(path: str) -> dict[Any, Any]:
    import marshal

    try:
        with open(path, "rb") as f:
            entries = marshal.loads(f.read())
    except (OSError, ValueError, EOFError, TypeError):
        return {}
    return entries if isinstance(entries, dict) else {}


def _save() -> None:
    import marshal

    path, entries = _STATE.get("file"), _STATE.get("entries")
    if not _STATE.get("new") or path is None or entries is None:
        return
    folder = os.path.dirname(path)
    tmp = os.path.join(folder, f".tmp-compiled-{os.getpid()}")
    try:
        data = marshal.dumps(entries)
        if len(data) > MAX_BYTES:
            return
        os.makedirs(folder, mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except (OSError, ValueError):
        try:
            os.unlink(tmp)
        except OSError:
            pass  # a cache that cannot be written is only slower


def _remember(key: Any, value: Any) -> None:
    entries = _STATE["entries"]
    if _STATE["new"] >= MAX_NEW:
        return
    if len(entries) >= MAX_ENTRIES:
        entries.clear()
    entries[key] = value
    _STATE["new"] += 1


_STAMPS: dict[str, Any] = {}


def remembered(key: tuple[Any, ...], compute: Callable[[], T], code: Callable[..., Any]) -> T:
    """``compute()``, kept between processes once :func:`install` ran (else computed every time).

    For a pure function of ``key`` whose value marshal can write (numbers, strings, tuples, lists,
    dicts). ``code`` is the function the value comes from: its file's size and mtime are part of
    the key, so that a changed abuso computes afresh.
    """
    entries = _STATE.get("entries")
    if entries is None:
        return compute()
    filename = code.__code__.co_filename
    stamp = _STAMPS.get(filename)
    if stamp is None:
        try:
            st = os.stat(filename)
            stamp = _STAMPS[filename] = (filename, st.st_size, st.st_mtime_ns)
        except OSError:
            return compute()
    full = ("memo", stamp, code.__qualname__, *key)
    if full in entries:
        return entries[full]
    value = compute()
    import marshal

    try:
        marshal.dumps(value)  # type: ignore[arg-type]  # what marshal cannot write is not kept
    except ValueError:
        return value
    _remember(full, value)
    return value


def install() -> bool:
    """Keep compiled LazyPatterns and dataclass methods between processes from now on (False: cannot)."""
    if "entries" in _STATE:
        return True
    path = _file()
    if path is None:
        return False
    import _sre
    import atexit
    import dataclasses
    import re
    import re._compiler as compiler  # type: ignore[import-not-found]

    from . import lazy

    original = compiler.compile
    if getattr(original, "__module__", None) != compiler.__name__ or not hasattr(dataclasses, "_create_fn"):
        return False  # another version's layout: leave it alone
    _STATE.update(file=path, entries=_load(path), new=0)

    def cached_compile(p: Any, flags: int = 0) -> Any:
        flags = int(flags)
        if not isinstance(p, (str, bytes)) or len(p) > MAX_PATTERN or flags & compiler.SRE_FLAG_DEBUG:
            return re.compile(p, flags)
        key = ("re", p, flags)
        found = _STATE["entries"].get(key)
        if found is not None:
            try:
                return _sre.compile(p, *found)
            except (TypeError, ValueError, RuntimeError):
                pass
        parsed = compiler._parser.parse(p, flags)
        code = compiler._code(parsed, flags)
        groupindex = dict(parsed.state.groupdict)
        indexgroup: list[Any] = [None] * parsed.state.groups
        for k, i in groupindex.items():
            indexgroup[i] = k
        args = (int(flags | parsed.state.flags), [int(c) for c in code], parsed.state.groups - 1, groupindex,
                tuple(indexgroup))
        rx = _sre.compile(p, *args)
        _remember(key, args)
        return rx

    import builtins

    builtin_exec, builtin_compile = builtins.exec, builtins.compile

    def cached_exec(source: Any, globals: Any = None, locals: Any = None) -> None:
        if isinstance(source, str):
            key = ("code", source)
            code = _STATE["entries"].get(key)
            if code is None:
                code = builtin_compile(source, "<string>", "exec")
                _remember(key, code)
            source = code
        builtin_exec(source, globals, locals)

    lazy.compile_pattern = cached_compile
    dataclasses.exec = cached_exec  # type: ignore[attr-defined]
    atexit.register(_save)
    return True
