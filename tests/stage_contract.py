"""The contract every stage keeps, as test classes each stage's tests inherit (like IntelMQ's BotTestCase).

    from tests.stage_contract import ParserContract

    class TestMyParserContract(ParserContract):
        name = "myparser"                   # as registered (built-in or entry point abuso.parsers)

        def options(self, tmp_path):        # only if the stage needs some to work
            return {"zone": "UTC"}

A subclass checks, for its stage:
- options: the minimal options load through ``abuso.config.load``; one unknown option more is a
  ConfigError that names it (the config loader is the public way stages are checked);
- garbage: seeded random bytes and mutated samples give a Verdict (parsers), None or a reason
  (filters), or are processed (processors); no exception escapes the stage;
- reasons: a parser verdict that did not apply, or found nothing, says why; a filter that drops an
  incident says why; incidents keep their invariants (aware UTC time or none, a known zone, the
  parser's name).

tests/test_stage_contract.py makes one subclass for every built-in in ``abuso.registry.BUILTINS``,
so a stage is covered as soon as it is registered. Inputs come from the ``rnd`` fixture
(tests/conftest.py): a failure names the input and prints the seed that replays it.
"""

from __future__ import annotations

import ipaddress
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar, Iterator

import pytest

from abuso.config import load
from abuso.errors import ConfigError, MessageError
from abuso.model import ZONES, Incident, Report, Verdict
from abuso.pipeline import Pipeline

from .conftest import CORPUS, SAMPLES

UTC = timezone.utc
#: An option name no stage will ever declare.
UNKNOWN_OPTION = "zz_no_such_option"
RANDOM_INPUTS = 20
MUTANTS = 50

# --- seeded hostile input ------------------------------------------------------------------------

INSERTS = [b"\n", b"<", b">", b"=?utf-8?b?", b"?=", b"--", b":", b"\r\n\r\n", b"[", b"]", b"\x00", b"boundary=",
           b"Content-Type: multipart/mixed; boundary=x\n", b"\n--x\n", b'charset="\x00"',
           b"Content-Transfer-Encoding: base64\n", b"<div>" * 50, b"Content-Type: message/rfc822\n\n",
           b"Received: from a ([10.0.0.1]) by b; Sat, 22 Nov 2026 03:14:07 +0100\n"]


def mutate(data: bytes, rnd: random.Random) -> bytes:
    """Byte flips, inserted MIME and header fragments, cut and duplicated runs."""
    d = bytearray(data)
    for _ in range(rnd.randint(1, 30)):
        op, i = rnd.random(), rnd.randrange(len(d)) if d else 0
        if op < 0.4 and d:
            d[i] = rnd.randrange(256)
        elif op < 0.6:
            d[i:i] = rnd.choice(INSERTS)
        elif op < 0.8 and d:
            del d[i:i + rnd.randint(1, 200)]
        else:
            j = rnd.randrange(len(d)) if d else 0
            d[i:i] = d[j:j + rnd.randint(1, 500)]
    return bytes(d)


def sample_paths(corpus: bool = True) -> list[Path]:
    paths = sorted(SAMPLES.rglob("*.eml"))
    if corpus and CORPUS.is_dir():
        paths += sorted(CORPUS.rglob("*.eml"))
    return paths


def garbage(rnd: random.Random, randoms: int = RANDOM_INPUTS, mutants: int = MUTANTS) -> Iterator[tuple[str, bytes]]:
    """(label, bytes): random bytes, random header-shaped noise, then mutated samples."""
    for n in range(randoms):
        if n % 2:
            yield f"random bytes #{n}", rnd.randbytes(rnd.randint(0, 4000))
        else:
            lines = [rnd.choice(INSERTS) + rnd.randbytes(rnd.randint(0, 80)) for _ in range(rnd.randint(1, 40))]
            yield f"header-shaped noise #{n}", b"\n".join(lines)
    sources = sample_paths()
    for n in range(mutants):
        path = rnd.choice(sources)
        yield f"mutant #{n} of {path.name}", mutate(path.read_bytes(), rnd)


