"""Stage options, declared once on the class and checked the same way for every stage.

Each stage class (parser, filter, processor, reader) lists its options::

    class TableProcessor(Processor):
        OPTIONS = (Option("file", "file", required=True, help="the path of the network table"),)

and may add rules between options that no single declaration can say
(``check_rules``, yielding ``(key, reason)``). :mod:`abuso.config` checks every
stage of a config against these declarations without building any stage, and
reports every problem at once, each with the line of its key.

One wording per kind of problem::

    unknown option (known: a, b, c)
    required: <help>
    must be <what the type is>, not <value>
    must be at least N / must be more than N / must be at most N
    <path>: no such file / not a file / cannot read / cannot be created: <folder> is not writable

Options naming files are checked on disk too, read-only (existence, access, whether a
folder could be created): :func:`check_needs` runs at every start, so that a file that went
missing is a config error (exit 78), never a message retried for ever.
"""

from __future__ import annotations

import os
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping, Sequence

#: (key relative to the stage, reason): one problem found in a stage's options.
Problem = tuple[str, str]
#: (kind, absolute path or program name, key): a file-system check redone at every start.
Need = tuple[str, str, str]


class Option:
    """One option of a stage.

    ``type`` is one of :data:`TYPES` (``"bool|str"``: either); ``check`` is an extra test of a
    value that passed its type, raising ValueError with the reason. File kinds: ``file`` (read;
    must exist), ``files`` (a path or a list; files or folders that must exist), ``folder``
    (written; must exist or be creatable), ``output`` (a file written; its folder must be
    creatable), ``program`` (a name looked up in PATH, or a path).

    ``min``/``max`` are inclusive bounds (numbers; durations in seconds), ``above`` an exclusive
    lower one (``above=0``: positive). ``each``: for list kinds (networks, strings, files), an extra
    test of every element (problems keyed ``name[i]``).

    A plain class, not a dataclass: every piped message imports this module, and generating a
    frozen dataclass's methods costs milliseconds of start-up.
    """

    __slots__ = ("name", "type", "default", "required", "min", "max", "above", "choices", "check", "each", "help")

    def __init__(self, name: str, type: str = "any", default: Any = None, required: bool = False, *,
                 min: float | None = None, max: float | None = None, above: float | None = None,
                 choices: tuple[Any, ...] = (), check: Callable[[Any], Any] | None = None,
                 each: Callable[[Any], Any] | None = None, help: str = "") -> None:
        self.name, self.type, self.default, self.required = name, type, default, required
        self.min, self.max, self.above, self.choices = min, max, above, choices
        self.check, self.each, self.help = check, each, help

    def __repr__(self) -> str:
        return f"Option({self.name!r}, {self.type!r}, {self.default!r})"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_text(v: Any) -> bool:
    return isinstance(v, str) and bool(v.strip())


def _is_duration(v: Any) -> bool:
    from .durations import parse_duration

    try:
        parse_duration(v)
    except ValueError:
        return False
    return True


def _is_size(v: Any) -> bool:
    from .sizes import parse_size

    if _is_number(v):
        return True  # a negative one is out of range (``min``), not of another type
    try:
        parse_size(v)
    except ValueError:
        return False
    return True


def _is_zone(v: Any) -> bool:
    if not _is_text(v):
        return False
    from .timestamps import zone_tzinfo

    return zone_tzinfo(v) is not None


def _network(v: Any) -> bool:
    import ipaddress

    try:
        ipaddress.ip_network(str(v).strip(), strict=False)
    except ValueError:
        return False
    return isinstance(v, str)


def _is_networks(v: Any) -> bool:
    items = [v] if isinstance(v, str) else v
    return isinstance(items, list) and all(_network(n) for n in items)


def _is_paths(v: Any) -> bool:
    return _is_text(v) or (isinstance(v, list) and bool(v) and all(_is_text(p) for p in v))


#: type name -> (what a value of it is, in words; test)
TYPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "any": ("anything", lambda v: True),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "int": ("a whole number", _is_int),
    "number": ("a number", _is_number),
    "str": ("a non-empty string", _is_text),
    "strings": ("a list of strings", lambda v: isinstance(v, list) and all(_is_text(s) for s in v)),
    "duration": ("a duration such as 30s, 5m, 2h or 1d", _is_duration),
    "size": ("a size such as 512M or 1G (bytes; K, M, G count in 1024s)", _is_size),
    "zone": ("a time zone such as UTC, +01:00 or Europe/Berlin", _is_zone),
    "networks": ("a network such as 192.0.2.0/24, or a list of them", _is_networks),
    "file": ("the path of a file", _is_text),
    "files": ("a path or a list of paths", _is_paths),
    "folder": ("the path of a folder", _is_text),
    "output": ("the path of a file", _is_text),
    "program": ("a program name or path", _is_text),
    "choice": ("", lambda v: True),  # checked against ``choices``
    "refused": ("", lambda v: True),  # a key that must never be given: ``help`` says why
}
_FS_KINDS = {"file", "files", "folder", "output", "program"}
#: List kinds: what one element is, and its test (a bad element is named ``name[i]``).
_ELEMENTS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "networks": ("a network such as 192.0.2.0/24", _network),
    "strings": ("a non-empty string", _is_text),
    "files": ("a path", _is_text),
}


