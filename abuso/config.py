"""Load and validate the YAML config; every error names file, line and key.

The keys are a public contract (design.md): ``parsers``, ``filters``,
``processors``, ``reader``, plus ``quarantine`` and ``defaults``.

Validation builds no stage: each stage's options are checked against the
options its class declares (:mod:`abuso.options`), every problem is reported at
once (``file:line: key: reason``, the line of the key itself), and files the
config names are checked on disk, read-only, at every start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import registry
from .errors import ConfigError, ConfigErrors
from .options import Option, check_needs, check_options

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any

TOP_KEYS = ("parsers", "filters", "processors", "reader", "quarantine", "defaults", "notify")

#: The ``defaults`` section: what every message and every parser shares.
DEFAULTS: tuple[Option, ...] = (
    Option("zone", "zone", help="zone of naive timestamps when the report states none"),
    Option("date_fallback", "bool", False),
    Option("max_bytes", "int", 32 * 1024 * 1024, min=1, help="larger messages are quarantined unread"),
    Option("timeout", "number", 60, min=0, help="seconds one message may take (0: no limit)"),
    Option("max_memory", "size", "1G", min=0, help="memory one message may take; more and it is quarantined "
                                                     "(0: no limit)"),
)
QUARANTINE = Option("quarantine", "folder", "~/abuso/quarantine")

#: Stage groups: config key, registry kind, how an entry is shown.
_GROUPS = (("parsers", "parsers"), ("filters", "filters"), ("processors", "processors"), ("reader", "readers"))
#: YAML nodes one config may expand to (an alias bomb stops here, not in memory).
MAX_NODES = 100_000


@dataclass
class Stage:
    """One configured stage: its kind, name and options, and where the YAML says it."""

    kind: str
    name: str
    options: dict[str, Any]
    line: int | None = None
    #: Where the stage is in the YAML (``processors[0].store``): the prefix of its keys' lines.
    where: str = ""

    @property
    def label(self) -> str:
        """How errors name it: ``processors.store``, ``reader.imap``."""
        return f"{'reader' if self.kind == 'readers' else self.kind}.{self.name}"


@dataclass
class Config:
    """A loaded, checked config."""

    file: str | None
    base: Path
    parsers: list[Stage]
    filters: list[Stage]
    processors: list[Stage]
    reader: Stage | None
    quarantine: Path
    defaults: dict[str, Any] = field(default_factory=dict)
    #: The plain data the config was built from (picklable, for worker processes).
    data: dict[str, Any] = field(default_factory=dict)

    def default(self, name: str) -> Any:
        """A ``defaults`` value as given, or as declared (``DEFAULTS``) when not given."""
        value = self.defaults.get(name)
        if value is None:
            value = next((o.default for o in DEFAULTS if o.name == name), None)
        return value

    @property
    def max_memory(self) -> int:
        """``defaults.max_memory`` in bytes (0: no limit)."""
        from .sizes import parse_size

        return parse_size(self.default("max_memory"))

    def describe(self) -> str:
        """The resolved pipeline, as `abuso check-config` prints it."""
        lines = [f"config: {self.file or '<dict>'}"]
        if self.reader:
            lines.append(f"reader: {self.reader.name} {_fmt(self.reader.options)}")
        else:
            lines.append("reader: stdin or paths given on the command line")
        lines.append("parsers: " + ", ".join(s.name for s in self.parsers))
        lines.append("filters:" + ("" if self.filters else " none"))
        for s in self.filters:
            lines.append(f"  - {s.name}: {_fmt(s.options)}")
        lines.append("processors:" + ("" if self.processors else " none"))
        for s in self.processors:
            lines.append(f"  - {s.name}: {_fmt(s.options)}")
        lines.append(f"quarantine: {self.quarantine}")
        if self.defaults:
            lines.append(f"defaults: {_fmt(self.defaults)}")
        return "\n".join(lines)


def _fmt(options: Mapping[str, Any]) -> str:
    hidden = {k: ("***" if "password" in k and "file" not in k else v) for k, v in options.items()}
    return str(hidden) if hidden else "{}"


# --- YAML with the line of every key -----------------------------------------------


class _Lines:
    """Turns composed YAML into data, remembering the line of every key path.

    Merge keys (``<<: *anchor``) are applied as YAML 1.1 says (keys written out win);
    a key given twice, a key that is not a plain value and a self-referring alias are
    problems with their lines, not crashes.
    """

    def __init__(self, file: str) -> None:
        import yaml

        self.file = file
        self.by_path: dict[str, int] = {}
        self.problems: list[ConfigError] = []
        self._nodes = 0
        self._active: set[int] = set()
        self._loader = yaml.SafeLoader("")

    def close(self) -> None:
        self._loader.dispose()

    def construct(self, node: Any, path: str) -> Any:
        import yaml

        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise ConfigError(f"more than {MAX_NODES} values (aliases expanding too far?)", self.file,
                              node.start_mark.line + 1)
        if id(node) in self._active:
            raise ConfigError("an alias refers to the value it is part of", self.file, node.start_mark.line + 1)
        self.by_path.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            self._active.add(id(node))
            try:
                return self._mapping(node, path)
            finally:
                self._active.discard(id(node))
        if isinstance(node, yaml.SequenceNode):
            self._active.add(id(node))
            try:
                return [self.construct(v, f"{path}[{i}]") for i, v in enumerate(node.value)]
            finally:
                self._active.discard(id(node))
        return self._scalar(node)

    def _mapping(self, node: Any, path: str) -> dict[str, Any]:
        import yaml

        out: dict[str, Any] = {}
        for knode, vnode in node.value:  # merge keys first: keys written out override them
            if knode.tag != "tag:yaml.org,2002:merge":
                continue
            sources = vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]
            for src in sources:
                if not isinstance(src, yaml.MappingNode):
                    self._problem("<< merges a mapping or a list of mappings", knode, _join(path, "<<"))
                    continue
                for key, value in self.construct(src, path).items():
                    out.setdefault(key, value)  # of several merged mappings, the first wins
        seen: dict[str, int] = {}
        for knode, vnode in node.value:
            if knode.tag == "tag:yaml.org,2002:merge":
                continue
            line = knode.start_mark.line + 1
            if not isinstance(knode, yaml.ScalarNode):
                self._problem("a key must be a plain value", knode, path)
                continue
            key = str(self._scalar(knode))
            sub = _join(path, key)
            if key in seen:
                self._problem(f"duplicate key (first on line {seen[key]})", knode, sub)
                continue
            seen[key] = line
            self.by_path[sub] = line
            out[key] = self.construct(vnode, sub)
        return out

    def _scalar(self, node: Any) -> Any:
        import yaml

        try:
            return self._loader.construct_object(node, deep=True)
        except yaml.YAMLError as e:
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            self._problem(f"cannot read this value: {problem}", node, "")
            return None

    def _problem(self, reason: str, node: Any, key: str) -> None:
        self.problems.append(ConfigError(reason, self.file, node.start_mark.line + 1, key or None))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _parse_yaml(path: Path, raw: bytes) -> tuple[dict[str, Any], dict[str, int], list[ConfigError]]:
    """Data, the line of every key path, and the problems of the YAML itself (duplicate keys ...)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"cannot read: not UTF-8 ({e.reason} at byte {e.start})", str(path))
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"invalid YAML: {problem}", str(path), mark.line + 1 if mark else None)
    except RecursionError:
        raise ConfigError("invalid YAML: nested too deeply", str(path))
    lines = _Lines(str(path))
    try:
        data = lines.construct(node, "") if node is not None else {}
    except RecursionError:
        raise ConfigError("nested too deeply", str(path))
    finally:
        lines.close()
    if not isinstance(data, dict):
        raise ConfigError("the config must be a mapping of keys (parsers, filters, processors, ...)", str(path), 1)
    return data, lines.by_path, lines.problems


