"""Where a failure belongs: the message (quarantine), the install or the code (exit 75), or nobody's.

A broken install must not look like bad mail: a module that cannot be imported, or a bug that any
message would hit, is an InternalError (a TransientError: exit 75, the MTA keeps the mail), never a
per-message "cannot parse". A parser that raises on hostile input fails that message only, and then
no processor acts on the half analysis.
"""

from __future__ import annotations

import email.message
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from abuso import registry
from abuso.errors import InternalError, MessageError, TransientError
from abuso.filters.base import Filter
from abuso.model import Verdict
from abuso.parsers.base import Parser
from abuso.pipeline import Pipeline
from abuso.processors.base import Processor
from abuso.runner import QUARANTINED, TRANSIENT, process_item

from .conftest import SAMPLES

HTML = (SAMPLES / "forwarded" / "html-only-portscan.eml").read_bytes()
PLAIN = (b"From: soc@example.org\nSubject: scan\nDate: Tue, 24 Nov 2026 06:00:00 +0000\nMessage-ID: <p1@x>\n\n"
         b"2026-11-24 04:12:11 UTC port scan from 198.51.100.23\n")
#: A stamp only the dateparser fallback reads.
ODD = PLAIN.replace(b"2026-11-24 04:12:11 UTC", "8 марта 2026 г. 17:00".encode())


def render(report: Any) -> str:
    return f"{report.origin}: {len(report.incidents)}\n"


# --- stages made for these tests, registered as built-ins for the test's duration ----------------


class RaisingParser(Parser):
    """Raises on one marker, as a parser with a bug on hostile input would."""

    name = "zz-raising"

    def parse(self, message: Any) -> Verdict:
        if "hostile-marker" in message.text:
            raise IndexError("list index out of range")
        return self.not_applicable("no marker")


class MisspeltParser(Parser):
    name = "zz-misspelt"

    def parse(self, message: Any) -> Verdict:
        return undefined_helper(message)  # type: ignore[name-defined]  # noqa: F821 - the bug under test


class RaisingFilter(Filter):
    name = "zz-raising"

    def reject(self, incident: Any, report: Any) -> str | None:
        raise KeyError("customer")


#: The real parsers: the test stages below are registered as built-ins, and every built-in joins the
#: default chain, so the tests that want the default chain name it.
BUILT_IN_PARSERS = list(registry.BUILTINS["parsers"])

#: What the recording processors saw, by processor name: process, finish and close calls.
SEEN: dict[str, list[str]] = {}


class RecordingProcessor(Processor):
    name = "zz-recording"

    def process(self, report: Any) -> None:
        SEEN.setdefault(self.name, []).append(f"process {report.origin}")

    def finish(self, report: Any) -> None:
        SEEN.setdefault(self.name, []).append(f"finish {report.origin}")

    def close(self) -> None:
        SEEN.setdefault(self.name, []).append("close")


class FailingCloseProcessor(RecordingProcessor):
    name = "zz-failing-close"

    def close(self) -> None:
        super().close()
        raise OSError(28, "No space left on device")


@pytest.fixture(autouse=True)
def stages(monkeypatch: pytest.MonkeyPatch) -> None:
    SEEN.clear()
    for kind, cls in (("parsers", RaisingParser), ("parsers", MisspeltParser), ("filters", RaisingFilter),
                      ("processors", RecordingProcessor), ("processors", FailingCloseProcessor)):
        monkeypatch.setitem(registry.BUILTINS[kind], cls.name, f"{__name__}:{cls.__name__}")


# --- a broken install -------------------------------------------------------------------------------


