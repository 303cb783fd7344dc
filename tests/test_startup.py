"""Piped start-up: what a procmail-run ``abuso run -c CONFIG < message`` imports (issue 8; timing is in bench/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from abuso.lazy import import_deferring

from .conftest import ROOT

#: Run the CLI's piped path, then print on stderr which of the watched modules were imported.
PROBE = """
import atexit, sys
watched = sys.argv[1].split(",")
found = lambda: sorted(m for m in watched if m in sys.modules)
atexit.register(lambda: sys.stderr.write("MODULES " + repr(found()).replace("'", '"') + "\\n"))
sys.path.insert(0, sys.argv[2])
sys.argv = ["abuso", "run", "-c", sys.argv[3]]
from abuso.cli import main
main()
"""

#: Modules a piped message must not pay for: click (the full command line), inspect (dataclasses'
#: docstrings), traceback (logging's, for formatting exceptions), socket and signal (their enums), calendar,
#: PyYAML once the config is cached (X-ARF reports are YAML: they need it); hashlib (~5 ms, OpenSSL: the store
#: digests a process's first message with the interpreter's own SHA-256); zlib (CSV archives only; the caches
#: name files by binascii.crc32);
#: typing (~8 ms; abuso's annotations are strings, its typing names imported under TYPE_CHECKING only);
#: logging and threading when nothing is to be logged (abuso.logs; zipfile imports threading); json with text
#: output and no store (the caches are marshal); bs4 (~60 ms), HTML being read with html.parser alone.
NOT_IMPORTED = ("click", "inspect", "traceback", "socket", "signal", "secrets", "calendar", "yaml", "hashlib", "zlib",
                "typing", "logging", "threading", "json", "bs4")


def piped_modules(config: Path, message: bytes, watched: tuple[str, ...], cache: Path) -> list[str]:
    env = {"XDG_CACHE_HOME": str(cache), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c", PROBE, ",".join(watched), str(ROOT), str(config)], input=message,
                       capture_output=True, timeout=120, env=env)
    assert r.returncode in (0, 65), r.stderr
    line = [x for x in r.stderr.decode().splitlines() if x.startswith("MODULES ")][-1]
    return json.loads(line[len("MODULES "):])


def samples() -> list[Path]:
    """The first sample of every kind (ARF, X-ARF, CSV, logs, prose ...), and an HTML-only notice."""
    first = [sorted(d.glob("*.eml"))[0] for d in sorted((ROOT / "samples").iterdir()) if list(d.glob("*.eml"))]
    return first + [ROOT / "samples" / "forwarded" / "html-only-portscan.eml"]


@pytest.mark.parametrize("store", [False, True], ids=["plain", "store"])
def test_a_piped_message_imports_neither_click_nor_inspect_nor_yaml(tmp_path: Path, store: bool) -> None:
    config = tmp_path / "abuso.yaml"
    lines = [f"quarantine: {tmp_path / 'q'}", "processors:", f"  - table: {{file: {ROOT / 'etc' / 'networks.txt'}}}"]
    if store:
        lines.append(f"  - store: {{path: {tmp_path / 'store'}}}")
    config.write_text("\n".join(lines) + "\n")
    cache = tmp_path / "cache"
    piped_modules(config, b"From: a@example.org\nSubject: x\n\nhello\n", (), cache)  # fills the config cache
    for sample in samples():
        watched = tuple(m for m in NOT_IMPORTED if not (m == "yaml" and sample.parent.name == "xarf")
                        and not (m == "json" and store)
                        and not (m == "threading" and b"zip" in sample.read_bytes()))
        assert piped_modules(config, sample.read_bytes(), watched, cache) == [], sample


def test_dataclasses_imported_with_a_deferred_inspect_still_work() -> None:
    code = """
import sys
from abuso.lazy import import_deferring
import_deferring("dataclasses", ("inspect",))
assert "inspect" not in sys.modules
import dataclasses
@dataclasses.dataclass
class Documented:
    '''Has a docstring: inspect stays unimported.'''
    a: int
assert "inspect" not in sys.modules and Documented(1) == Documented(1)
@dataclasses.dataclass
class Bare:
    b: int = 2
assert Bare.__doc__ == "Bare(b: int = 2)", Bare.__doc__
assert "inspect" in sys.modules
import inspect
assert inspect.signature(Bare) is not None
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_import_deferring_leaves_an_imported_module_alone() -> None:
    import dataclasses

    import_deferring("dataclasses", ("inspect",))
    assert sys.modules["dataclasses"] is dataclasses


