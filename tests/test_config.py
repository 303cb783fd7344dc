from pathlib import Path

import pytest

from abuso.config import load
from abuso.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "abuso.yaml"
    p.write_text(text)
    return p


def test_errors_name_file_line_and_key(tmp_path):
    p = write(tmp_path, "parsers: []\nfilters:\n  ip:\n    within: [192.0.2.0/24, not-a-net]\n")
    with pytest.raises(ConfigError) as e:
        load(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}:3: filters.ip.within: ")
    assert "not-a-net" in msg


def test_unknown_top_key_has_its_line(tmp_path):
    p = write(tmp_path, "parsers: []\n\nprocesors: []\n")
    with pytest.raises(ConfigError) as e:
        load(p)
    assert e.value.line == 3 and e.value.key == "procesors"


def test_invalid_yaml_has_line(tmp_path):
    p = write(tmp_path, "parsers: [log\nfilters: {}\n")
    with pytest.raises(ConfigError) as e:
        load(p)
    assert e.value.file == str(p) and e.value.line is not None and "invalid YAML" in str(e.value)


def test_bad_duration_and_zone(tmp_path):
    with pytest.raises(ConfigError, match=r"filters.time.before: not a duration"):
        load(write(tmp_path, "parsers: []\nfilters:\n  time: {before: soon}\n"))
    with pytest.raises(ConfigError, match=r":3: defaults.zone: unknown time zone"):
        load(write(tmp_path, "parsers: []\ndefaults:\n  zone: Mars/Olympus\n"))


def test_stage_forms_and_order(tmp_path):
    cfg = load(write(tmp_path, "parsers: []\nprocessors:\n  - explain: {}\nquarantine: q\n"))
    assert [s.name for s in cfg.processors] == ["explain"]
    assert cfg.quarantine == tmp_path / "q"
    assert "processors:" in cfg.describe()


def test_missing_file():
    with pytest.raises(ConfigError, match="no such file"):
        load("/nonexistent/abuso.yaml")


def test_parsed_config_cache_sees_every_edit(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("ABUSO_NO_CACHE", raising=False)
    p = write(tmp_path, "parsers: [log]\n")
    assert [s.name for s in load(p).parsers] == ["log"]
    assert list((tmp_path / "cache" / "abuso").glob("config-*.json"))
    assert [s.name for s in load(p).parsers] == ["log"]  # from the cache
    p.write_text("parsers: [arf]\n")  # same size, new content
    assert [s.name for s in load(p).parsers] == ["arf"]
    p.write_text("parsers: [arf]\nfilters:\n  ip: {within: [bad]}\n")
    with pytest.raises(ConfigError) as e:  # errors keep their line numbers when cached, too
        load(p)
    with pytest.raises(ConfigError) as again:
        load(p)
    assert e.value.line == again.value.line == 3
