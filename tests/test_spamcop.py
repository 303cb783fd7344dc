"""The spamcop parser: SpamCop source and spamvertised-site reports, recognised by content."""

from __future__ import annotations

from datetime import datetime, timezone
from ipaddress import ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abuso.normalize import normalize
from abuso.parsers.spamcop import SpamCopParser, report_sections

from .conftest import CORPUS, NO_CORPUS, SAMPLES


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=timezone.utc)


def parse(raw: bytes | str, **options):
    if isinstance(raw, str):
        raw = raw.encode()
    return SpamCopParser(options).parse(normalize(raw))


def found(v) -> list[tuple]:
    return [(str(i.ip), i.time, i.zone, i.extra.get("role")) for i in v.incidents]


HEAD = "From: someone@example.org\nTo: abuse@isp.example\nSubject: {subject}\nDate: Mon, 23 Nov 2026 08:00:00 +0000\n\n"


def test_source_report() -> None:
    v = parse((SAMPLES / "spamcop" / "v5-source.eml").read_bytes())
    assert v.applied
    assert found(v) == [("192.0.2.55", utc(2026, 11, 23, 7, 51, 10), "explicit", "source")]
    assert v.incidents[0].type == "spam" and v.incidents[0].parser == "spamcop"
    assert v.incidents[0].evidence == "Email from 192.0.2.55 / Mon, 23 Nov 2026 07:51:10 -0000"


def test_every_section_of_a_report() -> None:
    v = parse((SAMPLES / "spamcop" / "multi-section.eml").read_bytes())
    assert found(v) == [
        ("203.0.113.14", utc(2026, 11, 24, 3, 12, 40), "explicit", "source"),
        ("203.0.113.80", utc(2026, 11, 24, 3, 15, 2), "explicit", "spamvertised"),
        ("2001:db8:80::5", utc(2026, 11, 24, 3, 15, 3), "explicit", "spamvertised"),
        ("198.51.100.81", utc(2026, 11, 24, 3, 15, 3), "explicit", "spamvertised"),
    ]
    assert v.incidents[1].extra["url"] == "http://pills.example/buy"
    assert {i.taxonomy for i in v.incidents} == {"abusive-content"}


def test_text_after_offending_message_is_the_spam_not_the_report() -> None:
    v = parse((SAMPLES / "spamcop" / "multi-section.eml").read_bytes())
    assert ip_address("198.51.100.99") not in {i.ip for i in v.incidents}
    text = "[ SpamCop V5.4.0 ]\nEmail from 192.0.2.1 / x\n[ Offending message ]\nspam\n[ SpamCop V5.4.0 ]\nsecond\n"
    assert report_sections(text) == "[ SpamCop V5.4.0 ]\nEmail from 192.0.2.1 / x\n\n[ SpamCop V5.4.0 ]\nsecond\n"


def test_forwarded_inline_by_a_colleague_with_a_wrapped_date() -> None:
    v = parse((SAMPLES / "spamcop" / "forwarded-inline.eml").read_bytes())
    assert found(v) == [("198.51.100.200", utc(2026, 11, 25, 9, 10, 11), "explicit", "source")]
    assert v.incidents[0].evidence.endswith("Wed, 25 Nov 2026 09:10:11 -0000")


def test_two_reports_attached_by_a_colleague() -> None:
    v = parse((SAMPLES / "spamcop" / "attached-two-reports.eml").read_bytes())
    assert found(v) == [("2001:db8:4::1", utc(2026, 11, 26, 4, 58, 30), "explicit", "source"),
                        ("192.0.2.180", utc(2026, 11, 26, 6, 0, 59), "explicit", "spamvertised")]


def test_old_resolves_to_without_time_and_date_fallback() -> None:
    raw = (SAMPLES / "spamcop" / "v1-quoted-resolves.eml").read_bytes()
    assert found(parse(raw)) == [("198.51.100.66", None, "none", "spamvertised")]
    assert found(parse(raw, date_fallback=True)) == [
        ("198.51.100.66", utc(2026, 11, 27, 12), "date-header", "spamvertised")]


def test_mentioning_spamcop_is_not_a_report() -> None:
    v = parse((SAMPLES / "spamcop" / "mentions-only.eml").read_bytes())
    assert not v.applied and not v.incidents and "no SpamCop banner" in v.reason


