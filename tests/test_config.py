import os
import subprocess
import sys
from pathlib import Path

import pytest

from abuso import registry
from abuso.config import DEFAULTS, load
from abuso.errors import ConfigError, ConfigErrors
from abuso.options import TYPES, Option, check_options

from .conftest import ROOT


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "abuso.yaml"
    p.write_text(text)
    return p


def problems(p: Path, **kw) -> list[str]:
    """Every problem of the config at ``p``, as ``line: key: reason`` (the file name left out)."""
    with pytest.raises(ConfigError) as e:
        load(p, **kw)
    assert e.value.status == 78
    errors = e.value.errors if isinstance(e.value, ConfigErrors) else [e.value]
    assert all(err.file == str(p) for err in errors)
    return [str(err)[len(f"{p}:"):] for err in errors]


def test_errors_name_file_line_and_key(tmp_path):
    p = write(tmp_path, "parsers: []\nfilters:\n  ip:\n    within: [192.0.2.0/24, not-a-net]\n")
    with pytest.raises(ConfigError) as e:
        load(p)
    assert str(e.value) == f"{p}:4: filters.ip.within[1]: must be a network such as 192.0.2.0/24, not 'not-a-net'"


def test_every_problem_at_once_each_at_the_line_of_its_own_key(tmp_path):
    p = write(tmp_path, "parsers: [log]\n"
                        "\n"
                        "filters: {}\n"
                        "\n"
                        "processors:\n"
                        "  - radius:\n"                          # line 6: the processor
                        "      detail: /nonexistent/radacct\n"
                        "      grace: soon\n"                    # line 8
                        "      colour: blue\n"                   # line 9
                        "  - table: {file: nowhere.txt}\n")
    assert problems(p) == [
        "7: processors.radius.detail: /nonexistent/radacct: no such file or folder",
        "8: processors.radius.grace: must be a duration such as 30s, 5m, 2h or 1d, not 'soon'",
        "9: processors.radius.colour: unknown option (known: detail, index, pattern, zone, slack, grace, "
        "lock_timeout, budget, refresh)",
        f"10: processors.table.file: {tmp_path / 'nowhere.txt'}: no such file",
    ]


def test_unknown_stage_options_are_errors_with_the_known_ones(tmp_path):
    p = write(tmp_path, "parsers:\n  - arf: {zoen: CET}\n  - spamcop: {zone: CET}\n  - log: {dayfirst: sometimes}\n")
    assert problems(p) == [
        "2: parsers.arf.zoen: unknown option (known: trusted, zone, date_fallback)",
        "3: parsers.spamcop.zone: unknown option (known: date_fallback)",
        "4: parsers.log.dayfirst: must be true or false, not 'sometimes'",
    ]


def test_unknown_top_key_has_its_line_and_x_keys_are_free(tmp_path):
    p = write(tmp_path, "parsers: []\n\nprocesors: []\nx-anchors: {a: 1}\n")
    assert problems(p) == ["3: procesors: unknown key (known: parsers, filters, processors, reader, quarantine, "
                           "defaults, notify; x-… keys are free, e.g. for YAML anchors)"]


def test_a_stage_list_written_as_a_string_is_an_error(tmp_path):
    p = write(tmp_path, "parsers: []\nprocessors: store\n")
    assert problems(p) == ["2: processors: must be a list (or a mapping) of processors, e.g. processors: "
                           "[{store: {path: ~/abuso/store}}, explain], not 'store'"]
    p = write(tmp_path, "parsers: log\nreader: stdin\n")
    assert problems(p) == [
        "1: parsers: must be a list (or a mapping) of parsers, e.g. parsers: [arf, log], not 'log'",
        "2: reader: must be a mapping {imap: {options}} or {pop3: {options}}",
    ]