def _show(value: Any) -> str:
    if value is True or value is False:
        return str(value).lower()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _yaml_word(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _seconds(option: Option, value: Any) -> float | None:
    """The number a bound applies to: the value itself, a duration's seconds or a size's bytes; None for
    other values."""
    if _is_number(value):
        return float(value)
    if isinstance(value, str) and "size" in option.type.split("|"):
        from .sizes import parse_size

        try:
            return float(parse_size(value))
        except ValueError:
            return None
    if isinstance(value, str) and "duration" in option.type.split("|"):
        from .durations import parse_duration

        try:
            return parse_duration(value).total_seconds()
        except ValueError:
            return None
    return None


def value_problems(option: Option, value: Any) -> list[Problem]:
    """Every problem of one option's value: of the value, or of each element of a list."""
    element = _ELEMENTS.get(option.type)
    if element is None or not isinstance(value, list):
        why = check_value(option, value)
        if why is None and element is not None and option.each is not None:
            why = _each(option, value)
        return [(option.name, why)] if why else []
    if not value and option.type == "files":
        return [(option.name, f"must be {TYPES[option.type][0]}, not an empty list")]
    what, test = element
    problems = []
    for i, item in enumerate(value):
        why = None if test(item) else f"must be {what}, not {_show(item)}"
        if why is None and option.each is not None:
            why = _each(option, item)
        if why:
            problems.append((f"{option.name}[{i}]", why))
    return problems


def _each(option: Option, item: Any) -> str | None:
    try:
        assert option.each is not None
        option.each(item)
    except ValueError as e:
        return str(e)
    return None


def check_value(option: Option, value: Any) -> str | None:
    """Why ``value`` does not fit ``option`` (type, choices, range, extra check), or None."""
    kinds = option.type.split("|")
    for kind in kinds:
        if kind not in TYPES:
            raise ValueError(f"option {option.name}: unknown type {kind!r}")  # a bug in the declaration
    hidden = "password" in option.name and "file" not in option.name and "env" not in option.name
    if option.type == "choice":
        if value not in option.choices or isinstance(value, bool) != any(
                isinstance(c, bool) and c == value for c in option.choices):
            words = ", ".join(_yaml_word(c) for c in option.choices)
            return f"must be one of: {words}" + ("" if hidden else f", not {_show(value)}")
    elif not any(TYPES[k][1](value) for k in kinds):
        what = " or ".join(TYPES[k][0] for k in kinds)
        return f"must be {what}" + ("" if hidden else f", not {_show(value)}")
    if option.min is not None or option.max is not None or option.above is not None:
        n = _seconds(option, value)
        if n is not None:
            if option.above is not None and n <= option.above:
                return f"must be more than {option.above:g}, not {_show(value)}"
            if option.min is not None and n < option.min:
                return f"must be at least {option.min:g}, not {_show(value)}"
            if option.max is not None and n > option.max:
                return f"must be at most {option.max:g}, not {_show(value)}"
    if option.check is not None:
        try:
            option.check(value)
        except ValueError as e:
            return str(e)
    return None


def needs_of(option: Option, value: Any, base: Path | None) -> list[Need]:
    """The file-system checks an option's value asks for (none for non-file kinds).

    Relative paths are resolved against ``base``; with ``base=None`` they are not checked.
    """
    kind = next((k for k in option.type.split("|") if k in _FS_KINDS), None)
    if kind is None or not isinstance(value, (str, list)):
        return []
    if kind == "program" and isinstance(value, str) and "/" not in value:
        return [("program", value, option.name)]
    needs = []
    for v in [value] if isinstance(value, str) else value:
        p = Path(v).expanduser()
        if not p.is_absolute():
            if base is None:
                continue
            p = base / p
        needs.append((kind, str(p), option.name))
    return needs


def check_needs(needs: Iterable[Need]) -> list[Problem]:
    """Run file-system checks: read-only (stat and access), nothing is created."""
    problems = []
    for kind, path, key in needs:
        why = _fs_problem(kind, path)
        if why:
            problems.append((key, f"{path}: {why}"))
    return problems


def _fs_problem(kind: str, path: str) -> str | None:
    if kind == "program":
        import shutil

        if "/" not in path:
            return None if shutil.which(path) else "no such program in PATH"
        if not os.path.isfile(path):
            return "no such program"
        return None if os.access(path, os.X_OK) else "not executable"
    p = Path(path)
    if kind in ("file", "files"):
        if not p.exists():
            return "no such file" if kind == "file" else "no such file or folder"
        if kind == "file" and not p.is_file():
            return "not a file"
        return None if os.access(p, os.R_OK | (os.X_OK if p.is_dir() else 0)) else "cannot read (permission denied)"
    if kind == "folder":
        if p.exists():
            if not p.is_dir():
                return "not a folder"
            return None if os.access(p, os.W_OK | os.X_OK) else "folder not writable"
        return _creatable(p)
    if kind == "output":
        if p.exists():
            if p.is_dir():
                return "a folder, not a file"
            return None if os.access(p, os.R_OK | os.W_OK) else "not writable"
        return _creatable(p.parent)
    return None


def _creatable(folder: Path) -> str | None:
    """Whether ``folder`` exists as a writable folder or could be created, without creating it."""
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                return f"cannot be created: {parent} is not a folder"
            if not os.access(parent, os.W_OK | os.X_OK):
                return f"cannot be created: {parent} is not writable"
            return None
    return None


def check_options(declared: Sequence[Option], options: Mapping[str, Any], base: Path | None = None,
                  rules: Callable[[Mapping[str, Any]], Iterable[Problem]] | None = None,
                  relative: bool = True) -> tuple[list[Problem], list[Need]]:
    """Every problem of ``options`` against ``declared``; with ``base``, also the file checks to run
    (relative paths resolved against ``base``, or left unchecked with ``relative=False``).

    Rules between options run only when every option passed on its own.
    """
    where = base if relative else None
    by_name = {o.name: o for o in declared}
    known = ", ".join(o.name for o in declared if o.type != "refused") or "none"
    problems: list[Problem] = []
    needs: list[Need] = []
    for key in options:
        if key not in by_name:
            problems.append((str(key), f"unknown option (known: {known})"))
    for option in declared:
        value = options.get(option.name)
        if option.type == "refused":
            if option.name in options:
                problems.append((option.name, option.help))
            continue
        if value is None:
            if option.required:
                problems.append((option.name, "required" + (f": {option.help}" if option.help else "")))
            elif base is not None and option.default is not None and option.type in ("folder", "output"):
                needs.extend(needs_of(option, option.default, where))
            continue
        found = value_problems(option, value)
        problems.extend(found)
        if not found and base is not None:
            needs.extend(needs_of(option, value, where))
    if not problems and rules is not None:
        problems.extend(rules(options))
    return problems, needs


class Configurable:
    """What every stage base class shares: declared options and the way they are checked."""

    #: The options this stage takes. None: not declared (a third-party stage written before
    #: declarations; its options are then not checked, or checked by its own ``check_options``).
    OPTIONS: ClassVar[tuple[Option, ...] | None] = None
    #: Relative paths in options are relative to the config's folder (False: to the working directory,
    #: as readers take them; those are then not checked on disk).
    PATHS_FROM_CONFIG: ClassVar[bool] = True

    @classmethod
    def check_rules(cls, options: Mapping[str, Any]) -> Iterator[Problem]:
        """Rules between options (``(key, reason)`` for each broken one); called once every option
        passed on its own."""
        return iter(())

    @classmethod
    def option_problems(cls, options: Mapping[str, Any], base: Path | None = None
                        ) -> tuple[list[Problem], list[Need]]:
        """Every problem of ``options`` and, with ``base``, the file checks they ask for."""
        if cls.OPTIONS is None:
            return [], []
        return check_options(cls.OPTIONS, options, base, cls.check_rules, cls.PATHS_FROM_CONFIG)

    @classmethod
    def check_options(cls, options: Mapping[str, Any], base: Path | None = None) -> None:
        """Raise ConfigError for the first problem (stages built without a config call this)."""
        from .errors import ConfigError

        problems, needs = cls.option_problems(options, base)
        problems += check_needs(needs)
        if problems:
            key, reason = problems[0]
            raise ConfigError(reason, key=key)

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        return {o.name: o.default for o in cls.OPTIONS or () if o.default is not None}

    def setting(self, name: str) -> Any:
        """An option's value, or its declared default."""
        options: Mapping[str, Any] = getattr(self, "options", {})
        value = options.get(name)
        if value is not None:
            return value
        return next((o.default for o in type(self).OPTIONS or () if o.name == name), None)