def test_html_mail_needs_no_beautiful_soup(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTML is read with the standard library's tokenizer (abuso.htmltext); bs4 is only the tests' reference."""
    pipeline = Pipeline.from_config({"parsers": BUILT_IN_PARSERS})
    monkeypatch.setitem(sys.modules, "bs4", None)  # as if beautifulsoup4 were not installed
    assert pipeline.process(HTML, "html").incidents


def test_missing_dateparser_is_an_internal_error_not_a_missing_timestamp(monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = Pipeline.from_config({"parsers": ["log"]})
    monkeypatch.setitem(sys.modules, "dateparser", None)  # as if dateparser were not installed
    with pytest.raises(InternalError) as e:
        pipeline.process(ODD, "odd")
    assert isinstance(e.value, TransientError) and not isinstance(e.value, MessageError)
    assert "'dateparser'" in str(e.value) and "pip install 'dateparser'" in str(e.value) and "\n" not in str(e.value)
    assert pipeline.process(PLAIN, "plain").incidents  # mail that needs no fallback still flows


def test_a_misspelt_name_in_a_stage_is_an_internal_error(tmp_path: Path) -> None:
    pipeline = Pipeline.from_config({"parsers": ["zz-misspelt"], "processors": ["zz-recording"]})
    with pytest.raises(InternalError, match=r"internal error in parser zz-misspelt: NameError: .*undefined_helper"):
        pipeline.process(PLAIN)
    outcome = process_item(pipeline, render, PLAIN, "plain", 0)
    assert outcome.status == TRANSIENT and "please report this" in outcome.reason
    assert SEEN == {}


def test_a_bug_in_the_email_accessors_is_not_taken_for_a_hostile_header(monkeypatch: pytest.MonkeyPatch) -> None:
    """The normalizer catches what hostile headers raise (INPUT_ERRORS), not a NameError."""
    pipeline = Pipeline.from_config({"parsers": BUILT_IN_PARSERS})

    def broken(self: Any) -> str:
        return undefined_name  # type: ignore[name-defined]  # noqa: F821

    monkeypatch.setattr(email.message.Message, "get_content_type", broken)
    with pytest.raises(InternalError, match="NameError"):
        pipeline.process(PLAIN)


def test_piped_message_with_dateparser_missing_exits_75_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "abuso.yaml"
    config.write_text(f"quarantine: {tmp_path / 'q'}\n")
    code = ("import sys; sys.modules['dateparser'] = None; sys.argv = ['abuso', 'run', '-c', sys.argv[1]]; "
            "from abuso.cli import main; main()")
    r = subprocess.run([sys.executable, "-c", code, str(config)], input=ODD, capture_output=True, timeout=120)
    err = r.stderr.decode()
    assert r.returncode == 75, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "'dateparser'" in err and "pip install 'dateparser'" in err and "will retry" in err
    assert not (tmp_path / "q").exists()  # nothing quarantined: the mail is not at fault


def test_batch_with_dateparser_missing_defers_that_message_and_processes_the_rest(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "1-odd.eml").write_bytes(ODD)
    (tmp_path / "in" / "2-plain.eml").write_bytes(PLAIN)
    config = tmp_path / "abuso.yaml"
    config.write_text(f"quarantine: {tmp_path / 'q'}\n")
    code = ("import sys; sys.modules['dateparser'] = None; sys.argv = ['abuso', 'run', '-c', sys.argv[1], '-j', '2', "
            "'-f', 'json', sys.argv[2]]; from abuso.cli import main; main()")
    r = subprocess.run([sys.executable, "-c", code, str(config), str(tmp_path / "in")], capture_output=True,
                       timeout=120)
    err = r.stderr.decode()
    assert r.returncode == 75, err
    assert "1-odd.eml: temporary failure, will retry: broken installation" in err and "Traceback" not in err
    assert b"2-plain.eml" in r.stdout and b"198.51.100.23" in r.stdout
    assert not (tmp_path / "q").exists()


# --- a failing stage fails the message; no processor acts on half an analysis ---------------------


def test_a_crashing_parser_runs_no_processor_and_the_message_is_quarantined_with_its_error() -> None:
    pipeline = Pipeline.from_config({"parsers": ["log", "zz-raising"], "processors": ["zz-recording"]})
    hostile = PLAIN + b"hostile-marker\n"
    report = pipeline.process(hostile, "hostile")
    assert report.error == "parser zz-raising failed: IndexError: list index out of range"
    assert report.verdicts["log"].incidents  # the analysis is kept for the human who reads the quarantine
    assert SEEN == {}
    outcome = process_item(pipeline, render, hostile, "hostile", 0)
    assert (outcome.status, outcome.reason) == (QUARANTINED, report.error)
    assert SEEN == {}
    pipeline.process(PLAIN, "plain")
    assert SEEN == {"zz-recording": ["process plain", "finish plain"]}


def test_a_crashing_parser_stores_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    pipeline = Pipeline.from_config({"parsers": ["log", "zz-raising"],
                                     "processors": [{"store": {"path": str(store), "fsync": False}}]})
    with pipeline:
        pipeline.process(PLAIN + b"hostile-marker\n", "hostile")
        assert not list(store.rglob("*.eml"))
        pipeline.process(PLAIN, "plain")
        assert len(list(store.rglob("*.eml"))) == 1


def test_a_filter_that_raises_fails_the_message() -> None:
    pipeline = Pipeline.from_config({"parsers": ["log"], "filters": ["zz-raising"], "processors": ["zz-recording"]})
    with pytest.raises(MessageError, match="filter zz-raising failed: KeyError: 'customer'"):
        pipeline.process(PLAIN)
    assert SEEN == {}


# --- closing ---------------------------------------------------------------------------------------


def test_close_closes_every_processor_then_reports_the_failure() -> None:
    pipeline = Pipeline.from_config({"parsers": [], "processors": ["zz-failing-close", "zz-recording"]})
    with pytest.raises(TransientError, match="zz-failing-close: cannot close: OSError: .*No space left on device"):
        pipeline.close()
    assert SEEN == {"zz-failing-close": ["close"], "zz-recording": ["close"]}


def test_a_close_failure_does_not_hide_the_exception_already_raised() -> None:
    pipeline = Pipeline.from_config({"parsers": [], "processors": ["zz-failing-close"]})
    with pytest.raises(ValueError, match="first") as e:
        with pipeline:
            raise ValueError("first")
    assert SEEN == {"zz-failing-close": ["close"]}
    if hasattr(e.value, "__notes__"):
        assert "No space left on device" in e.value.__notes__[0]