# --- loading -------------------------------------------------------------------------


def load(source: str | Path | Mapping[str, Any] | None, *, cache: bool = True) -> Config:
    """A Config from a YAML file path or an already-parsed mapping.

    ``cache=False`` neither reads nor writes the parsed-config cache (``check-config``:
    checks everything afresh and creates nothing).
    """
    if source is None or isinstance(source, Mapping):
        data = dict(source or {})
        return build(data, None, Path.cwd(), {})
    path = Path(source).expanduser()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("no such file", str(path))
    except IsADirectoryError:
        raise ConfigError("a folder, not a config file", str(path))
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror or e}", str(path))
    stamp = _stamp(path) if cache else None
    cached = _cache_get(path, raw, stamp)
    base = path.resolve().parent
    yaml_problems: list[ConfigError] = []
    if cached is not None:
        data, by_path, checked = cached
        if checked is not None and checked.get("code") == _code_stamp():
            return build(data, str(path), base, by_path, checked=checked)
    else:
        data, by_path, yaml_problems = _parse_yaml(path, raw)
    record: dict[str, Any] = {}
    try:
        return build(data, str(path), base, by_path, record=record, problems=yaml_problems)
    finally:
        # YAML with problems (a duplicate key) is never cached: its data hides them.
        if stamp is not None and not yaml_problems and (cached is None or record):
            _cache_put(path, raw, stamp, data, by_path, record or None)


