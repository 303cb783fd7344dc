"""ARF reports that lack a field: where the source and the time come from instead (issue 11, classes 1-3)."""

from __future__ import annotations

from datetime import datetime, timezone
from ipaddress import ip_address

import pytest

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


# --- class 2: no Arrival-Date -----------------------------------------------------------

CHAIN = ("Received: from mx-in.reporter.example (mx-in.reporter.example [10.1.1.5]) by store.reporter.example "
         "with LMTP id 1; Mon, 16 Nov 2026 08:00:09 +0100\n"
         "Received: from mail.sender.example (mail.sender.example [192.0.2.150]) by mx-in.reporter.example "
         "(Postfix) with ESMTP id 2; Mon, 16 Nov 2026 08:00:05 +0100\n")


def test_no_arrival_date_takes_the_hop_whose_client_is_the_source() -> None:
    [inc] = parse(arf_mail("Feedback-Type: abuse\nSource-IP: 192.0.2.150\n",
                           original=CHAIN + "Date: Mon, 16 Nov 2026 06:59:58 +0000\n\nx\n")).incidents
    assert (inc.time, inc.zone, inc.extra["time_from"]) == (utc(2026, 11, 16, 7, 0, 5), "explicit", "received")


def test_no_arrival_date_and_source_not_in_the_chain_takes_the_newest_hop() -> None:
    [inc] = parse(arf_mail("Feedback-Type: abuse\nSource-IP: 203.0.113.9\n", original=CHAIN + "\nx\n")).incidents
    assert (inc.time, inc.extra["time_from"]) == (utc(2026, 11, 16, 7, 0, 9), "received")


def test_no_arrival_date_naive_received_date_takes_the_reports_zone() -> None:
    chain = ("Received: from a.example (a.example [192.0.2.150]) by mx.reporter.example with ESMTP id 3; "
             "Mon, 16 Nov 2026 08:00:05\n\nx\n")
    [inc] = parse(arf_mail("Feedback-Type: abuse\nSource-IP: 192.0.2.150\n", original=chain,
                           date="Mon, 16 Nov 2026 09:00:00 -0500")).incidents
    assert (inc.time, inc.zone) == (utc(2026, 11, 16, 13, 0, 5), "date-header")


def test_no_arrival_date_nor_received_takes_the_originals_date() -> None:
    [inc] = parse(arf_mail("Feedback-Type: abuse\nSource-IP: 192.0.2.150\n",
                           original="Date: Tue, 17 Nov 2026 22:10:00 -0500\nSubject: s\n\nx\n")).incidents
    assert (inc.time, inc.zone, inc.extra["time_from"]) == (utc(2026, 11, 18, 3, 10), "explicit", "original-date")


def test_no_original_takes_the_human_readable_parts_time_wrapped_or_not() -> None:
    human = "This is an abuse report for a message received from IP\n192.0.2.150 on Thu, 29 Apr\n2026 23:34:45 +0000."
    [inc] = parse(arf_mail("Feedback-Type: abuse\nSource-IP: 192.0.2.150\n", original="Subject: s\n\nx\n",
                           human=human)).incidents
    assert (inc.time, inc.zone, inc.extra["time_from"]) == (utc(2026, 4, 29, 23, 34, 45), "explicit", "human-part")


def test_naive_time_in_the_human_part_takes_the_zone_the_report_states() -> None:
    human = "All times are CET.\nReceived from 192.0.2.150 on 2026-11-19 14:05:33."
    [inc] = parse(arf_mail("Feedback-Type: abuse\nSource-IP: 192.0.2.150\n", original="Subject: s\n\nx\n",
                           human=human, date=None)).incidents
    assert (inc.time, inc.zone) == (utc(2026, 11, 19, 13, 5, 33), "stated")


def test_arrival_date_still_wins() -> None:
    [inc] = parse(arf_mail("Feedback-Type: abuse\nSource-IP: 192.0.2.150\n"
                           "Arrival-Date: Mon, 16 Nov 2026 07:30:00 +0000\n", original=CHAIN + "\nx\n")).incidents
    assert inc.time == utc(2026, 11, 16, 7, 30) and "time_from" not in inc.extra


# --- class 3: forwarded reports, found by content ---------------------------------------

