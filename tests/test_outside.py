"""Held-out real reports (../shared/corpus/outside) against their hand-written labels.

``LABELS.jsonl`` gives per file the accused addresses (``ips``), the UTC time of each
(``times``, other acceptable ones in ``times_ok``), the acceptable types (``types_ok``),
equivalent addresses (``alt``) and addresses that are neither right nor wrong (``ignore``).
The figures are printed and held at a floor so that extraction cannot silently get worse;
the per-file misses are printed too, since these labels were not written by us.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import ip_address

import pytest

from abuso.pipeline import Pipeline

from .conftest import CORPUS, NO_CORPUS

OUTSIDE = CORPUS / "outside"
LABELS = OUTSIDE / "LABELS.jsonl"

#: Floors: today's figures (raise them as extraction improves; never lower them).
FLOORS = {"precision": 1.0, "recall": 1.0, "ip_time_recall": 1.0, "type_agreement": 1.0}


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    timed: int = 0
    timed_ok: int = 0
    typed: int = 0
    typed_ok: int = 0
    misses: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, float]:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f1": f1,
                "ip_time_recall": self.timed_ok / self.timed if self.timed else 1.0,
                "type_agreement": self.typed_ok / self.typed if self.typed else 1.0}


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def score_file(label: dict, incidents: list, score: Score) -> None:
    """Add one file's result to ``score``: addresses, their times and types."""
    name = label["file"]
    wanted = {ip_address(a) for a in label["ips"]}
    alt = {ip_address(b): ip_address(a) for a, bs in label.get("alt", {}).items() for b in bs}
    ignore = {ip_address(a) for a in label.get("ignore", [])}
    by_ip: dict = {}
    for inc in incidents:
        ip = alt.get(inc.ip, inc.ip)
        if ip in ignore:
            continue
        by_ip.setdefault(ip, []).append(inc)
    for ip in sorted(set(by_ip) - wanted, key=str):
        score.fp += 1
        score.misses.append(f"{name}: false accusation {ip}")
    for ip in sorted(wanted, key=str):
        found = by_ip.get(ip)
        if not found:
            score.fn += 1
            score.misses.append(f"{name}: missed {ip}")
            continue
        score.tp += 1
        want_time = label["times"].get(str(ip))
        if want_time is not None:
            ok = {_utc(want_time)} | {_utc(t) for t in label.get("times_ok", {}).get(str(ip), [])}
            score.timed += 1
            # Labels are written to the second: a stamp with a fraction matches its second.
            got = {inc.time.replace(microsecond=0) for inc in found if inc.time is not None}
            if got & ok:
                score.timed_ok += 1
            else:
                score.misses.append(f"{name}: {ip} time {sorted(map(str, got)) or 'none'}, want {want_time}")
        score.typed += 1
        types = {inc.type for inc in found}
        if types & set(label["types_ok"]):
            score.typed_ok += 1
        else:
            score.misses.append(f"{name}: {ip} type {sorted(types)}, want {label['type']}")


def _labels() -> list[dict]:
    if not LABELS.is_file():
        return []
    return [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_outside_corpus_scores(capsys: pytest.CaptureFixture[str]) -> None:
    labels = _labels()
    if not labels:
        pytest.skip(NO_CORPUS)
    pipeline = Pipeline.from_config({})
    score = Score()
    for label in labels:
        report = pipeline.analyse((OUTSIDE / label["file"]).read_bytes(), label["file"])
        score_file(label, report.incidents, score)
    assert score.tp + score.fn > 0, "no labelled address was compared"
    figures = score.figures()
    with capsys.disabled():
        print(f"\n[outside] {len(labels)} reports: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items())
              + f" (tp {score.tp}, fp {score.fp}, fn {score.fn}, times {score.timed_ok}/{score.timed}, "
              f"types {score.typed_ok}/{score.typed})")
        for miss in score.misses:
            print(f"  {miss}")
    low = {k: round(figures[k], 3) for k, floor in FLOORS.items() if figures[k] < floor}
    assert not low, f"below the floor {FLOORS}: {low}"


def test_score_counts_false_accusations_misses_and_times() -> None:
    """The scorer itself: a wrong address, a missed one, a wrong time and a wrong type all count."""

    @dataclass
    class Inc:
        ip: object
        type: str
        time: datetime | None

    label = {"file": "x.eml", "ips": ["192.0.2.1", "192.0.2.2"],
             "times": {"192.0.2.1": "2026-01-01T00:00:00Z"}, "type": "spam", "types_ok": ["spam"],
             "ignore": ["198.51.100.9"], "alt": {"192.0.2.2": ["203.0.113.2"]}}
    score = Score()
    score_file(label, [Inc(ip_address("192.0.2.1"), "scanner", _utc("2026-01-01T01:00:00Z")),
                       Inc(ip_address("203.0.113.2"), "spam", None),       # alt of 192.0.2.2: a hit
                       Inc(ip_address("198.51.100.9"), "spam", None),      # ignored
                       Inc(ip_address("203.0.113.7"), "spam", None)], score)  # a false accusation
    assert (score.tp, score.fp, score.fn) == (2, 1, 0)
    assert (score.timed, score.timed_ok, score.typed, score.typed_ok) == (1, 0, 2, 1)
    score_file({**label, "ips": ["192.0.2.9"], "times": {}, "alt": {}}, [], score)
    assert score.fn == 1
