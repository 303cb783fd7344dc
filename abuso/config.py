"""Load and validate the YAML config; every error names file, line and key.

The keys are a public contract (design.md): ``parsers``, ``filters``,
``processors``, ``reader``, plus ``quarantine`` and ``defaults``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from . import registry
from .errors import ConfigError

TOP_KEYS = {"parsers", "filters", "processors", "reader", "quarantine", "defaults"}
DEFAULT_KEYS = {"zone", "date_fallback", "max_bytes", "timeout"}


@dataclass
class Stage:
    kind: str
    name: str
    options: dict[str, Any]
    line: int | None = None


@dataclass
class Config:
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


# --- option checks shared by stages (raise ConfigError naming the key) ----------


def check_known(options: Mapping[str, Any], known: set[str] | frozenset[str]) -> None:
    for key in options:
        if key not in known:
            raise ConfigError(f"unknown option (expected one of: {', '.join(sorted(known))})", key=key)


def check_positive_ints(options: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        value = options.get(key)
        if key in options and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ConfigError("must be a positive whole number", key=key)


def check_durations(options: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    from .durations import parse_duration

    for key in keys:
        if key in options:
            try:
                parse_duration(options[key])
            except ValueError as e:
                raise ConfigError(str(e), key=key)


def _fmt(options: Mapping[str, Any]) -> str:
    hidden = {k: ("***" if "password" in k and "file" not in k else v) for k, v in options.items()}
    return str(hidden) if hidden else "{}"


class _Lines:
    """Remembers the line of every key path while YAML is turned into data."""

    def __init__(self) -> None:
        self.by_path: dict[str, int] = {}

    def construct(self, node: Any, path: str) -> Any:
        import yaml

        self.by_path.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for knode, vnode in node.value:
                key = str(self._scalar(knode))
                sub = f"{path}.{key}" if path else key
                self.by_path[sub] = knode.start_mark.line + 1
                out[key] = self.construct(vnode, sub)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.construct(v, f"{path}[{i}]") for i, v in enumerate(node.value)]
        return self._scalar(node)

    @staticmethod
    def _scalar(node: Any) -> Any:
        import yaml

        if isinstance(node, yaml.ScalarNode):
            return _construct_scalar(node)
        raise ConfigError("a key must be a plain value")


def _construct_scalar(node: Any) -> Any:
    import yaml

    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def load(source: str | Path | Mapping[str, Any] | None) -> Config:
    """A Config from a YAML file path or an already-parsed mapping."""
    if source is None or isinstance(source, Mapping):
        data = dict(source or {})
        return build(data, None, Path.cwd(), {})
    path = Path(source).expanduser()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("no such file", str(path))
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror or e}", str(path))
    stamp = _stamp(path)
    cached = _cache_get(path, raw, stamp)
    if cached is not None:
        data, by_path = cached
    else:
        data, by_path = _parse_yaml(path, raw)
        _cache_put(path, raw, stamp, data, by_path)
    return build(data, str(path), path.resolve().parent, by_path)


def _parse_yaml(path: Path, raw: bytes) -> tuple[dict[str, Any], dict[str, int]]:
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
    lines = _Lines()
    data = lines.construct(node, "") if node is not None else {}
    if not isinstance(data, dict):
        raise ConfigError("the config must be a mapping of keys (parsers, filters, processors, ...)", str(path), 1)
    return data, lines.by_path


# --- parsed-config cache ------------------------------------------------------
# Importing PyYAML costs ~14 ms of every piped message; the parsed config (plain
# JSON data and key lines) is kept in the user's cache folder. An entry is used
# only for the same path with the same size, mtime, ctime and inode: any write
# to the config changes ctime, which users cannot set back.


def _cache_file(path: Path) -> Path | None:
    import os
    import zlib

    if os.environ.get("ABUSO_NO_CACHE"):
        return None
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    key = zlib.crc32(str(path.resolve()).encode("utf-8", "surrogateescape"))
    return Path(root) / "abuso" / f"config-{key:08x}.json"


def _stamp(path: Path) -> list[Any] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _cache_get(path: Path, raw: bytes, stamp: list[Any] | None) -> tuple[dict[str, Any], dict[str, int]] | None:
    import json

    file = _cache_file(path)
    if file is None or stamp is None:
        return None
    try:
        entry = json.loads(file.read_bytes())
        if entry.get("stamp") != stamp or entry.get("size") != len(raw):
            return None
        return entry["data"], {k: int(v) for k, v in entry["lines"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _cache_put(path: Path, raw: bytes, stamp: list[Any] | None, data: dict[str, Any],
               by_path: dict[str, int]) -> None:
    import json
    import os
    import tempfile

    file = _cache_file(path)
    # The stamp is taken before reading: if the file changed meanwhile, cache nothing.
    if file is None or stamp is None or _stamp(path) != stamp or stamp[1] != len(raw):
        return
    try:
        text = json.dumps({"stamp": stamp, "size": len(raw), "data": data, "lines": by_path})
        if json.loads(text)["data"] != data:  # YAML dates and the like do not survive JSON: do not cache
            return
        file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, file)
    except (OSError, TypeError, ValueError):
        pass  # a cache that cannot be written is only slower


def build(data: dict[str, Any], file: str | None, base: Path, lines: Mapping[str, int]) -> Config:
    def err(message: str, key: str) -> ConfigError:
        line = lines.get(key)
        if line is None and "." in key:
            line = lines.get(key.rsplit(".", 1)[0])
        return ConfigError(message, file, line, key)

    for key in data:
        if key not in TOP_KEYS:
            raise err(f"unknown key (expected one of: {', '.join(sorted(TOP_KEYS))})", key)

    parsers = _stages("parsers", data["parsers"] if "parsers" in data else registry.default_parsers(), err, lines)
    filters = _stages("filters", data.get("filters") or {}, err, lines)
    processors = _stages("processors", data.get("processors") or [], err, lines)
    reader = None
    if data.get("reader") is not None:
        rs = _stages("readers", data["reader"], err, lines, key="reader")
        if len(rs) != 1:
            raise err("name exactly one reader", "reader")
        reader = rs[0]
    quarantine = data.get("quarantine", "~/abuso/quarantine")
    if not isinstance(quarantine, str):
        raise err("must be a folder path", "quarantine")
    qpath = Path(quarantine).expanduser()
    if not qpath.is_absolute():
        qpath = base / qpath
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise err("must be a mapping", "defaults")
    for k in defaults:
        if k not in DEFAULT_KEYS:
            raise err(f"unknown key (expected one of: {', '.join(sorted(DEFAULT_KEYS))})", f"defaults.{k}")
    if "zone" in defaults:
        from .zones import check_zone

        try:
            check_zone(defaults["zone"])  # offsets, abbreviations and regions (Europe/Berlin: DST-aware)
        except ValueError as e:
            raise err(str(e), "defaults.zone")
    cfg = Config(file, base, parsers, filters, processors, reader, qpath, dict(defaults), data)
    _check_stage_options(cfg, err)
    return cfg


def _stages(kind: str, value: Any, err: Any, lines: Mapping[str, int], key: str | None = None) -> list[Stage]:
    """Accept ``[a, b]``, ``[{a: {...}}, b]`` or ``{a: {...}, b: {...}}`` (order kept)."""
    key = key or kind
    items: list[tuple[str, Any, str]] = []
    if isinstance(value, str):
        value = [value]
    if isinstance(value, dict):
        items = [(n, o, f"{key}.{n}") for n, o in value.items()]
    elif isinstance(value, list):
        for i, entry in enumerate(value):
            where = f"{key}[{i}]"
            if isinstance(entry, str):
                items.append((entry, {}, where))
            elif isinstance(entry, dict) and len(entry) == 1:
                (n, o), = entry.items()
                items.append((n, o, f"{where}.{n}"))
            else:
                raise err("each entry is a name or a one-key mapping {name: {options}}", where)
    else:
        raise err("must be a list of names or a mapping of name: options", key)
    stages = []
    for name, options, where in items:
        if not registry.exists(kind, name):
            known = registry.names(kind)
            raise err(f"unknown {kind[:-1]} {name!r} (known: {', '.join(known)})", where)
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise err("options must be a mapping (use {} for none)", where)
        stages.append(Stage(kind, name, options, lines.get(where)))
    return stages


def _check_stage_options(cfg: Config, err: Any) -> None:
    """Let each stage class validate its options early (``check_options`` classmethod)."""
    for group, stages in (("parsers", cfg.parsers), ("filters", cfg.filters), ("processors", cfg.processors),
                          ("reader", [cfg.reader] if cfg.reader else [])):
        for st in stages:
            try:
                cls = registry.load(st.kind, st.name)
            except ImportError as e:
                raise err(f"cannot load {st.name!r}: {e}", f"{group}.{st.name}")
            check = getattr(cls, "check_options", None)
            if check is None:
                continue
            try:
                check(st.options)
            except ConfigError as e:
                raise ConfigError(e.bare, cfg.file, st.line, f"{group}.{st.name}" + (f".{e.key}" if e.key else ""))
            except (TypeError, ValueError) as e:
                raise ConfigError(str(e), cfg.file, st.line, f"{group}.{st.name}")