FIELDS = ("Feedback-Type: abuse\r\nUser-Agent: FBL/1\r\nVersion: 1\r\nSource-IP: 192.0.2.211\r\n"
          "Arrival-Date: Sat, 21 Nov 2026 18:22:05 +0000\r\n")
ORIGINAL = ("Received: from out.sender.example (out.sender.example [192.0.2.211]) by mx.provider.example with ESMTP "
            "id 1; Sat, 21 Nov 2026 18:22:04 +0000\r\nFrom: a@sender.example\r\nSubject: s\r\n\r\nbuy\r\n")


def _b64(text: str) -> str:
    import base64

    return base64.encodebytes(text.encode()).decode()


def forward(*parts: tuple[str, str]) -> bytes:
    """A person's forward: a note, then each (Content-Type line, base64 content) as an attachment."""
    out = ("From: admin@isp.example\nTo: abuse@isp.example\nSubject: FW: complaint\n"
           "Date: Sat, 21 Nov 2026 20:00:00 +0100\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"F\"\n\n"
           "--F\nContent-Type: text/plain\n\nplease check\n")
    for ctype, content in parts:
        out += f"--F\nContent-Type: {ctype}\nContent-Transfer-Encoding: base64\n\n{_b64(content)}\n"
    return (out + "--F--\n").encode()


def test_fields_rewrapped_as_octet_stream_att00001_are_read() -> None:
    raw = forward(('application/octet-stream; name="ATT00001"', FIELDS),
                  ('application/octet-stream; name="ATT00002"', ORIGINAL))
    v = parse(raw)
    [inc] = v.incidents
    assert (str(inc.ip), inc.type, inc.time) == ("192.0.2.211", "spam", utc(2026, 11, 21, 18, 22, 5))
    assert v.source_stated == "an ARF report"


def test_opaque_original_beside_rewrapped_fields_feeds_the_fallbacks() -> None:
    """Without Source-IP nor Arrival-Date, the re-wrapped original (ATT00002) gives both."""
    fields = FIELDS.replace("Source-IP: 192.0.2.211\r\n", "").replace(
        "Arrival-Date: Sat, 21 Nov 2026 18:22:05 +0000\r\n", "")
    raw = forward(('application/octet-stream; name="ATT00001"', fields),
                  ('application/octet-stream; name="ATT00002"', ORIGINAL))
    [inc] = parse(raw).incidents
    assert (str(inc.ip), inc.time, inc.extra["derived"]) == ("192.0.2.211", utc(2026, 11, 21, 18, 22, 4), "received")


def test_fields_as_nameless_text_attachment_are_read() -> None:
    raw = forward(('text/plain; name="noname"', FIELDS), ("message/rfc822", ORIGINAL))
    assert [str(i.ip) for i in parse(raw).incidents] == ["192.0.2.211"]


def test_whole_report_as_nameless_octet_stream_is_read() -> None:
    report = ("From: fbl@provider.example\r\nSubject: report\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; "
              "report-type=feedback-report; boundary=\"R\"\r\n\r\n--R\r\nContent-Type: text/plain\r\n\r\nhuman\r\n"
              f"--R\r\nContent-Type: message/feedback-report\r\n\r\n{FIELDS}\r\n--R\r\nContent-Type: message/rfc822"
              f"\r\n\r\n{ORIGINAL}\r\n--R--\r\n")
    raw = forward(("application/octet-stream", report))
    report_out = Pipeline.from_config({}).analyse(raw, "x")
    assert [(str(i.ip), i.time) for i in report_out.incidents] == [("192.0.2.211", utc(2026, 11, 21, 18, 22, 5))]


def test_an_opaque_file_that_is_not_a_report_is_left_alone() -> None:
    raw = forward(("application/octet-stream", "Name: value\nOther: thing\n\nFeedback welcome!\n"))
    assert parse(raw).applied is False