def build(data: dict[str, Any], file: str | None, base: Path, lines: Mapping[str, int],
          checked: Mapping[str, Any] | None = None, record: dict[str, Any] | None = None,
          problems: list[ConfigError] | None = None) -> Config:
    """The Config for parsed data; ConfigErrors with every problem.

    ``checked``: the record of an earlier successful check of the same data with the same
    code; then only the file checks are redone. ``record``: filled with such a record when
    every stage is built in and the check succeeds.
    """
    problems = list(problems or [])

    def err(message: str, key: str, path: str | None = None) -> None:
        problems.append(ConfigError(message, file, _line(lines, path or key), key))

    for key in data:
        if key not in TOP_KEYS and not str(key).startswith("x-"):
            err(f"unknown key (known: {', '.join(TOP_KEYS)}; x-… keys are free, e.g. for YAML anchors)", str(key))
    groups: dict[str, list[Stage]] = {}
    for key, kind in _GROUPS:
        value = data.get(key)
        if key == "parsers" and "parsers" not in data:
            value = _default_chain(checked, record)
        groups[key] = _stages(kind, key, value, err, lines)
    reader = None
    if groups["reader"]:
        if len(groups["reader"]) != 1:
            err("name exactly one reader", "reader")
        reader = groups["reader"][0]
    quarantine = data.get("quarantine") or QUARANTINE.default
    if not isinstance(quarantine, str):
        err("must be the path of a folder", "quarantine")
        quarantine = QUARANTINE.default
    qpath = Path(quarantine).expanduser()
    if not qpath.is_absolute():
        qpath = base / qpath
    defaults = data.get("defaults")
    if defaults is None:
        defaults = {}
    if not isinstance(defaults, dict):
        err("must be a mapping of defaults (zone, date_fallback, max_bytes, timeout, max_memory)", "defaults")
        defaults = {}
    found, _ = check_options(DEFAULTS, defaults)
    for key, reason in found:
        err(reason, f"defaults.{key}")
    notify_needs: list[tuple[str, str, str, int | None]] = []
    if data.get("notify") is not None and checked is None:   # a checked config was checked with it
        from . import notify

        section = data["notify"]
        if not isinstance(section, dict):
            err("must be a mapping (from, to, default, never, subject, body, period, smtp …)", "notify")
        else:
            found, need_list = check_options(notify.OPTIONS, section, base, rules=notify.check_rules)
            for key, reason in found:
                err(reason, f"notify.{key}")
            notify_needs = [(kind, path, f"notify.{key}", _line(lines, f"notify.{key}"))
                            for kind, path, key in need_list]
    cfg = Config(file, base, groups["parsers"], groups["filters"], groups["processors"], reader, qpath,
                 dict(defaults), data)
    stages = cfg.parsers + cfg.filters + cfg.processors + ([reader] if reader else [])
    if checked is not None:
        needs = [tuple(n) for n in checked.get("needs", [])]
    else:
        needs = [("folder", str(qpath), "quarantine", _line(lines, "quarantine")), *notify_needs]
        for st in stages:
            for key, problem, need_list in _check_stage(st, base):
                if problem:
                    problems.append(ConfigError(problem, file, _line(lines, f"{st.where}.{key}", st.line),
                                                f"{st.label}.{key}" if key else st.label))
                for kind, path, nkey in need_list:
                    needs.append((kind, path, f"{st.label}.{nkey}",
                                  _line(lines, f"{st.where}.{nkey}", st.line)))
    for kind, path, key, line in needs:
        for _, reason in check_needs([(kind, path, key)]):
            problems.append(ConfigError(reason, file, line, key))
    if problems:
        raise ConfigErrors(problems)
    if record is not None and checked is None and all(s.name in registry.BUILTINS[s.kind] for s in stages):
        record.update(code=_code_stamp(), needs=[list(n) for n in needs])
    return cfg


