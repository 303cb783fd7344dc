"""The batch runner: order, quarantine, exit statuses, timeouts, several workers."""

import io
import json
from pathlib import Path

import pytest

from abuso.config import load
from abuso.errors import EX_DATAERR, EX_OK, EX_TEMPFAIL, TransientError
from abuso.readers.base import Item, Reader
from abuso.runner import Runner


class ListReader(Reader):
    def __init__(self, items):
        super().__init__({})
        self.items = items
        self.outcomes = []

    def __iter__(self):
        yield from self.items

    def done(self, item, error=None):
        self.outcomes.append((item.origin, error))


def good(n: int) -> Item:
    return Item(b"From: r@example.org\nSubject: report %d\nMessage-ID: <%d@example.org>\n\nhello\n" % (n, n),
                f"m{n}")


@pytest.fixture
def config(tmp_path: Path):
    return load({"parsers": [], "quarantine": str(tmp_path / "q")})


def run(config, items, **kw):
    out = io.StringIO()
    reader = ListReader(items)
    summary = Runner(config, reader, out=out, err=io.StringIO(), progress=False, **kw).run()
    return summary, reader, out.getvalue()


@pytest.mark.parametrize("jobs", [1, 2])
def test_order_is_stable_and_every_message_is_done(config, jobs):
    items = [good(n) for n in range(40)]
    summary, reader, out = run(config, items, fmt="json", jobs=jobs)
    assert summary.status == EX_OK and summary.total == 40
    assert [json.loads(line)["file"] for line in out.splitlines()] == [f"m{n}" for n in range(40)]
    assert reader.outcomes == [(f"m{n}", None) for n in range(40)]


def test_oversize_message_is_quarantined_with_reason_and_batch_goes_on(tmp_path):
    config = load({"parsers": [], "quarantine": str(tmp_path / "q"), "defaults": {"max_bytes": 1000}})
    big = Item(b"Subject: big\n\n" + b"x" * 5000, "big")
    summary, reader, _ = run(config, [good(1), big, good(2)])
    assert summary.status == EX_DATAERR and summary.quarantined == 1 and summary.total == 3
    assert reader.outcomes[1][0] == "big" and "max_bytes" in reader.outcomes[1][1]
    kept = sorted((tmp_path / "q").iterdir())
    assert [p.suffix for p in kept] == [".eml", ".reason"]
    assert kept[0].read_bytes() == big.data  # unchanged, never lost
    assert "max_bytes" in kept[1].read_text()


def test_transient_failure_is_not_marked_done_and_exits_75(config):
    from abuso.pipeline import Pipeline

    class Down:
        name = "down"

        def process(self, report):
            raise TransientError("smtp: connection refused")

        def close(self):
            pass

    original = Pipeline.__init__

    def init(self, cfg):
        original(self, cfg)
        self.processors.append(Down())

    Pipeline.__init__ = init
    try:
        summary, reader, _ = run(config, [good(1)])
    finally:
        Pipeline.__init__ = original
    assert summary.status == EX_TEMPFAIL and reader.outcomes == []


def test_runaway_parser_is_stopped_by_timeout(tmp_path):
    config = load({"parsers": [], "quarantine": str(tmp_path / "q"), "defaults": {"timeout": 0.2}})
    from abuso.pipeline import Pipeline

    class Slow:
        name = "slow"

        def parse(self, message):
            while True:
                pass

    original = Pipeline.__init__

    def init(self, cfg):
        original(self, cfg)
        self.parsers.append(Slow())

    Pipeline.__init__ = init
    try:
        summary, reader, _ = run(config, [good(1), good(2)])
    finally:
        Pipeline.__init__ = original
    assert summary.quarantined == 2
    assert reader.outcomes[0][1] == "over timeout 0.2 s (defaults.timeout)"


def test_a_message_that_kills_its_worker_is_quarantined_and_the_batch_goes_on(config):
    """A crash below Python (a C library, the OOM killer) takes the whole worker process with it."""
    import os

    from abuso.pipeline import Pipeline

    class Killer:
        name = "killer"

        def parse(self, message):
            if message.subject == "report 13":
                os._exit(1)
            from abuso.model import Verdict

            return Verdict("killer", False, "not the poison")

    original = Pipeline.__init__

    def init(self, cfg):
        original(self, cfg)
        self.parsers.append(Killer())

    Pipeline.__init__ = init  # fork: the workers inherit the patched class
    try:
        summary, reader, out = run(config, [good(n) for n in range(40)], fmt="json", jobs=2)
    finally:
        Pipeline.__init__ = original
    assert summary.total == 40 and summary.quarantined == 1 and summary.transient == 0
    assert [o for o in reader.outcomes if o[1]] == [("m13", "the worker process died while processing it "
                                                           "(crash or killed)")]
    files = [json.loads(line)["file"] for line in out.splitlines()]
    assert files == [f"m{n}" for n in range(40) if n != 13]
