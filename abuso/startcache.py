"""What a piped message's start-up compiles, kept between processes: regular expressions and dataclasses.

Every piped message is a new process. Before it reads a byte of mail it compiles ~80 of abuso's
regular expressions (~30 ms) and the generated methods of ~20 dataclasses (~20 ms), the same ones
every time. Both are pure functions of their source text, so their results are kept in the user's
cache folder, with the Python build they came from:

- the compiled program of a LazyPattern (abuso.lazy: abuso's module-level patterns, the same in
  every process; what ``re._compiler.compile`` hands to ``_sre.compile``: flags, code, groups,
  group names); ``_sre.compile`` rebuilds the very same pattern object from it;
- likewise a pattern compiled while a module is imported (its body, or what the body calls), the
  stdlib's email, json, string and logging among them (~40 patterns, ~8 ms), kept by where it is
  written. Not a pattern compiled later: the email package builds one from each message's MIME
  boundary, which would only grow the file. Nor one that is another in every process (the email package
  builds some from sets, whose order changes with the hash seed): a place seen with two patterns
  is never cached again;
- a dataclass method's code object (what ``dataclasses`` would ``exec`` from its text).

:func:`install` is called by the procmail path only (abuso.cli), never by a library user. Anything
unexpected (another Python, a damaged file, a changed stdlib) falls back to compiling as usual.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
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
    from binascii import crc32  # = zlib.crc32; binascii is loaded already (base64)

    try:
        import _sre  # type: ignore[import-not-found]

        magic = _sre.MAGIC
    except (ImportError, AttributeError):
        return None
    build = f"3|{sys.version}|{sys.hexversion}|{sys.implementation.cache_tag}|{magic}"
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "abuso", f"compiled-{crc32(build.encode('utf-8', 'replace')):08x}.marshal")


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


def _get(key: Any) -> Any:
    """The value kept under ``key``, or None. Values are kept marshalled each on its own: a process
    decodes only the ones it uses (the file holds every kind of message's, ~0.5 MB)."""
    data = _STATE["entries"].get(key)
    if data is None:
        return None
    import marshal

    try:
        return marshal.loads(data)
    except (ValueError, EOFError, TypeError):
        return None


def _remember(key: Any, value: Any) -> None:
    """Keep ``value`` (what marshal can write, else nothing) under ``key``."""
    import marshal

    entries = _STATE["entries"]
    if _STATE["new"] >= MAX_NEW:
        return
    try:
        data = marshal.dumps(value)
    except ValueError:
        return
    if len(entries) >= MAX_ENTRIES:
        entries.clear()
    entries[key] = data
    _STATE["new"] += 1


_STAMPS: dict[str, Any] = {}


def _stamp(filename: str) -> tuple[str, int, int] | None:
    """(name, size, mtime) of a source file, taken once per process: a changed file is another key."""
    stamp = _STAMPS.get(filename)
    if stamp is None:
        try:
            st = os.stat(filename)
        except OSError:
            return None
        stamp = _STAMPS[filename] = (filename, st.st_size, st.st_mtime_ns)
    return stamp


#: The frames of the re module itself, skipped to find who compiles; the import system's frames (a module
#: is being imported while one of them is on the stack).
_RE_MODULES = ("re", "re._compiler", "sre_compile")
_IMPORTING = "<frozen importlib._bootstrap"


def remembered(key: tuple[Any, ...], compute: Callable[[], T], code: Callable[..., Any]) -> T:
    """``compute()``, kept between processes once :func:`install` ran (else computed every time).

    For a pure function of ``key`` whose value marshal can write (numbers, strings, tuples, lists,
    dicts). ``code`` is the function the value comes from: its file's size and mtime are part of
    the key, so that a changed abuso computes afresh.
    """
    entries = _STATE.get("entries")
    if entries is None:
        return compute()
    stamp = _stamp(code.__code__.co_filename)
    if stamp is None:
        return compute()
    full = ("memo", stamp, code.__qualname__, *key)
    found = _get(full)
    if isinstance(found, tuple) and len(found) == 1:
        return found[0]
    value = compute()
    _remember(full, (value,))  # what marshal cannot write is not kept
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
    import re._compiler as compiler  # type: ignore[import-not-found]

    from . import lazy

    original = compiler.compile
    if getattr(original, "__module__", None) != compiler.__name__ or not hasattr(dataclasses, "_create_fn"):
        return False  # another version's layout: leave it alone
    _STATE.update(file=path, entries=_load(path), new=0)

    def cached_compile(p: Any, flags: int = 0) -> Any:
        flags = int(flags)
        if not isinstance(p, (str, bytes)) or len(p) > MAX_PATTERN or flags & compiler.SRE_FLAG_DEBUG:
            return original(p, flags)
        key = ("re", p, flags)
        found = _get(key)
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

    def import_time_compile(p: Any, flags: int = 0) -> Any:
        """re.compile (re.match ...) while a module is imported (its body, a class's, a function they call,
        e.g. string.Template's): cached by where it is written, as long as every process compiles the same
        pattern there (not one made from a set)."""
        caller: Any = sys._getframe(1)
        while caller is not None and caller.f_globals.get("__name__") in _RE_MODULES:
            caller = caller.f_back
        frame = caller
        while frame is not None and not frame.f_code.co_filename.startswith(_IMPORTING):
            frame = frame.f_back
        if frame is None or not isinstance(p, (str, bytes)):
            return original(p, flags)  # not while importing: a pattern built at run time (a MIME boundary ...)
        stamp = _stamp(caller.f_code.co_filename)
        if stamp is None:
            return original(p, flags)
        site = ("site", stamp, caller.f_lineno)
        seen = _get(site)
        if seen is None:
            _remember(site, (p, int(flags)))
        elif seen != (p, int(flags)):
            if seen is not False:
                _remember(site, False)  # another pattern each process (built from a set): never cached
            return original(p, flags)
        return cached_compile(p, flags)

    import builtins

    builtin_exec, builtin_compile = builtins.exec, builtins.compile

    def cached_exec(source: Any, globals: Any = None, locals: Any = None) -> None:
        if isinstance(source, str):
            key = ("code", source)
            code = _get(key)
            if code is None:
                code = builtin_compile(source, "<string>", "exec")
                _remember(key, code)
            source = code
        builtin_exec(source, globals, locals)

    lazy.compile_pattern = cached_compile
    compiler.compile = import_time_compile
    dataclasses.exec = cached_exec  # type: ignore[attr-defined]
    atexit.register(_save)
    return True