PASTED = """Another one.

-----Original Message-----
From: Feedback Loop <fbl@mailbox.example>
Sent: Monday, November 23, 2026 1:46 PM
Subject: Email Feedback Report for IP 203.0.113.58

This is an email abuse report for a message received from IP 203.0.113.58.

Feedback-Type: abuse
User-Agent: Mailbox-FBL/2.0
Version: 1
Arrival-Date: Mon, 23 Nov 2026 07:45:12 -0500
Source-IP: 203.0.113.58

Received: from bulk.sender.example (bulk.sender.example [203.0.113.58])
        by mx1.mailbox.example with ESMTP id 77; Mon, 23 Nov 2026 07:45:10 -0500
Subject: Cheap watches
"""


def _plain(body: str) -> bytes:
    return ("From: kim@isp.example\nTo: abuse@isp.example\nSubject: FW: report\n"
            "Date: Mon, 23 Nov 2026 15:02:00 +0100\n\n" + body).encode()


def test_fields_pasted_in_a_forward_are_read_where_they_sit_and_state_the_source() -> None:
    report = Pipeline.from_config({"parsers": ["arf", "received"]}).analyse(_plain(PASTED), "x")
    assert [(str(i.ip), i.time, i.parser) for i in report.incidents] == [
        ("203.0.113.58", utc(2026, 11, 23, 12, 45, 12), "arf")]
    assert "names the source itself" in report.verdicts["received"].reason


def test_pasted_fields_without_source_take_the_pasted_original() -> None:
    body = PASTED.replace("Source-IP: 203.0.113.58\n", "")
    body = body.replace("Arrival-Date: Mon, 23 Nov 2026 07:45:12 -0500\n", "")
    [inc] = parse(_plain(body)).incidents
    assert (str(inc.ip), inc.time) == ("203.0.113.58", utc(2026, 11, 23, 12, 45, 10))


def test_a_lone_feedback_type_line_in_prose_is_not_a_report() -> None:
    v = parse(_plain("Hello,\nFeedback-Type: abuse is what we send.\n\nRegards\n"))
    assert v.incidents == [] and v.applied is False


def test_a_digest_of_pasted_blocks_is_capped() -> None:
    from abuso.parsers.arf_reports import MAX_REPORTS

    block = "Feedback-Type: abuse\nVersion: 1\nSource-IP: 192.0.2.{n}\n\n"
    body = "".join(block.format(n=n % 250 + 1) for n in range(MAX_REPORTS + 50))
    v = parse(_plain(body))
    assert len(v.incidents) == MAX_REPORTS


def test_no_source_ip_fallback_takes_the_providers_trusted_relays() -> None:
    """A provider's edge relay in another domain stops the walk unless ``trusted`` names it."""
    chain = ("Received: from edge7.fbl-relay.example (edge7.fbl-relay.example [198.51.100.7]) by "
             "store.provider.example with ESMTP id 1; Thu, 29 Apr 2026 10:00:05 +0000\n"
             "Received: from mx.sender.example (mx.sender.example [192.0.2.8]) by edge7.fbl-relay.example with "
             "ESMTP id 2; Thu, 29 Apr 2026 10:00:03 +0000\nSubject: spam\n\nbuy\n")
    raw = arf_mail("Feedback-Type: abuse\n", original=chain)
    assert [str(i.ip) for i in parse(raw).incidents] == ["198.51.100.7"]
    assert [str(i.ip) for i in parse(raw, trusted=["fbl-relay.example"]).incidents] == ["192.0.2.8"]


def test_arf_trusted_option_is_checked_at_load() -> None:
    from abuso.config import load
    from abuso.errors import ConfigError

    load({"parsers": [{"arf": {"trusted": ["192.0.2.0/24", "fbl-relay.example"]}}]})
    with pytest.raises(ConfigError) as e:
        load({"parsers": [{"arf": {"trusted": ["not a domain!"]}}]})
    assert "parsers.arf.trusted[0]" in str(e.value)


REPORT = ("From: fbl@provider.example\r\nSubject: report\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; "
          "report-type=feedback-report; boundary=\"R\"\r\n\r\n--R\r\nContent-Type: text/plain\r\n\r\nhuman\r\n"
          f"--R\r\nContent-Type: message/feedback-report\r\n\r\n{FIELDS}\r\n--R\r\nContent-Type: message/rfc822"
          f"\r\n\r\n{ORIGINAL}\r\n--R--\r\n")