def _default_chain(checked: Mapping[str, Any] | None, record: dict[str, Any] | None) -> list[str]:
    """The parser chain of a config that names none: every built-in and plugin parser by priority.

    Ordering them means importing every parser class; a config checked before (same abuso code,
    same installed plugins) keeps the order it recorded, so ``query`` or ``check-config`` import none.
    """
    plugins = registry.plugin_names("parsers")
    if checked is not None and checked.get("plugins") == plugins and isinstance(checked.get("chain"), list):
        chain = [str(n) for n in checked["chain"]]
    else:
        chain = list(registry.default_parsers())
    if record is not None:
        record.update(plugins=plugins, chain=chain)
    return chain


def _line(lines: Mapping[str, int], path: str, fallback: int | None = None) -> int | None:
    """The line of a key path, else of the nearest enclosing key that has one."""
    while path:
        line = lines.get(path)
        if line is not None:
            return line
        if fallback is not None:
            return fallback
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return fallback


def _stages(kind: str, key: str, value: Any, err: Any, lines: Mapping[str, int]) -> list[Stage]:
    """Accept ``[a, b]``, ``[{a: {...}}, b]`` or ``{a: {...}, b: {...}}`` (order kept)."""
    items: list[tuple[Any, Any, str]] = []
    if value is None:
        return []
    if isinstance(value, dict):
        items = [(n, o, f"{key}.{n}") for n, o in value.items()]
    elif isinstance(value, list) and key != "reader":
        for i, entry in enumerate(value):
            where = f"{key}[{i}]"
            if isinstance(entry, str):
                items.append((entry, {}, where))
            elif isinstance(entry, dict) and len(entry) == 1:
                (n, o), = entry.items()
                items.append((n, o, f"{where}.{n}"))
            else:
                err("each entry is a name or a one-key mapping {name: {options}}", key, where)
    elif key == "reader":
        err("must be a mapping {imap: {options}} or {pop3: {options}}", key)
    else:
        example = {"parsers": "[arf, log]", "filters": "{ip: {within: [192.0.2.0/24]}}",
                   "processors": "[{store: {path: ~/abuso/store}}, explain]"}[key]
        err(f"must be a list (or a mapping) of {key}, e.g. {key}: {example}, not {value!r}", key)
        return []
    stages = []
    for name, options, where in items:
        name = str(name)
        if not registry.exists(kind, name):
            err(f"unknown {kind[:-1]} {name!r} (known: {', '.join(registry.names(kind))})", f"{key}.{name}", where)
            continue
        if options is None:
            options = {}
        if not isinstance(options, dict):
            err("options must be a mapping (use {} for none)", f"{key}.{name}", where)
            continue
        stages.append(Stage(kind, name, options, _line(lines, where), where))
    return stages


def _check_stage(st: Stage, base: Path) -> list[tuple[str, str | None, list]]:
    """(key, reason, needs) for a stage: its problems, and the file checks to redo at every start."""
    try:
        cls = registry.load(st.kind, st.name)
    except Exception as e:
        if st.name in registry.BUILTINS[st.kind]:  # abuso itself is broken: not the config's fault
            from .errors import internal_error

            raise internal_error(f"{st.kind[:-1]} {st.name}", e)
        return [("", f"cannot load {st.name!r}: {type(e).__name__}: {e}", [])]  # a third-party stage
    declared = getattr(cls, "OPTIONS", None)
    if isinstance(declared, tuple) and all(isinstance(o, Option) for o in declared) \
            and hasattr(cls, "option_problems"):
        problems, needs = cls.option_problems(st.options, base)
        return [(k, r, []) for k, r in problems] + [("", None, needs)]
    legacy = getattr(cls, "check_options", None)  # a stage without declarations, checking itself
    if legacy is None:
        return []
    try:
        legacy(st.options)
    except ConfigError as e:
        return [(e.key or "", e.bare, [])]
    except (TypeError, ValueError) as e:
        return [("", str(e), [])]
    return []