def random_incident(rnd: random.Random) -> Incident:
    ip = rnd.choice([ipaddress.IPv4Address(rnd.getrandbits(32)), ipaddress.IPv6Address(rnd.getrandbits(128)),
                     ipaddress.ip_address(rnd.choice(["0.0.0.0", "255.255.255.255", "::", "::ffff:192.0.2.1",
                                                      "192.0.2.1", "2001:db8::1"]))])
    time = rnd.choice([None, random_time(rnd)])
    zone = rnd.choice([z for z in ZONES if z != "none"]) if time else "none"
    return Incident(ip, rnd.choice(["spam", "scanner", "undetermined", "brute-force", "zz-unknown"]), time,
                    rnd.choice(["log", "arf", "zz"]), zone, rnd.choice([None, 0, 65535]),
                    rnd.randbytes(rnd.randint(0, 40)).decode("latin-1"))


def random_time(rnd: random.Random) -> datetime:
    """Any aware time, the ends of the calendar included (a filter's arithmetic must not overflow)."""
    return rnd.choice([datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC),
                       datetime(2026, 11, 22, tzinfo=UTC) + timedelta(seconds=rnd.randint(-10**9, 10**9)),
                       datetime(rnd.randint(1, 9999), rnd.randint(1, 12), rnd.randint(1, 28), tzinfo=UTC)])


def random_report(rnd: random.Random) -> Report:
    report = Report(raw=rnd.randbytes(rnd.randint(0, 64)), origin="garbage")
    report.date = rnd.choice([None, random_time(rnd)])
    if rnd.random() < 0.3:
        report.notes["arrival"] = random_time(rnd)
    return report


# --- the contract ----------------------------------------------------------------------------------