#: Compiles patterns and dataclasses under abuso.startcache, prints what they are and do.
CACHED = r"""
import json, re, sys
sys.path.insert(0, sys.argv[1])
from abuso import startcache
assert startcache.install()
import dataclasses
patterns = [(r"(?P<ip>\d{1,3}(?:\.\d{1,3}){3})\s+port\s+(\d+)", 0), (r"^from\b.*?$", re.I | re.M),
            (rb"\x00(?P<b>[^\x00]*)\x00", 0), (r"caf\u00e9|na\u00efve|\w+@\w+", re.U), (r"(a)|b", re.X)]
out = []
from abuso.lazy import lazy_compile
for p, f in patterns:
    rx = lazy_compile(p, f).compiled()
    assert rx == re.compile(p, f)
    text = "Caf\u00e9 1.2.3.4 port 25 x@y\nfrom a\nFROM b" if isinstance(p, str) else b"\x00ab\x00"
    out.append([rx.pattern if isinstance(p, str) else rx.pattern.decode(), rx.flags, rx.groups,
                dict(rx.groupindex), [m.span() for m in rx.finditer(text)]])
@dataclasses.dataclass(frozen=True)
class Point:
    '''A point.'''
    x: int
    y: int = 2
p = Point(1)
out.append([repr(p), p == Point(1, 2), hash(p) == hash(Point(1)), dataclasses.replace(p, y=5).y])
print(json.dumps(out))
"""