# --- parsed-config cache ------------------------------------------------------
# Importing PyYAML costs ~14 ms of every piped message; the parsed config (plain
# data and key lines, marshalled) is kept in the user's cache folder. An entry is used
# only for the same path with the same size, mtime, ctime and inode: any write
# to the config changes ctime, which users cannot set back.
# With it goes the record of a successful check (with the stamp of abuso's own
# code): a config checked before needs no stage module imported to be checked
# again; only its file checks (missing files, unwritable folders) are redone.


def _cache_file(path: Path) -> Path | None:
    import os
    from binascii import crc32  # = zlib.crc32; binascii is loaded already (base64)

    if os.environ.get("ABUSO_NO_CACHE"):
        return None
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    key = crc32(str(path.resolve()).encode("utf-8", "surrogateescape"))
    return Path(root) / "abuso" / f"config-{key:08x}.marshal"  # not JSON: text output then imports no json


def _stamp(path: Path) -> list[Any] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


_CODE: list[str] = []


def _code_stamp() -> str:
    """Size and mtime of every module of abuso (the checks' code), and HOME (``~`` in paths)."""
    if _CODE:
        return _CODE[0]
    import os
    from binascii import crc32  # = zlib.crc32; binascii is loaded already (base64)

    root = os.path.dirname(os.path.abspath(__file__))
    parts = [os.environ.get("HOME", "")]
    for folder in ("", "parsers", "filters", "processors", "processors/mailer", "readers", "radius", "storage",
                   "notify"):
        try:
            with os.scandir(os.path.join(root, folder)) as entries:
                for e in entries:
                    if e.name.endswith(".py"):
                        st = e.stat()
                        parts.append(f"{folder}/{e.name}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{folder}:?")
    _CODE.append(f"{crc32(chr(0).join(sorted(parts)).encode('utf-8', 'surrogateescape')):08x}")
    return _CODE[0]


def _cache_get(path: Path, raw: bytes, stamp: list[Any] | None
               ) -> tuple[dict[str, Any], dict[str, int], dict[str, Any] | None] | None:
    import marshal

    file = _cache_file(path)
    if file is None or stamp is None:
        return None
    try:
        entry = marshal.loads(file.read_bytes())
        if entry.get("stamp") != stamp or entry.get("size") != len(raw):
            return None
        checked = entry.get("checked")
        return entry["data"], {k: int(v) for k, v in entry["lines"].items()}, checked
    except (OSError, ValueError, EOFError, KeyError, TypeError, AttributeError):
        return None


def _cache_put(path: Path, raw: bytes, stamp: list[Any] | None, data: dict[str, Any],
               by_path: dict[str, int], checked: dict[str, Any] | None = None) -> None:
    import marshal
    import os
    import tempfile

    file = _cache_file(path)
    # The stamp is taken before reading: if the file changed meanwhile, cache nothing.
    if file is None or stamp is None or _stamp(path) != stamp or stamp[1] != len(raw):
        return
    try:
        entry: dict[str, Any] = {"stamp": stamp, "size": len(raw), "data": data, "lines": by_path}
        if checked:
            entry["checked"] = checked
        text = marshal.dumps(entry)  # YAML dates and the like: ValueError, not cached
        if marshal.loads(text)["data"] != data:
            return
        file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(text)
        os.replace(tmp, file)
        _prune(file.parent)
    except (OSError, TypeError, ValueError):
        pass  # a cache that cannot be written is only slower


#: Entries kept in the config cache (one per config path); the least recently written go first.
CACHE_ENTRIES = 64


def _prune(folder: Path) -> None:
    """Bound the cache: a host that checks many configs (tests, a config per customer) must not fill it."""
    import os

    keep = CACHE_ENTRIES
    entries = []
    with os.scandir(folder) as it:
        for e in it:
            if e.name.startswith("config-") and e.name.endswith((".marshal", ".json")):
                try:
                    entries.append((e.stat().st_mtime_ns, e.path))
                except OSError:
                    continue
    if len(entries) <= keep:
        return
    entries.sort(reverse=True)
    for _, path in entries[keep:]:
        try:
            os.unlink(path)
        except OSError:
            pass