def test_not_spamcop_at_all() -> None:
    v = parse(HEAD.format(subject="hello") + "Email from 192.0.2.1 / Mon, 23 Nov 2026 07:51:10 -0000\n")
    assert not v.applied and not v.incidents


def test_selection_does_not_depend_on_the_sender() -> None:
    body = "[ SpamCop V5.4.0 ]\nEmail from 192.0.2.9 / Mon, 23 Nov 2026 07:51:10 -0000\n"
    v = parse(HEAD.format(subject="re-sent") + body)
    assert found(v) == [("192.0.2.9", utc(2026, 11, 23, 7, 51, 10), "explicit", "source")]


def test_subject_tag_or_sourceip_header_when_the_body_names_no_source() -> None:
    v = parse(HEAD.format(subject="[SpamCop (192.0.2.44) id:123]Buy") + "the body was cut off\n")
    assert found(v) == [("192.0.2.44", None, "none", "source")]
    v = parse("X-SpamCop-sourceip: 192.0.2.45\n" + HEAD.format(subject="[SpamCop (192.0.2.45) id:1]x") + "cut\n")
    assert found(v) == [("192.0.2.45", None, "none", "source")]


def test_empty_sourceip_header_is_ignored() -> None:
    v = parse("X-Spamcop-Sourceip:\n" + HEAD.format(subject="x")
              + "- SpamCop V1.3.3 -\nhttp://spamcop.net/w3m?i=z1z\nEmail from 192.0.2.7 / 19 Jun 2003 17:34:13 -0400\n")
    assert found(v) == [("192.0.2.7", utc(2003, 6, 19, 21, 34, 13), "explicit", "source")]


def test_report_without_addresses_says_so() -> None:
    v = parse(HEAD.format(subject="x") + "[ SpamCop V5.4.0 ]\nEmail from nowhere / never\n")
    assert v.applied and not v.incidents and "without an 'Email from'" in v.reason


def test_open_proxy_note_marks_the_source() -> None:
    v = parse(HEAD.format(subject="x") + "[ SpamCop V1.3.4 ]\nEmail from 192.0.2.8 / 19 Jun 2003 17:34:13 -0400\n"
              "192.0.2.8 is open proxy, see: http://www.spamcop.net/mky-proxies.html\n")
    assert len(v.incidents) == 1 and v.incidents[0].extra["open_proxy"] is True


@pytest.mark.skipif(not CORPUS.is_dir(), reason=NO_CORPUS)
@pytest.mark.parametrize("name", ["spamcop-01.eml", "spamcop-02.eml", "spamcop-03.eml", "spamcop-04.eml",
                                  "spamcop-05.eml", "received-01.eml", "received-02.eml"])
def test_corpus_reports(name: str) -> None:
    v = parse((CORPUS / "mail-abuse" / name).read_bytes())
    assert found(v) == [("10.0.0.1", utc(2003, 6, 19, 21, 34, 13), "explicit", "source")]


@pytest.mark.skipif(not CORPUS.is_dir(), reason=NO_CORPUS)
def test_no_false_positive_on_the_rest_of_the_corpus() -> None:
    others = [p for p in CORPUS.rglob("*.eml") if not p.name.startswith(("spamcop-", "received-"))]
    assert others
    applied = [p.name for p in others if parse(p.read_bytes()).applied]
    assert applied == []


def test_summary_report_rows() -> None:
    v = parse((SAMPLES / "spamcop" / "summary.eml").read_bytes())
    assert found(v) == [("192.0.2.17", utc(2026, 12, 31, 22), "assumed-utc", "summary"),
                        ("2001:db8:9::3", utc(2027, 1, 1, 6), "assumed-utc", "summary"),
                        ("203.0.113.200", utc(2027, 1, 1, 23), "assumed-utc", "summary")]
    assert dict(v.incidents[2].extra) == {"role": "summary",
                                          "spamcop_counts": {"trap": 51, "user": 0, "mole": 0, "simp": 0},
                                          "comments": "delisted manually, blocklisted"}


