"""ARF reports that lack a field: where the source and the time come from instead (issue 11, classes 1-3)."""

from __future__ import annotations

from datetime import datetime, timezone
from ipaddress import ip_address

from abuso.pipeline import Pipeline

from .test_arf import arf_mail, parse

YAHOO_COPY = (
    "Received: from 127.0.0.1  (EHLO mx.sender.example) (192.0.2.8)\n"
    "  by mta34.mail.provider.example with SMTP; Thu, 29 Apr 2026 23:45:06 -0800\n"
    "Date: Thu, 29 Apr 2026 23:40:00 -0800\nSubject: spam\n\nbuy\n")


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=timezone.utc)


# --- class 1: no Source-IP --------------------------------------------------------------


def test_no_source_ip_takes_the_providers_qmail_style_hop() -> None:
    v = parse(arf_mail("Feedback-Type: abuse\nArrival-Date: Thu, 29 Apr 2026 23:45:10 -0800\n",
                       original=YAHOO_COPY))
    [inc] = v.incidents
    assert inc.ip == ip_address("192.0.2.8") and inc.extra["derived"] == "received"
    assert inc.time == utc(2026, 4, 30, 7, 45, 6) and inc.zone == "explicit"
    assert v.source_stated == "an ARF report"


def test_arf_that_finds_no_source_leaves_the_report_to_the_received_parser() -> None:
    """One verdict says what was missing, the other tries: never "no source" beside "ARF names it"."""
    local_only = ("Received: from localhost (localhost [127.0.0.1]) by mx.reporter.example with ESMTP id 1; "
                  "Thu, 29 Apr 2026 10:00:00 +0000\nSubject: spam\n\nbuy\n")
    raw = arf_mail("Feedback-Type: abuse\n", original=local_only)
    v = parse(raw)
    assert v.incidents == [] and not v.source_stated and "left to the received parser" in v.reason
    report = Pipeline.from_config({"parsers": ["arf", "received"]}).analyse(raw, "x")
    assert "names the source itself" not in report.verdicts["received"].reason


def test_received_parser_reads_a_chain_pasted_beside_a_sourceless_report() -> None:
    human = ("Trace headers of the message:\n\nReceived: from relay.sender.example (relay.sender.example "
             "[203.0.113.140])\n\tby mx2.reporter.example (Postfix) with ESMTP id 8; Wed, 25 Nov 2026 "
             "10:41:07 +0100\n")
    raw = arf_mail("Feedback-Type: abuse\n", original="", human=human)
    report = Pipeline.from_config({"parsers": ["arf", "received"]}).analyse(raw, "x")
    assert [(i.ip, i.time, i.parser) for i in report.incidents] == [
        (ip_address("203.0.113.140"), utc(2026, 11, 25, 9, 41, 7), "received")]


def test_a_report_with_source_ip_still_keeps_the_received_parser_out() -> None:
    raw = arf_mail("Feedback-Type: abuse\nSource-IP: 192.0.2.7\n", original=YAHOO_COPY)
    report = Pipeline.from_config({"parsers": ["arf", "received"]}).analyse(raw, "x")
    assert [str(i.ip) for i in report.incidents] == ["192.0.2.7"]
    assert "names the source itself" in report.verdicts["received"].reason


def test_not_spam_without_source_still_accuses_nobody() -> None:
    raw = arf_mail("Feedback-Type: not-spam\n", original=YAHOO_COPY)
    report = Pipeline.from_config({"parsers": ["arf", "received"]}).analyse(raw, "x")
    assert report.incidents == []