@pytest.mark.parametrize("defaults, line", [
    ("{timeout: soon}", "2: defaults.timeout: must be a number, not 'soon'"),
    ("{timeout: -1}", "2: defaults.timeout: must be at least 0, not -1"),
    ("{max_bytes: huge}", "2: defaults.max_bytes: must be a whole number, not 'huge'"),
    ("{max_bytes: -5}", "2: defaults.max_bytes: must be at least 1, not -5"),
    ("{max_bytes: 1.5}", "2: defaults.max_bytes: must be a whole number, not 1.5"),
    ("{date_fallback: maybe}", "2: defaults.date_fallback: must be true or false, not 'maybe'"),
    ("{zone: Mars/Olympus}", "2: defaults.zone: must be a time zone such as UTC, +01:00 or Europe/Berlin, "
                             "not 'Mars/Olympus'"),
    ("{colour: blue}", "2: defaults.colour: unknown option (known: zone, date_fallback, max_bytes, timeout, "
                       "max_memory)"),
    ("[1, 2]", "2: defaults: must be a mapping of defaults (zone, date_fallback, max_bytes, timeout, max_memory)"),
    ("{max_memory: lots}", "2: defaults.max_memory: must be a size such as 512M or 1G (bytes; K, M, G count in "
                           "1024s), not 'lots'"),
    ("{max_memory: -1}", "2: defaults.max_memory: must be at least 0, not -1"),
])
def test_defaults_are_checked_for_type_and_range(tmp_path, defaults, line):
    assert problems(write(tmp_path, f"parsers: []\ndefaults: {defaults}\n")) == [line]


def test_good_defaults_load_and_zone_regions_are_zones(tmp_path):
    cfg = load(write(tmp_path, "parsers: []\ndefaults: {zone: Europe/Berlin, timeout: 0, max_bytes: 1000}\n"))
    assert cfg.defaults == {"zone": "Europe/Berlin", "timeout": 0, "max_bytes": 1000}


def test_duplicate_keys_name_both_lines(tmp_path):
    p = write(tmp_path, "parsers: []\ndefaults:\n  timeout: 10\n  max_bytes: 100\n  timeout: 20\n"
                        "parsers: [log]\n")
    assert problems(p) == ["5: defaults.timeout: duplicate key (first on line 3)",
                           "6: parsers: duplicate key (first on line 1)"]


def test_yaml_merge_keys_work(tmp_path):
    p = write(tmp_path, "x-store: &store\n  path: files\n  fsync: false\n"
                        "parsers: []\nprocessors:\n  - store:\n      <<: *store\n      fsync: true\n"
                        "defaults:\n  <<: [{timeout: 5}, {timeout: 9, max_bytes: 10}]\n")
    cfg = load(p)
    assert cfg.processors[0].options == {"path": "files", "fsync": True}  # a key written out wins
    assert cfg.defaults == {"timeout": 5, "max_bytes": 10}  # of merged mappings, the first wins


def test_merged_keys_are_checked_at_the_anchors_line(tmp_path):
    p = write(tmp_path, "x-common: &c\n  timeout: never\nparsers: []\nprocessors:\n  - store:\n      <<: *c\n")
    assert problems(p) == ["2: processors.store.timeout: must be a number, not 'never'"]


@pytest.mark.parametrize("text, expect", [
    ("defaults:\n  <<: 5\n", "2: defaults.<<: << merges a mapping or a list of mappings"),
    ("x: &a [*a]\n", "1: an alias refers to the value it is part of"),
    ("defaults:\n  <<: *nope\n", "2: invalid YAML: found undefined alias 'nope'"),
    ("parsers: !!python/object:os.system x\n", "1: cannot read this value: could not determine a constructor"
                                              " for the tag 'tag:yaml.org,2002:python/object:os.system'"),
    ("? [a, b]\n: c\n", "1: a key must be a plain value"),
])
def test_odd_yaml_is_a_clean_error(tmp_path, text, expect):
    assert problems(write(tmp_path, text)) == [expect]