def test_summary_user_count_is_not_a_subscriber() -> None:
    """SpamCop's "User" column counts its users' reports: no user= in text, no source.account, no index user."""
    from abuso.output import intelmq, text
    from abuso.pipeline import Pipeline

    body = ("IP_Address Start/Length Trap User Mole Simp Comments\n"
            "192.0.2.17  Dec 31 22h/2     4    7    0    0\n")
    raw = ("From: summary@admin.spamcop.net\nSubject: summary\nDate: Thu, 01 Jan 2027 08:00:00 +0000\n\n"
           + body).encode()
    pipeline = Pipeline.from_config({"parsers": ["spamcop"]})
    report = pipeline.analyse(raw)
    assert [str(i.ip) for i in report.incidents] == ["192.0.2.17"]
    assert report.incidents[0].extra["spamcop_counts"]["user"] == 7
    assert "user=" not in text.render(report)
    assert "source.account" not in intelmq.render(report)


def test_summary_without_date_has_no_time() -> None:
    body = ("IP_Address Start/Length Trap User Mole Simp Comments\n"
            "192.0.2.17  Dec 31 22h/2     4    1    0    0\n")
    v = parse("From: summary@x.example\nSubject: summary\n\n" + body)
    assert found(v) == [("192.0.2.17", None, "none", "summary")]


def test_email_from_outside_spamcop_text_is_ignored() -> None:
    raw = ("From: a@example.org\nSubject: [SpamCop (192.0.2.1) id:9]x\nMIME-Version: 1.0\n"
           "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nreport text cut\n"
           "--b\nContent-Type: text/plain\n\nEmail from 198.51.100.1 / Mon, 23 Nov 2026 07:51:10 -0000\n--b--\n")
    assert found(parse(raw)) == [("192.0.2.1", None, "none", "source")]


def test_date_without_offset_is_assumed_utc() -> None:
    v = parse(HEAD.format(subject="x") + "[ SpamCop V5.4.0 ]\nEmail from 192.0.2.3 / Mon, 23 Nov 2026 07:51:10\n")
    assert found(v) == [("192.0.2.3", utc(2026, 11, 23, 7, 51, 10), "assumed-utc", "source")]


def test_pipeline_json_keeps_roles_and_urls() -> None:
    """What a desk sees with --format json: the spamvertised role and URL next to the address."""
    from abuso.pipeline import Pipeline

    pipeline = Pipeline.from_config({"parsers": ["received", "spamcop"],
                                     "filters": {"ip": {"within": ["203.0.113.0/24"]}}})
    report = pipeline.analyse((SAMPLES / "spamcop" / "multi-section.eml").read_bytes(), "multi-section.eml")
    d = report.to_dict()
    assert d["valid"] and d["filtered"] == {"ip": 2}
    assert [(i["ip"], i["taxonomy"], i.get("role"), i.get("url")) for i in d["incidents"]] == [
        ("203.0.113.14", "abusive-content", "source", None),
        ("203.0.113.80", "abusive-content", "spamvertised", "http://pills.example/buy"),
    ]
    assert "not second-guessed" in d["verdicts"]["received"]


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400))
def test_hostile_report_text_never_raises(noise: str) -> None:
    body = f"[ SpamCop V5.4.0 ]\nEmail from {noise} / {noise}\nSpamvertised web site: {noise}\n{noise} is {noise}\n"
    v = parse(HEAD.format(subject="x") + body)
    assert v.applied and all(i.time is None or i.time.tzinfo is not None for i in v.incidents)


def test_long_lines_stay_fast() -> None:
    """CPU time, not wall time: a busy machine must not make a linear reading look slow."""
    import time

    body = "[ SpamCop V5.4.0 ]\nSpamvertised web site: x\n" + ("a" * 200_000 + " is ") * 3 + "\n" + "1." * 100_000
    start = time.process_time()
    parse(HEAD.format(subject="x") + body)
    assert time.process_time() - start < 2.0


def test_truncated_report_next_to_a_complete_one() -> None:
    raw = ("From: colleague@isp.example\nSubject: two reports\nMIME-Version: 1.0\n"
           "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nsee attached\n"
           "--b\nContent-Type: message/rfc822\n\nSubject: [SpamCop (192.0.2.10) id:1]a\n\n"
           "[ SpamCop V5.4.0 ]\nEmail from 192.0.2.10 / Mon, 23 Nov 2026 07:51:10 -0000\n"
           "--b\nContent-Type: message/rfc822\n\nSubject: [SpamCop (192.0.2.11) id:2]b\n\n(body lost)\n--b--\n")
    assert found(parse(raw)) == [("192.0.2.10", utc(2026, 11, 23, 7, 51, 10), "explicit", "source"),
                                 ("192.0.2.11", None, "none", "source")]
