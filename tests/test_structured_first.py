"""Free text beside a structured result (issue 11, class 6): it enriches or vanishes, never adds a worse incident."""

from __future__ import annotations

from datetime import datetime, timezone
from ipaddress import ip_address

from abuso.model import Incident, merge_duplicates
from abuso.pipeline import Pipeline

from .test_arf import arf_mail

T1 = datetime(2026, 11, 24, 8, 30, tzinfo=timezone.utc)
T2 = datetime(2026, 11, 24, 9, 45, tzinfo=timezone.utc)


def inc(ip: str, parser: str, time: datetime | None = None, type_: str = "spam", evidence: str = "",
        port: int | None = None) -> Incident:
    return Incident(ip=ip_address(ip), type=type_, time=time, parser=parser,
                    zone="explicit" if time else "none", evidence=evidence, port=port)


def test_timeless_structured_incident_takes_the_earliest_free_text_time_and_port() -> None:
    found = [inc("192.0.2.1", "csv"), inc("192.0.2.1", "log", T2, "undetermined"),
             inc("192.0.2.1", "log", T1, "undetermined", port=25)]
    [merged] = merge_duplicates(found, ["log"])
    assert (merged.type, merged.time, merged.port, merged.zone) == ("spam", T1, 25, "explicit")
    assert merged.extra["time_from"] == "log" and merged.parser == "csv+log"


def test_a_timed_structured_incident_keeps_its_own_time() -> None:
    found = [inc("192.0.2.1", "arf", T2), inc("192.0.2.1", "log", T1)]
    assert [(i.time, i.parser) for i in merge_duplicates(found, ["log"])] == [(T2, "arf")]


def test_free_text_never_enriches_another_free_text_incident() -> None:
    found = [inc("192.0.2.1", "log"), inc("192.0.2.1", "log", T1)]
    assert {i.time for i in merge_duplicates(found, ["log"])} == {None, T1}


def test_free_text_read_in_a_restatement_vanishes_whatever_address_it_names() -> None:
    human = "Received by\nmx.provider.example (198.51.100.5) from IP 192.0.2.90 on 24 Nov 2026 08:30:00 +0000."
    found = [inc("192.0.2.90", "arf", T1),
             inc("198.51.100.5", "log", T1, evidence="mx.provider.example (198.51.100.5) from IP 192.0.2.90 on | "
                 "24 Nov 2026 08:30:00 +0000."),
             inc("203.0.113.7", "log", T1, evidence="203.0.113.7 scanned us at 08:30")]
    got = merge_duplicates(found, ["log"], restated=[human])
    assert [str(i.ip) for i in got] == ["192.0.2.90", "203.0.113.7"]  # a line elsewhere still stands


def test_cut_evidence_still_matches_its_restatement() -> None:
    human = "from IP 198.51.100.5 " + "x" * 300
    found = [inc("192.0.2.90", "arf", T1), inc("198.51.100.5", "log", evidence="from IP 198.51.100.5 xxxx…")]
    assert [str(i.ip) for i in merge_duplicates(found, ["log"], restated=[human])] == ["192.0.2.90"]


def test_restated_texts_do_not_touch_structured_incidents() -> None:
    found = [inc("192.0.2.90", "csv", T1, evidence="192.0.2.90,spam")]
    assert merge_duplicates(found, ["log"], restated=["192.0.2.90,spam"]) == found


def test_arf_human_part_naming_the_receiving_mx_adds_nothing_in_the_pipeline() -> None:
    human = ("This is an abuse report for a message received by mx4.provider.example (198.51.100.5)\n"
             "from IP 192.0.2.90 on Tue, 24 Nov 2026 10:11:12 +0000.")
    raw = arf_mail("Feedback-Type: abuse\nSource-IP: 192.0.2.90\nArrival-Date: Tue, 24 Nov 2026 10:11:12 +0000\n",
                   human=human)
    report = Pipeline.from_config({}).analyse(raw, "x")
    assert [str(i.ip) for i in report.incidents] == ["192.0.2.90"]
    assert report.verdicts["arf"].restated  # the human part is marked as the report told again


def test_human_part_of_a_report_that_found_nothing_is_not_a_restatement() -> None:
    """A not-spam report accuses nobody: its human part restates nothing, the free text stands as it is."""
    raw = arf_mail("Feedback-Type: not-spam\nSource-IP: 192.0.2.90\n", human="Sent from 203.0.113.9.")
    report = Pipeline.from_config({}).analyse(raw, "x")
    assert report.verdicts["arf"].restated == []


def test_a_restatement_of_the_reported_address_still_corroborates_it() -> None:
    human = "received from IP 192.0.2.90 on 24 Nov 2026 08:30:00 +0000"
    found = [inc("192.0.2.90", "arf", T1), inc("192.0.2.90", "log", T1, evidence=human)]
    assert [i.parser for i in merge_duplicates(found, ["log"], restated=[human])] == ["arf+log"]


def test_a_forwarders_own_log_line_above_pasted_fields_is_not_the_reports_restatement() -> None:
    """Only the paragraph right above pasted fields is their human part: the forwarder's log line stands."""
    body = ("Hello,\n\nour server logged this:\n\nNov 22 03:14:07 srv sshd[4242]: Failed password for root from "
            "192.0.2.17 port 51022 ssh2\n\nAnd this FBL report came in:\n\nThis is an abuse report for IP 192.0.2.90."
            "\n\nFeedback-Type: abuse\nVersion: 1\nSource-IP: 192.0.2.90\n"
            "Arrival-Date: Sat, 22 Nov 2026 03:00:00 +0000\n")
    raw = ("From: a@b.example\nTo: abuse@isp.example\nSubject: two things\nDate: Sat, 22 Nov 2026 04:00:00 +0100\n\n"
           + body).encode()
    report = Pipeline.from_config({}).analyse(raw, "x")
    assert sorted(str(i.ip) for i in report.incidents) == ["192.0.2.17", "192.0.2.90"]