def test_cached_regexes_and_dataclasses_are_the_same_as_compiled_ones(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    runs = [subprocess.run([sys.executable, "-c", CACHED, str(ROOT)], capture_output=True, text=True,
                           env={**env, **extra}, timeout=60) for extra in ({"ABUSO_NO_CACHE": "1"}, {}, {})]
    assert [r.returncode for r in runs] == [1, 0, 0], runs[0].stderr  # no cache: install() says so
    assert list((tmp_path / "cache" / "abuso").glob("compiled-*.marshal"))
    cold, warm = json.loads(runs[1].stdout), json.loads(runs[2].stdout)
    assert cold == warm
    assert warm[0] == ["(?P<ip>\\d{1,3}(?:\\.\\d{1,3}){3})\\s+port\\s+(\\d+)", 32, 2, {"ip": 1}, [[5, 20]]]
    assert warm[-1] == ["Point(x=1, y=2)", True, True, 5]


def test_a_damaged_cache_file_is_compiled_afresh(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    first = subprocess.run([sys.executable, "-c", CACHED, str(ROOT)], capture_output=True, text=True, env=env)
    for f in (tmp_path / "cache" / "abuso").glob("compiled-*.marshal"):
        f.write_bytes(f.read_bytes()[:1000])
    again = subprocess.run([sys.executable, "-c", CACHED, str(ROOT)], capture_output=True, text=True, env=env)
    assert again.returncode == 0 and again.stdout == first.stdout, again.stderr


def test_piped_output_is_the_same_with_a_cold_and_a_warm_start_cache(tmp_path: Path) -> None:
    config = tmp_path / "abuso.yaml"
    table = ROOT / "etc" / "networks.txt"
    config.write_text(f"quarantine: {tmp_path / 'q'}\nprocessors:\n  - table: {{file: {table}}}\n")
    for sample in samples():
        outputs = []
        for extra in ({"ABUSO_NO_CACHE": "1"}, {}, {}):
            env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", **extra}
            r = subprocess.run([sys.executable, str(ROOT / "bin" / "abuso"), "run", "-c", str(config), "-f", "json"],
                               input=sample.read_bytes(), capture_output=True, env=env, timeout=120)
            outputs.append((r.returncode, r.stdout))
        assert outputs[0] == outputs[1] == outputs[2], sample
    # Only what every process compiles alike is kept: running the samples again adds nothing.
    kept = {f: f.read_bytes() for f in (tmp_path / "cache" / "abuso").glob("compiled-*.marshal")}
    assert kept
    for sample in samples():
        env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
        subprocess.run([sys.executable, str(ROOT / "bin" / "abuso"), "run", "-c", str(config)],
                       input=sample.read_bytes(), capture_output=True, env=env, timeout=120)
    assert {f: f.read_bytes() for f in kept} == kept


TRIGGERS = r"""
import sys
sys.path.insert(0, sys.argv[1])
from abuso import startcache
startcache.install()
from abuso import taxonomy
import re
re.purge()
import re._parser as parser
calls = []
original = parser.parse
parser.parse = lambda *a: calls.append(a) or original(*a)
found = [taxonomy._required_literals(rx) for _, rx in taxonomy.KEYWORD_RULES]
print(len(calls))
print(repr(found))
"""


def test_the_keyword_rules_literals_are_the_same_from_the_start_cache(tmp_path: Path) -> None:
    from abuso import taxonomy

    expected = repr([taxonomy._required_literals(rx) for _, rx in taxonomy.KEYWORD_RULES])
    assert "lazy_compile(" in expected
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    cold, warm = (subprocess.run([sys.executable, "-c", TRIGGERS, str(ROOT)], capture_output=True, text=True,
                                 env=env, timeout=60).stdout.splitlines() for _ in range(2))
    assert int(cold[0]) >= len(taxonomy.KEYWORD_RULES) and int(warm[0]) == 0  # the warm start parses none
    assert cold[1] == warm[1] == expected


def test_lazy_import_imports_on_first_use_and_says_a_missing_module_then() -> None:
    from abuso.lazy import lazy_import

    code = """
import sys
from abuso.lazy import lazy_import
tabnanny = lazy_import("tabnanny")
assert "tabnanny" not in sys.modules
assert tabnanny.NannyNag.__name__ == "NannyNag" and "tabnanny" in sys.modules
missing = lazy_import("abuso_no_such_module")
try:
    missing.anything
except ImportError:
    print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
    assert lazy_import("json") is sys.modules["json"]  # already imported: the module itself


#: Imports a module whose body compiles patterns (one fixed, one built from a set, one in a function)
#: under abuso.startcache, prints what was compiled from scratch and what the patterns find.
AT_IMPORT = r"""
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from abuso import startcache
assert startcache.install()
import re._compiler as compiler, re._parser as parser
parsed = []
original = parser.parse
parser.parse = lambda p, *a: parsed.append(p) or original(p, *a)
import patterns_at_import as m
m.later("a-0")
print(json.dumps([sorted(x for x in parsed if isinstance(x, str)), m.FIXED.findall("ab12 cd345"),
                  bool(m.FROM_SET.match("xyz")), m.later("b-1").pattern, m.Kind.WORD.findall("a bc")]))
"""

MODULE = '''
import re
FIXED = re.compile(r"[a-z]+(\\d+)")
FROM_SET = re.compile("[" + "".join({"x", "y", "z", "w", "v", "u"}) + "]+")
class Kind:
    WORD = re.compile(r"(?:fixed-in-a-class)?\\w+")
def later(boundary):
    return re.compile(re.escape(boundary) + "--")
class Made:
    def __init_subclass__(cls):
        cls.rx = later("made-at-import")
class Sub(Made):
    pass
'''


def test_patterns_compiled_as_a_module_is_imported_come_from_the_start_cache(tmp_path: Path) -> None:
    (tmp_path / "patterns_at_import.py").write_text(MODULE)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    runs = []
    for seed in range(6):
        r = subprocess.run([sys.executable, "-c", AT_IMPORT, str(ROOT), str(tmp_path)], capture_output=True,
                           text=True, env={**env, "PYTHONHASHSEED": str(seed)}, timeout=60)
        assert r.returncode == 0, r.stderr
        runs.append(json.loads(r.stdout))
    assert all(run[1:] == [["12", "345"], True, "b\\-1--", ["a", "bc"]] for run in runs)
    first, later = runs[0][0], [run[0] for run in runs[2:]]
    fixed = (r"[a-z]+(\d+)", r"(?:fixed-in-a-class)?\w+", r"made\-at\-import--")
    assert all(p in first for p in fixed)
    for compiled in later:  # those compiled on import from the cache; the set's and the run's every time
        assert not any(p in compiled for p in fixed)
        assert "a\\-0--" in compiled and any(p.startswith("[") and p.endswith("]+") for p in compiled)
    kept = {f: f.read_bytes() for f in (tmp_path / "cache" / "abuso").glob("compiled-*.marshal")}
    subprocess.run([sys.executable, "-c", AT_IMPORT, str(ROOT), str(tmp_path)], capture_output=True,
                   env={**env, "PYTHONHASHSEED": "99"}, timeout=60)
    assert {f: f.read_bytes() for f in kept} == kept  # a pattern from a set does not grow the file


QUIET_LOG = r"""
import sys
sys.path.insert(0, sys.argv[1])
from abuso.logs import INFO, Logger, enabled, setup
assert setup() is None and "logging" not in sys.modules
Logger("abuso.run").log(40, "dropped: nothing is to be logged")
assert not enabled(INFO) and "logging" not in sys.modules
import logging  # a plugin's, say: the abuso logger is made quiet as setup() would have made it
log = logging.getLogger("abuso")
assert log.propagate is False and log.level == logging.WARNING, (log.propagate, log.level)
assert [type(h).__name__ for h in log.handlers] == ["NullHandler"]
logging.getLogger("abuso.plugin").warning("never on stderr (not logging's last resort)")
Logger("abuso.run").log(40, "nor this")
print("ok")
"""


def test_a_quiet_log_is_configured_when_logging_is_imported_later() -> None:
    r = subprocess.run([sys.executable, "-c", QUIET_LOG, str(ROOT)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok" and r.stderr == "", r.stderr