def test_an_alias_bomb_stops_early(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    found = problems(write(tmp_path, "\n".join(lines) + "\n"))
    assert len(found) == 1 and "more than 100000 values (aliases expanding too far?)" in found[0]


def test_an_unwritable_store_path_is_a_config_error(tmp_path):
    (tmp_path / "file").write_text("a file, not a folder")
    p = write(tmp_path, "parsers: []\nprocessors:\n  - store:\n      path: file/store\n")
    assert problems(p) == [f"4: processors.store.path: {tmp_path / 'file' / 'store'}: cannot be created: "
                           f"{tmp_path / 'file'} is not a folder"]
    assert (tmp_path / "file").is_file()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_folder_is_a_config_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    p = write(tmp_path, f"parsers: []\nquarantine: {ro / 'q'}\n")
    assert problems(p) == [f"2: quarantine: {ro / 'q'}: cannot be created: {ro} is not writable"]


def test_missing_files_are_named_with_the_line_of_their_key(tmp_path):
    (tmp_path / "good.txt").write_text("thanks\n")
    p = write(tmp_path, "parsers: []\nprocessors:\n  - mailer:\n      from: abuse@example.net\n"
                        "      good: good.txt\n      bad: bad.txt\n      sendmail: ./no-sendmail\n"
                        "  - radius: {detail: [radacct, /var/empty/none]}\n")
    assert problems(p) == [
        f"6: processors.mailer.bad: {tmp_path / 'bad.txt'}: no such file",
        f"7: processors.mailer.sendmail: {tmp_path / 'no-sendmail'}: no such program",
        f"8: processors.radius.detail: {tmp_path / 'radacct'}: no such file or folder",
        "8: processors.radius.detail: /var/empty/none: no such file or folder",
    ]


def test_rules_between_options(tmp_path):
    p = write(tmp_path, "parsers: []\nprocessors:\n  - mailer: {from: abuse@example.net}\n"
                        "  - store: {path: s, password_file: pw}\n")
    (tmp_path / "pw").write_text("secret\n")
    assert problems(p) == ["3: processors.mailer.good: give at least one template: good, bad (a path)",
                           "4: processors.store.password_file: only a postgresql:// url takes a password"]


def test_bad_duration_and_zone(tmp_path):
    assert problems(write(tmp_path, "parsers: []\nfilters:\n  time: {before: soon, untimed: maybe}\n")) == [
        "3: filters.time.before: must be a duration such as 30s, 5m, 2h or 1d, not 'soon'",
        "3: filters.time.untimed: must be one of: keep, drop, not 'maybe'",
    ]


def test_stage_forms_and_order(tmp_path):
    cfg = load(write(tmp_path, "parsers: []\nprocessors:\n  - explain: {}\nquarantine: q\n"))
    assert [s.name for s in cfg.processors] == ["explain"]
    assert cfg.quarantine == tmp_path / "q"
    assert "processors:" in cfg.describe()
    assert not (tmp_path / "q").exists()  # checked, not created


def test_missing_file():
    with pytest.raises(ConfigError, match="no such file"):
        load("/nonexistent/abuso.yaml")


# --- declarations ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, name", [(k, n) for k in registry.BUILTINS for n in registry.BUILTINS[k]])
def test_every_builtin_stage_declares_its_options_and_its_defaults_pass_them(kind, name):
    cls = registry.load(kind, name)
    assert isinstance(cls.OPTIONS, tuple) and all(isinstance(o, Option) for o in cls.OPTIONS)
    assert len({o.name for o in cls.OPTIONS}) == len(cls.OPTIONS)
    for o in cls.OPTIONS:
        assert all(t in TYPES for t in o.type.split("|")), (o.name, o.type)
        if o.default is not None:
            found, _ = check_options(cls.OPTIONS, {o.name: o.default})
            assert [p for p in found if p[0] == o.name] == [], (name, o.name)


def test_config_defaults_pass_their_own_declarations():
    found, _ = check_options(DEFAULTS, {o.name: o.default for o in DEFAULTS if o.default is not None})
    assert found == []


# --- the parsed-config cache --------------------------------------------------------------------------------


def test_parsed_config_cache_sees_every_edit(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("ABUSO_NO_CACHE", raising=False)
    p = write(tmp_path, "parsers: [log]\n")
    assert [s.name for s in load(p).parsers] == ["log"]
    assert list((tmp_path / "cache" / "abuso").glob("config-*.marshal"))
    assert [s.name for s in load(p).parsers] == ["log"]  # from the cache
    p.write_text("parsers: [arf]\n")  # same size, new content
    assert [s.name for s in load(p).parsers] == ["arf"]
    p.write_text("parsers: [arf]\nfilters:\n  ip: {within: [bad]}\n")
    with pytest.raises(ConfigError) as e:  # errors keep their line numbers when cached, too
        load(p)
    with pytest.raises(ConfigError) as again:
        load(p)
    assert e.value.line == again.value.line == 3


def test_config_cache_is_bounded(tmp_path, monkeypatch):
    """One entry per config path, at most CACHE_ENTRIES: the newest stay, the cache never grows without limit."""
    import abuso.config as config

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("ABUSO_NO_CACHE", raising=False)
    monkeypatch.setattr(config, "CACHE_ENTRIES", 5)
    paths = []
    for i in range(12):
        folder = tmp_path / f"c{i}"
        folder.mkdir()
        paths.append(write(folder, "parsers: [log]\n"))
        load(paths[-1])
    cached = sorted((tmp_path / "cache" / "abuso").glob("config-*.marshal"))
    assert len(cached) == 5
    assert config._cache_file(paths[-1]) in cached
    assert config._cache_file(paths[0]) not in cached


def test_a_checked_config_is_checked_again_without_importing_any_stage(tmp_path):
    """The cache keeps the record of a successful check: the next start imports no stage module to
    check options, yet redoes the file checks (a table that went missing is still exit 78)."""
    (tmp_path / "networks.txt").write_text("192.0.2.0/24 id=C1\n")
    p = write(tmp_path, "filters: {ip: {within: [192.0.2.0/24]}, time: {before: 7d}}\n"
                        "processors:\n  - table: {file: networks.txt}\n  - explain\n")
    script = ("import sys; from abuso.config import load\n"
              "try:\n    load(sys.argv[1])\nexcept Exception as e:\n    print('error', e)\n"
              "print(sorted(m for m in sys.modules if m.startswith(('abuso.parsers.', 'abuso.filters.',"
              " 'abuso.processors.'))))\n")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("ABUSO_NO_CACHE", None)

    def run() -> str:
        r = subprocess.run([sys.executable, "-c", script, str(p)], capture_output=True, text=True, env=env,
                           cwd=ROOT, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    first = run()
    assert "abuso.parsers.log" in first and "abuso.processors.table" in first  # checked by importing
    assert run().strip() == "[]"  # checked from the record: nothing imported
    (tmp_path / "networks.txt").unlink()
    out = run()
    assert f"error {p}:3: processors.table.file: {tmp_path / 'networks.txt'}: no such file" in out


def test_check_config_neither_reads_nor_writes_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("ABUSO_NO_CACHE", raising=False)
    load(write(tmp_path, "parsers: [log]\n"), cache=False)
    assert not (tmp_path / "cache").exists()


def test_reader_options_are_declared_and_checked_too(tmp_path):
    p = write(tmp_path, "parsers: []\nreader:\n  imap:\n    host: mail.example.net\n    user: abuse\n"
                        "    password_env: PW\n    port: 99999\n    idle: true\n    ca_file: /nonexistent/ca.pem\n"
                        "    done: '\\Bogus'\n    recover: some\n")
    assert problems(p) == [
        "7: reader.imap.port: must be at most 65535, not 99999",
        "8: reader.imap.idle: a duration, or false to poll instead",
        "9: reader.imap.ca_file: /nonexistent/ca.pem: no such file",
        "10: reader.imap.done: not a valid flag: '\\\\Bogus'",
        "11: reader.imap.recover: true (dead workers of this host), false, all, or a list of worker names",
    ]
    p = write(tmp_path, "parsers: []\nreader:\n  pop3: {host: pop.example.net, user: u, password_env: X,\n"
                        "         ssl: false, delete: sometimes}\n")
    assert problems(p) == ["4: reader.pop3.delete: must be true or false, not 'sometimes'"]
    p = write(tmp_path, "parsers: []\nreader:\n  pop3: {host: pop.example.net, user: u, password_env: X,\n"
                        "         ssl: false}\n")
    assert problems(p) == ["4: reader.pop3.ssl: ssl: false would send the password in clear over the network: "
                           "use ssl: true or starttls (false is for a server on this host only)"]
