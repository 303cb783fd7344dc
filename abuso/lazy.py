"""Regular expressions compiled, and modules imported, on first use rather than at import.

abuso has ~170 module-level patterns; compiling them all cost ~55 ms of every
piped message's start-up, though a given report exercises only a few of them.
After the first call the pattern's bound methods are stored on the instance,
so later calls cost what a plain compiled pattern's do.
"""

from __future__ import annotations

import re
import sys
from types import ModuleType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any, AnyStr

_METHODS = ("search", "match", "fullmatch", "finditer", "findall", "sub", "subn", "split", "scanner")

#: How a LazyPattern is compiled: re.compile, or the procmail path's cache (abuso.startcache).
compile_pattern: Any = re.compile


class LazyPattern:  # not Generic[AnyStr]: typing costs a piped message ~8 ms; lazy_compile is typed Any
    def __init__(self, pattern: str | bytes, flags: int = 0) -> None:
        self._source: tuple[Any, int] = (pattern, flags)
        self._rx: re.Pattern[Any] | None = None

    def compiled(self) -> re.Pattern[Any]:
        if self._rx is not None:
            return self._rx
        rx = self._rx = compile_pattern(*self._source)
        for name in _METHODS:
            setattr(self, name, getattr(rx, name))
        self.pattern: Any = rx.pattern
        self.flags, self.groups, self.groupindex = rx.flags, rx.groups, rx.groupindex
        return rx

    def __getattr__(self, name: str) -> Any:  # only reached before the first compile
        if name.startswith("__") or name in ("_source", "_rx"):
            raise AttributeError(name)
        return getattr(self.compiled(), name)

    def __repr__(self) -> str:
        return f"lazy_compile({self._source[0]!r})"


def lazy_compile(pattern: AnyStr, flags: int = 0) -> Any:
    """Like re.compile, but compiled when first used (typed as Any: duck-typed re.Pattern)."""
    return LazyPattern(pattern, flags)


def lazy_import(name: str) -> Any:
    """A module that is really imported when one of its attributes is first used.

    For a parser's heavy helpers (zipfile, xml.etree, json ...): most reports
    never reach the code that needs them, and a piped message pays for every
    import made at start-up. Nothing is looked up before that first use (not even
    the module's parent packages): a missing module is an ImportError then.
    """
    import sys

    module = sys.modules.get(name)
    return module if module is not None else _Deferred(name)


class _Deferred(ModuleType):
    """Stands for a module not imported yet: the first attribute asked for imports the real one."""

    def __getattr__(self, attr: str) -> Any:
        import importlib

        return getattr(importlib.import_module(self.__name__), attr)


def import_deferring(name: str, deferred: tuple[str, ...]) -> None:
    """Import module ``name`` while the modules ``deferred`` are stand-ins, imported on first use.

    For the standard library's own heavy imports that serve a rare path: ``dataclasses`` imports
    ``inspect`` (with ast, dis, tokenize: ~15 ms of a piped message's start-up) only to write a
    docstring for a class that has none. Only ``name`` keeps the stand-in; any later
    ``import inspect`` gets the real module.
    """
    import importlib

    if name in sys.modules:
        return
    stubs = {d: _Deferred(d) for d in deferred if d not in sys.modules}
    sys.modules.update(stubs)
    try:
        importlib.import_module(name)
    finally:
        for d, stub in stubs.items():
            if sys.modules.get(d) is stub:
                del sys.modules[d]


def regex_tree(pattern: str, flags: int = 0) -> tuple[Any, Any] | None:
    """(the sre constants module, ``pattern``'s parse tree) from the stdlib's private regex parser, or None
    when it cannot be had: a private API, so callers that read the tree for a shortcut fall back to none."""
    try:
        if sys.version_info >= (3, 11):
            from re import _constants as c  # the stubs know these as sre_* only
            from re import _parser
        else:  # Python 3.10: the same parser, under its old names
            import sre_constants as c
            import sre_parse as _parser

        return c, _parser.parse(pattern, flags)
    except Exception:  # a changed or missing private API: no shortcut, same answers
        return None
