"""The parser chain: declared priority orders it, plugins join the default chain, authority replaces names.

The plugin is a real distribution: a ``*.dist-info`` with ``entry_points.txt``
on a ``sys.path`` entry, found by ``importlib.metadata`` as pip-installed ones are.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from abuso import registry
from abuso.config import load
from abuso.errors import ConfigError
from abuso.model import Verdict
from abuso.parsers.base import Parser
from abuso.pipeline import Pipeline

BUILTIN_CHAIN = ["arf", "xarf", "spamcop", "acns", "csv", "received", "log"]

PLUGIN = '''
from abuso.model import Incident, Verdict
from abuso.parsers.base import Parser


class TaggedParser(Parser):
    """A reporter's own format: the source in an X-Abuse-Source header."""

    name = "tagged"
    priority = 85
    authority = True

    def parse(self, message):
        value = message.email.get("X-Abuse-Source")
        if not value:
            return self.not_applicable("no X-Abuse-Source header")
        inc = Incident(ip=value.strip(), type="spam", time=message.date, parser=self.name, zone="date-header")
        return self.states_source(self.found([inc], "X-Abuse-Source header"), "an X-Abuse-Source report")


class PlainParser:
    """Duck-typed, no base class and no priority: it lands at 50."""

    name = "plain"

    def __init__(self, options=None):
        self.options = options or {}

    def parse(self, message):
        return Verdict(self.name, False, "nothing for plain", [])
'''


def _distribution(root: Path, module: str, source: str, entry_points: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    return root


@pytest.fixture
def plugin(tmp_path, monkeypatch) -> Path:
    root = _distribution(tmp_path / "site", "abuso_test_plugin", PLUGIN,
                         "[abuso.parsers]\ntagged = abuso_test_plugin:TaggedParser\n"
                         "plain = abuso_test_plugin:PlainParser\n")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, "abuso_test_plugin", raising=False)
    return root


# A report in the plugin's format that also carries the spam: received would read its chain.
REPORT = (b"From: fbl@reporter.example\nTo: abuse@isp.example\nSubject: spam complaint\n"
          b"Date: Tue, 24 Nov 2026 10:00:00 +0000\nX-Abuse-Source: 192.0.2.77\n"
          b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain\n\n"
          b"Spam from your customer.\n\n--B\nContent-Type: message/rfc822\n\n"
          b"Received: from relay.example (relay.example [198.51.100.9]) by mx.reporter.example; "
          b"Tue, 24 Nov 2026 09:00:00 +0000\nFrom: s@spam.example\nSubject: buy\n\nbuy\n\n--B--\n")


def test_builtin_default_chain_comes_from_the_declared_priorities() -> None:
    assert registry.default_parsers() == BUILTIN_CHAIN
    assert [s.name for s in load({}).parsers] == BUILTIN_CHAIN
    prios = [registry.load("parsers", n).priority for n in BUILTIN_CHAIN]
    assert prios == sorted(prios, reverse=True) and len(set(prios)) == len(prios)


def test_a_configured_chain_runs_in_priority_order() -> None:
    pipeline = Pipeline.from_config({"parsers": ["log", "received", "csv", "arf"]})
    assert [p.name for p in pipeline.parsers] == ["arf", "csv", "received", "log"]
    report = pipeline.analyse(b"From: a@example.org\nSubject: x\n\nscan from 192.0.2.1\n")
    assert list(report.verdicts) == ["arf", "csv", "received", "log"]


def test_plugin_parsers_join_the_default_chain_at_their_priority(plugin: Path) -> None:
    chain = ["arf", "xarf", "tagged", "spamcop", "acns", "csv", "plain", "received", "log"]
    assert registry.default_parsers() == chain
    assert registry.DEFAULT_PARSERS == chain
    assert [s.name for s in load({}).parsers] == chain
    assert [p.name for p in Pipeline.from_config({}).parsers] == chain


def test_a_plugin_authority_keeps_received_out_without_received_knowing_its_name(plugin: Path) -> None:
    report = Pipeline.from_config({}).analyse(REPORT)
    assert [(str(i.ip), i.parser) for i in report.incidents] == [("192.0.2.77", "tagged")]
    assert report.verdicts["tagged"].source_stated == "an X-Abuse-Source report"
    received = report.verdicts["received"]
    assert not received.applied
    assert received.reason == ("an X-Abuse-Source report names the source itself; "
                               "its carried Received chain is not second-guessed")
    # Without the plugin in the chain nobody states the source: the carried chain is the evidence.
    report = Pipeline.from_config({"parsers": ["received", "log"]}).analyse(REPORT)
    assert ("198.51.100.9", "received") in {(str(i.ip), i.parser) for i in report.incidents}


def test_plugin_joins_the_default_chain_from_the_command_line(plugin: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "abuso.yaml"
    cfg.write_text("quarantine: q\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(plugin)}
    out = subprocess.run([sys.executable, "-m", "abuso", "run", "-c", str(cfg), "--format", "json"], input=REPORT,
                         capture_output=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    (line,) = out.stdout.decode().splitlines()
    data = json.loads(line)
    assert [(i["ip"], i["parser"]) for i in data["incidents"]] == [("192.0.2.77", "tagged")]
    assert list(data["verdicts"])[:3] == ["arf", "xarf", "tagged"]


def test_a_plugin_that_cannot_be_imported_is_a_config_error(tmp_path, monkeypatch) -> None:
    root = _distribution(tmp_path / "broken", "abuso_test_broken", "raise ImportError('needs libfoo')\n",
                         "[abuso.parsers]\nbroken = abuso_test_broken:Parser\n")
    monkeypatch.syspath_prepend(str(root))
    with pytest.raises(ConfigError, match=r"parsers: cannot load parser 'broken' .*needs libfoo"):
        load({})
    # A config that lists its parsers does not need it.
    assert [s.name for s in load({"parsers": ["log"]}).parsers] == ["log"]


def test_only_a_declared_authority_may_state_the_source() -> None:
    class Guess(Parser):
        name = "guess"

        def parse(self, message):
            return self.states_source(self.found([]), "a guess")

    with pytest.raises(TypeError, match="does not declare authority"):
        Guess().parse(None)
    assert Verdict("x", True, "").source_stated == ""


def test_the_entry_point_listing_follows_installs_and_spares_later_processes_the_scan(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "abuso_test_late.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "abuso_test_late", raising=False)
    assert registry.default_parsers() == BUILTIN_CHAIN
    # "pip install": a dist-info appears in the folder, whose mtime changes.
    _distribution(site, "abuso_test_late_dist", "", "[abuso.parsers]\nplain = abuso_test_late:PlainParser\n")
    assert "plain" in registry.default_parsers()
    # Another process with the same sys.path reads the cached listing: no importlib.metadata.
    code = ("import sys; from abuso import registry; chain = registry.default_parsers(); "
            "print(chain.index('plain') > 0, 'importlib.metadata' in sys.modules)")
    env = {**__import__("os").environ, "PYTHONPATH": str(site)}
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                           timeout=120) for _ in range(2)]
    assert [r.stdout.split() for r in runs][1] == ["True", "False"], [r.stderr for r in runs]