def test_whole_report_as_base64_message_rfc822_is_decoded_and_read() -> None:
    """RFC 2046 forbids base64 for message/rfc822; forwarding clients do it anyway."""
    report = Pipeline.from_config({}).analyse(forward(('message/rfc822; name="ATT00001.eml"', REPORT)), "x")
    assert [(str(i.ip), i.parser, i.time) for i in report.incidents] == [
        ("192.0.2.211", "arf", utc(2026, 11, 21, 18, 22, 5))]


def test_spam_forwarded_as_base64_message_rfc822_keeps_its_received_chain() -> None:
    report = Pipeline.from_config({"parsers": ["received"]}).analyse(forward(("message/rfc822", ORIGINAL)), "x")
    assert [(str(i.ip), i.time) for i in report.incidents] == [("192.0.2.211", utc(2026, 11, 21, 18, 22, 4))]


@pytest.mark.parametrize("ctype", ['text/plain; name="ATT00001.txt"', 'text/plain; name="noname"',
                                   'application/octet-stream; name="ATT00001.bin"', "application/x-unknown"])
def test_whole_report_rewrapped_under_any_label_is_read(ctype: str) -> None:
    report = Pipeline.from_config({}).analyse(forward((ctype, REPORT)), "x")
    assert [str(i.ip) for i in report.incidents] == ["192.0.2.211"]


def test_fields_pasted_in_an_html_only_forward_are_read() -> None:
    html = ("<html><body><p>FYI</p><div>-----Original Message-----<br>From: FBL &lt;fbl@mailbox.example&gt;<br>"
            "Sent: Monday, November 23, 2026 1:46 PM<br>Subject: report<br><br>This is an abuse report.<br><br>"
            "Feedback-Type: abuse<br>User-Agent: FBL/2<br>Version: 1<br>"
            "Arrival-Date: Mon, 23 Nov 2026 07:45:12 -0500<br>Source-IP: 203.0.113.58<br></div></body></html>")
    raw = ("From: kim@isp.example\nTo: abuse@isp.example\nSubject: FW: report\nMIME-Version: 1.0\n"
           "Content-Type: text/html; charset=us-ascii\n\n" + html).encode()
    [inc] = Pipeline.from_config({}).analyse(raw, "x").incidents
    assert (str(inc.ip), inc.type, inc.time) == ("203.0.113.58", "spam", utc(2026, 11, 23, 12, 45, 12))


# --- Microsoft JMRP: the Subject is the source statement ---------------------------------

def _jmrp(subject: str, attached: str | None = ORIGINAL) -> bytes:
    head = f"From: staff@hotmail.example\nTo: fbl@isp.example\nSubject: {subject}\nMIME-Version: 1.0\n"
    if attached is None:
        return (head + "Content-Type: text/plain\n\nno attachment\n").encode()
    return (head + 'Content-Type: multipart/mixed; boundary="J"\n\n--J\nContent-Type: message/rfc822\n\n'
            + attached.replace("\r\n", "\n") + "\n--J--\n").encode()


def test_jmrp_subject_is_the_source_and_the_received_parser_stays_out() -> None:
    report = Pipeline.from_config({}).analyse(_jmrp("complaint about message from 192.0.2.211"), "x")
    assert [(str(i.ip), i.type, i.time, i.parser) for i in report.incidents] == [
        ("192.0.2.211", "spam", utc(2026, 11, 21, 18, 22, 4), "arf")]
    assert "JMRP" in report.verdicts["received"].reason


def test_jmrp_subject_naming_another_address_than_the_chain_wins_over_it() -> None:
    report = Pipeline.from_config({}).analyse(_jmrp("complaint about message from 203.0.113.5"), "x")
    [inc] = report.incidents
    assert (str(inc.ip), inc.time, inc.extra["time_from"]) == ("203.0.113.5", utc(2026, 11, 21, 18, 22, 4),
                                                              "received")


def test_jmrp_like_subject_without_an_attached_message_is_left_to_free_text() -> None:
    v = parse(_jmrp("complaint about message from 192.0.2.211", attached=None))
    assert not v.applied


def test_other_subjects_are_not_jmrp() -> None:
    assert not parse(_jmrp("Re: complaint about message from you")).applied
    assert not parse(_jmrp("complaint about message from 192.0.2.211 and others")).applied