class StageContract:
    """Shared by every kind: option checking through the public config loader."""

    kind: ClassVar[str]  # "parsers", "filters" or "processors" (abuso.registry)
    name: ClassVar[str]

    def options(self, tmp_path: Path) -> dict[str, Any]:
        """The fewest options the stage needs to work (paths under ``tmp_path``)."""
        return {}

    def config(self, options: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = {self.kind: [{self.name: options}]}
        if self.kind != "parsers":
            data["parsers"] = []
        return data

    def build(self, tmp_path: Path) -> Any:
        """The stage as a pipeline builds it from the config (defaults merged, paths resolved)."""
        pipeline = Pipeline(load(self.config(self.options(tmp_path))))
        (stage,) = getattr(pipeline, self.kind)
        return stage

    def test_minimal_options_load(self, tmp_path: Path) -> None:
        options = self.options(tmp_path)
        try:
            config = load(self.config(options))
        except ConfigError as e:
            pytest.fail(f"{self.kind[:-1]} {self.name} does not load with options {options}: {e}; give it its "
                        "fewest working options (override options(); built-ins: MINIMAL_OPTIONS in "
                        "tests/test_stage_contract.py)")
        assert [s.name for s in getattr(config, self.kind)] == [self.name]

    def test_an_unknown_option_is_rejected_by_name(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as e:
            load(self.config({**self.options(tmp_path), UNKNOWN_OPTION: 1}))
        assert UNKNOWN_OPTION in str(e.value)


class ParserContract(StageContract):
    kind = "parsers"

    def check(self, verdict: Any, label: str) -> None:
        assert isinstance(verdict, Verdict), f"{label}: {self.name} returned {type(verdict).__name__}, not a Verdict"
        assert verdict.parser == self.name, f"{label}: verdict names {verdict.parser!r}"
        assert isinstance(verdict.reason, str), f"{label}: reason {verdict.reason!r} is not text"
        if not verdict.applied:
            assert verdict.reason.strip(), f"{label}: {self.name} did not apply and gives no reason"
        if not verdict.incidents:
            assert verdict.reason.strip(), f"{label}: {self.name} found nothing and gives no reason"
        for inc in verdict.incidents:
            assert isinstance(inc, Incident), f"{label}: {inc!r}"
            assert inc.time is None or inc.time.utcoffset() == timedelta(0), f"{label}: {inc.time} is not UTC"
            assert inc.zone in ZONES and (inc.zone == "none") == (inc.time is None), f"{label}: zone {inc.zone}"
            assert self.name in inc.parser.split("+"), f"{label}: incident of parser {inc.parser!r}"

    def parse(self, parser: Any, data: bytes, label: str) -> Verdict | None:
        from abuso.normalize import normalize

        try:
            message = normalize(data)
        except (MessageError, RecursionError):  # the normalizer's verdict, not this parser's
            return None
        try:
            verdict = parser.parse(message)
        except Exception as e:  # the contract under test: nothing escapes a parser
            pytest.fail(f"{label}: parser {self.name} raised {type(e).__name__}: {e}")
        self.check(verdict, label)
        return verdict

    def test_garbage_gives_a_verdict_never_an_exception(self, tmp_path: Path, rnd: random.Random) -> None:
        parser = self.build(tmp_path)
        parsed = [self.parse(parser, data, label) for label, data in garbage(rnd)]
        assert sum(v is not None for v in parsed) >= len(parsed) // 2, "the normalizer refused most inputs"

    def test_every_sample_gets_a_verdict_with_a_reason(self, tmp_path: Path) -> None:
        parser = self.build(tmp_path)
        paths = sample_paths(corpus=False)
        verdicts = [self.parse(parser, p.read_bytes(), str(p.relative_to(SAMPLES))) for p in paths]
        assert paths and all(v is not None for v in verdicts)


class FilterContract(StageContract):
    kind = "filters"

    def judge(self, flt: Any, incident: Incident, report: Report, label: str) -> str | None:
        try:
            reason = flt.reject(incident, report)
        except Exception as e:  # the contract under test: nothing escapes a filter
            pytest.fail(f"{label}: filter {self.name} raised {type(e).__name__}: {e} on {incident} "
                        f"(report date {report.date}, arrival {report.notes.get('arrival')})")
        assert reason is None or (isinstance(reason, str) and reason.strip()), f"{label}: reason {reason!r}"
        return reason

    def test_garbage_incidents_are_kept_or_dropped_with_a_reason(self, tmp_path: Path, rnd: random.Random) -> None:
        flt = self.build(tmp_path)
        for n in range(300):
            self.judge(flt, random_incident(rnd), random_report(rnd), f"random incident #{n}")

    def test_sample_incidents_are_kept_or_dropped_with_a_reason(self, tmp_path: Path) -> None:
        flt = self.build(tmp_path)
        pipeline = Pipeline.from_config({})
        judged = 0
        for path in sample_paths(corpus=False):
            report = pipeline.analyse(path.read_bytes(), str(path))
            for incident in report.incidents:
                self.judge(flt, incident, report, str(path.relative_to(SAMPLES)))
                judged += 1
        assert judged


class ProcessorContract(StageContract):
    kind = "processors"

    def step(self, proc: Any, step: str, report: Report, label: str) -> None:
        try:
            getattr(proc, step)(report)
        except Exception as e:  # the contract under test: local resources, nothing may fail
            pytest.fail(f"{label}: processor {self.name}.{step} raised {type(e).__name__}: {e}")

    def test_garbage_and_samples_are_processed_without_an_exception(self, tmp_path: Path,
                                                                    rnd: random.Random) -> None:
        proc = self.build(tmp_path)
        analyser = Pipeline.from_config({})
        inputs = [(str(p.relative_to(SAMPLES)), p.read_bytes()) for p in sample_paths(corpus=False)]
        processed = 0
        try:
            for label, data in inputs + list(garbage(rnd, mutants=20)):
                try:
                    report = analyser.analyse(data, label)
                except MessageError:  # quarantined before any processor sees it
                    continue
                if report.error:  # a parser failed: the pipeline runs no processor on it
                    continue
                self.step(proc, "process", report, label)
                self.step(proc, "finish", report, label)
                processed += 1
        finally:
            proc.close()
        assert processed >= len(inputs)
