"""The ARF parser: RFC 5965 / 6591 feedback reports, including the broken and forwarded ones."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from abuso.errors import InternalError
from abuso.normalize import normalize
from abuso.parsers import arf as arf_module
from abuso.parsers.arf import MAX_REPORTS, ArfParser, parse_fields, parse_ip, parse_stamp
from abuso.pipeline import Pipeline

from .conftest import CORPUS, NO_CORPUS, ROOT, sample_path

EXPECTED = yaml.safe_load((ROOT / "tests" / "data" / "expected" / "arf.yaml").read_text())
#: Entries whose incidents come from another parser (free-text log, Received chain).
NEEDS_OTHER_PARSER = {
    "abuseio/cleanmx/Cleanmx_Example_2.eml": "log",
    "abuseio/cleanmx/Cleanmx_Example_4.eml": "log",
    "samples/arf/no-source-ip.eml": "received",
    "samples/arf/no-original-pasted-headers.eml": "received",
}


def arf_mail(fields: str, *, date: str | None = "Tue, 24 Nov 2026 10:00:00 +0100",
             outer: str = "multipart/report; report-type=feedback-report",
             feedback_ctype: str = "message/feedback-report", original: str | None = None,
             human: str = "A user complained.") -> bytes:
    """A minimal ARF report with the given feedback fields."""
    head = "From: fbl@reporter.example\nTo: abuse@isp.example\nSubject: report\n"
    if date:
        head += f"Date: {date}\n"
    original = original if original is not None else (
        "Received: from mx.customer.example (mx.customer.example [192.0.2.50])\n"
        "\tby mx.reporter.example with ESMTP id 1; Tue, 24 Nov 2026 09:00:00 +0000\n"
        "Subject: spam\n\nbuy\n")
    body = (f"MIME-Version: 1.0\nContent-Type: {outer}; boundary=\"B\"\n\n"
            f"--B\nContent-Type: text/plain\n\n{human}\n\n"
            f"--B\nContent-Type: {feedback_ctype}\n\n{fields.strip()}\n\n"
            f"--B\nContent-Type: message/rfc822\n\n{original}\n--B--\n")
    return (head + body).encode()


def parse(raw: bytes, **options):
    return ArfParser(options).parse(normalize(raw))


# --- the expected incidents, with only the parsers this branch owns ----------------------


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if n not in NEEDS_OTHER_PARSER))
def test_expected_with_arf_and_xarf_alone(name: str) -> None:
    """arf + xarf alone already give every expected incident (other parsers may only add duplicates)."""
    if not name.startswith("samples/") and not CORPUS.is_dir():
        pytest.skip(NO_CORPUS)
    report = Pipeline.from_config({"parsers": ["arf", "xarf"]}).analyse(Path(sample_path(name)).read_bytes(), name)
    got = {(i.ip, i.type, i.time) for i in report.incidents}
    want = {(ipaddress.ip_address(str(e["ip"])), e["type"],
             datetime.fromisoformat(e["time"]) if e["time"] else None) for e in EXPECTED[name]}
    assert got == want, {k: str(v) for k, v in report.verdicts.items()}


# --- Feedback-Type -> type -------------------------------------------------------------


@pytest.mark.parametrize("feedback_type, expected", [
    ("abuse", "spam"),
    ("Abuse", "spam"),
    ("fraud", "phishing"),
    ("virus", "malware-distribution"),
    ("auth-failure", "masquerade"),
    ("other", "undetermined"),
    ("dmarc-something-new", "undetermined"),
])
def test_feedback_types(feedback_type: str, expected: str) -> None:
    v = parse(arf_mail(f"Feedback-Type: {feedback_type}\nSource-IP: 192.0.2.7\n"
                       "Arrival-Date: Tue, 24 Nov 2026 09:00:00 +0000"))
    assert v.applied
    assert [(str(i.ip), i.type) for i in v.incidents] == [("192.0.2.7", expected)]
    assert v.incidents[0].extra["feedback_type"] == feedback_type.lower()
    if feedback_type == "dmarc-something-new":
        assert "unknown Feedback-Type 'dmarc-something-new'" in v.reason


def test_not_spam_gives_no_incident_and_says_why() -> None:
    v = parse(arf_mail("Feedback-Type: not-spam\nSource-IP: 192.0.2.7"))
    assert v.applied and v.incidents == []
    assert "not-spam" in v.reason


def test_xarf_wrapper_is_left_to_the_xarf_parser() -> None:
    v = parse(arf_mail("Feedback-Type: xarf\nUser-Agent: X/1\nVersion: 1"))
    assert v.incidents == [] and "xarf parser" in v.reason


def test_missing_feedback_type_is_undetermined() -> None:
    v = parse(arf_mail("User-Agent: x\nSource-IP: 192.0.2.7", feedback_ctype="message/feedback-report"))
    assert [i.type for i in v.incidents] == ["undetermined"]
    assert "without a Feedback-Type" in v.reason


# --- times and zones -----------------------------------------------------------------


def test_arrival_date_with_offset_is_explicit() -> None:
    v = parse(arf_mail("Feedback-Type: abuse\nSource-IP: 192.0.2.7\nArrival-Date: Tue, 24 Nov 2026 09:00:00 -0500"))
    inc = v.incidents[0]
    assert inc.time == datetime(2026, 11, 24, 14, 0, tzinfo=timezone.utc) and inc.zone == "explicit"


def test_historic_received_date_is_used() -> None:
    v = parse(arf_mail("Feedback-Type: abuse\nSource-IP: 192.0.2.7\nReceived-Date: Tue, 24 Nov 2026 09:00:00 +0200"))
    assert v.incidents[0].time == datetime(2026, 11, 24, 7, 0, tzinfo=timezone.utc)


def test_naive_stamp_takes_the_report_date_offset() -> None:
    v = parse(arf_mail("Feedback-Type: abuse\nSource-IP: 192.0.2.7\nArrival-Date: Tue, 24 Nov 2026 09:00:00",
                       date="Tue, 24 Nov 2026 10:00:00 +0100"))
    inc = v.incidents[0]
    assert (inc.time, inc.zone) == (datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc), "date-header")


def test_naive_stamp_without_date_header_is_assumed_utc_or_configured_zone() -> None:
    raw = arf_mail("Feedback-Type: abuse\nSource-IP: 192.0.2.7\nArrival-Date: 2026-11-24 09:00:00", date=None)
    inc = parse(raw).incidents[0]
    assert (inc.time, inc.zone) == (datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc), "assumed-utc")
    inc = parse(raw, zone="CET").incidents[0]
    assert (inc.time, inc.zone) == (datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc), "default")
    inc = parse(raw, zone="Europe/Berlin").incidents[0]  # a region, in November: +1
    assert (inc.time, inc.zone) == (datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc), "default")


def test_naive_stamp_takes_a_zone_the_report_states_before_its_date_offset() -> None:
    raw = arf_mail("Feedback-Type: abuse\nSource-IP: 192.0.2.7\nArrival-Date: 2026-07-24 09:00:00",
                   date="Fri, 24 Jul 2026 10:00:00 -0500", human="Complaint received. All times are Europe/Berlin.")
    inc = parse(raw, zone="UTC").incidents[0]
    assert (inc.time, inc.zone) == (datetime(2026, 7, 24, 7, 0, tzinfo=timezone.utc), "stated")


def test_minus_zero_zone_is_utc() -> None:
    dt, explicit = parse_stamp("Tue, 04 Aug 2015 08:51:18 -0000")
    assert explicit and dt == datetime(2015, 8, 4, 8, 51, 18, tzinfo=timezone.utc)


def test_unknown_zone_name_is_not_taken_for_utc() -> None:
    dt, explicit = parse_stamp("Tue, 24 Nov 2026 13:05:01 XYZ")
    assert not explicit and dt is not None and dt.tzinfo is None


def test_no_time_uses_report_date_only_when_configured() -> None:
    raw = arf_mail("Feedback-Type: abuse\nSource-IP: 192.0.2.7", original="Subject: spam\n\nbuy\n")
    assert parse(raw).incidents[0].time is None  # nor the original nor the human part gives a time
    inc = parse(raw, date_fallback=True).incidents[0]
    assert inc.time == datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
    assert (inc.zone, inc.extra["time_from"]) == ("date-header", "date-header")


def test_unreadable_arrival_date_is_reported() -> None:
    v = parse(arf_mail("Feedback-Type: abuse\nSource-IP: 192.0.2.7\nArrival-Date: yesterday-ish",
                       original="Subject: spam\n\nbuy\n"))
    assert v.incidents[0].time is None and "unreadable Arrival-Date" in v.reason


# --- Source-IP and the Received fallback ------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("192.0.2.5", "192.0.2.5"),
    ("[192.0.2.5]", "192.0.2.5"),
    ("192.0.2.5 (mail.example)", "192.0.2.5"),
    ("IPv6:2001:db8::5", "2001:db8::5"),
    ("::ffff:192.0.2.5", "192.0.2.5"),
    ("0.0.0.0", None),
    ("unknown", None),
    ("", None),
])
def test_parse_ip(value: str, expected: str | None) -> None:
    ip = parse_ip(value)
    assert (str(ip) if ip else None) == expected


def test_missing_source_ip_falls_back_to_received_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def fake_source_of(msg, zone=None):
        seen.append(msg["Subject"])
        return SimpleNamespace(ip=ipaddress.ip_address("192.0.2.50"),
                               time=datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc), zone="explicit",
                               evidence="Received: from mx.customer.example ...")

    monkeypatch.setattr(arf_module, "_source_of", fake_source_of)
    v = parse(arf_mail("Feedback-Type: abuse\nArrival-Date: Tue, 24 Nov 2026 09:00:03 +0000"))
    assert seen == ["spam"], "the *attached original* must be searched, not the report"
    inc = v.incidents[0]
    assert (str(inc.ip), inc.type, inc.extra["derived"]) == ("192.0.2.50", "spam", "received")
    assert inc.time == datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)  # the hop's own stamp
    assert "Received chain" in v.reason and "Received: from mx.customer.example" in inc.evidence


def test_unusable_source_ip_also_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arf_module, "_source_of", lambda msg, zone=None: SimpleNamespace(
        ip=ipaddress.ip_address("192.0.2.50"), time=None, zone="none", evidence=""))
    v = parse(arf_mail("Feedback-Type: abuse\nSource-IP: redacted\nArrival-Date: Tue, 24 Nov 2026 09:00:03 +0000"))
    inc = v.incidents[0]
    assert str(inc.ip) == "192.0.2.50" and inc.extra["derived"] == "received"
    assert inc.time == datetime(2026, 11, 24, 9, 0, 3, tzinfo=timezone.utc)  # hop had none: Arrival-Date
    assert "unusable Source-IP 'redacted'" in v.reason


def test_fallback_finding_nothing_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arf_module, "_source_of", lambda msg, zone=None: None)
    v = parse(arf_mail("Feedback-Type: abuse"))
    assert v.applied and v.incidents == [] and "no source in the original's Received chain" in v.reason


def test_fallback_survives_a_failing_received_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(msg, zone=None):
        raise ValueError("bad header")

    monkeypatch.setattr(arf_module, "_source_of", boom)
    v = parse(arf_mail("Feedback-Type: abuse"))
    assert v.incidents == [] and "unreadable (ValueError)" in v.reason


def test_a_missing_received_module_is_a_broken_install_not_a_quiet_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(msg, zone=None):
        raise ModuleNotFoundError("No module named 'abuso.parsers.received'", name="abuso.parsers.received")

    monkeypatch.setattr(arf_module, "_source_of", missing)
    with pytest.raises(ImportError):
        parse(arf_mail("Feedback-Type: abuse"))
    with pytest.raises(InternalError, match="parser arf cannot import 'abuso'.*reinstall abuso"):
        Pipeline.from_config({"parsers": ["arf"]}).process(arf_mail("Feedback-Type: abuse"))


def test_fallback_with_the_real_received_parser() -> None:
    pytest.importorskip("abuso.parsers.received")
    v = parse(sample_path("samples/arf/no-source-ip.eml").read_bytes())
    assert [(str(i.ip), i.extra.get("derived")) for i in v.incidents] == [("192.0.2.77", "received")]


# --- structure: forwarded, broken, several, hostile ---------------------------------------


def test_feedback_part_as_text_plain_without_report_type() -> None:
    v = parse(arf_mail("Feedback-Type: abuse\nSource-IP: 192.0.2.8", outer="multipart/mixed",
                       feedback_ctype="text/plain; charset=us-ascii"))
    assert [str(i.ip) for i in v.incidents] == ["192.0.2.8"]


def test_text_mentioning_feedback_is_not_arf() -> None:
    raw = (b"From: a@b.example\nSubject: feedback\nContent-Type: text/plain\n\n"
           b"Thanks for the Feedback-Type: abuse tip.\n")
    v = parse(raw)
    assert not v.applied and v.reason == "not an ARF report (no feedback-report part)"


def test_forwarded_report_is_found() -> None:
    inner = arf_mail("Feedback-Type: fraud\nSource-IP: 192.0.2.9").decode()
    raw = ("From: noc@isp.example\nSubject: Fwd\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=O\n\n"
           f"--O\nContent-Type: text/plain\n\nfyi\n--O\nContent-Type: message/rfc822\n\n{inner}\n--O--\n").encode()
    v = parse(raw)
    assert [(str(i.ip), i.type) for i in v.incidents] == [("192.0.2.9", "phishing")]


def test_forwarded_as_base64_eml_attachment() -> None:
    import base64

    inner = arf_mail("Feedback-Type: abuse\nSource-IP: 192.0.2.12")
    raw = ("From: noc@isp.example\nSubject: Fwd\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=O\n\n"
           "--O\nContent-Type: text/plain\n\nfyi\n--O\nContent-Type: application/octet-stream; name=r.eml\n"
           "Content-Disposition: attachment; filename=r.eml\nContent-Transfer-Encoding: base64\n\n"
           + base64.encodebytes(inner).decode() + "--O--\n").encode()
    assert b"eedback" not in raw
    assert [str(i.ip) for i in parse(raw).incidents] == ["192.0.2.12"]


def test_spam_that_is_itself_an_arf_report_is_not_a_second_report() -> None:
    original = arf_mail("Feedback-Type: abuse\nSource-IP: 198.51.100.1").decode()
    v = parse(arf_mail("Feedback-Type: abuse\nSource-IP: 192.0.2.13", original=original))
    assert [str(i.ip) for i in v.incidents] == ["192.0.2.13"]


def test_many_reports_are_capped() -> None:
    reports = [arf_mail(f"Feedback-Type: abuse\nSource-IP: 10.0.{n // 250}.{n % 250 + 1}").decode()
               for n in range(MAX_REPORTS + 20)]
    parts = "".join(f"--D\nContent-Type: message/rfc822\n\n{r}\n" for r in reports)
    raw = f"From: x@y.example\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=D\n\n{parts}--D--\n".encode()
    v = parse(raw)
    assert len(v.incidents) == MAX_REPORTS and f"more than {MAX_REPORTS} feedback reports" in v.reason


@pytest.mark.parametrize("levels, found", [(5, True), (40, False)])
def test_nesting_is_followed_to_a_limit(levels: int, found: bool) -> None:
    msg = arf_mail("Feedback-Type: abuse\nSource-IP: 192.0.2.14").decode()
    for _ in range(levels):
        msg = f"From: f@x.example\nMIME-Version: 1.0\nContent-Type: message/rfc822\n\n{msg}"
    v = parse(msg.encode())
    if found:
        assert [str(i.ip) for i in v.incidents] == ["192.0.2.14"]
    else:  # beyond the normalizer's depth limit: not followed, and no crash
        assert not v.applied and v.incidents == []


def test_parse_fields_joins_folded_lines_and_skips_junk() -> None:
    fields = parse_fields("Feedback-Type: abuse\nAuthentication-Results: mx;\n  dkim=fail\n"
                          "[junk: x\nSource-IP: 1.2.3.4")
    assert fields["authentication-results"] == ["mx; dkim=fail"]
    assert "[junk" not in fields and fields["source-ip"] == ["1.2.3.4"]


def test_incident_fields() -> None:
    v = parse(arf_mail("Feedback-Type: abuse\nSource-IP: 192.0.2.7\nSource-Port: 5522\nReported-Domain: x.example\n"
                       "Arrival-Date: Tue, 24 Nov 2026 09:00:00 +0000"))
    inc = v.incidents[0]
    assert (inc.parser, inc.port, inc.extra["reported_domain"]) == ("arf", 5522, "x.example")
    assert inc.evidence.splitlines() == ["Feedback-Type: abuse", "Source-IP: 192.0.2.7", "Source-Port: 5522",
                                         "Reported-Domain: x.example", "Arrival-Date: Tue, 24 Nov 2026 09:00:00 +0000"]
    assert inc.taxonomy == "abusive-content"


# --- bail-out (its speed: bench/stage_speed.py) ------------------------------------------


def test_bails_out_on_non_arf_mail() -> None:
    body = "\n".join(f"Nov 24 03:14:{i % 60:02d} srv sshd[1]: Failed password for root from 192.0.2.{i % 250} port 22"
                     for i in range(400))
    msg = normalize(f"From: a@b.example\nSubject: ssh\nContent-Type: text/plain\n\n{body}\n".encode())
    v = ArfParser({}).parse(msg)
    assert not v.applied and not v.incidents and v.reason


# --- hostile input never raises ----------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300), st.sampled_from(["message/feedback-report", "text/plain", "text/plain; charset=utf-16"]))
def test_any_feedback_text_gives_a_verdict(fields: str, ctype: str) -> None:
    v = parse(arf_mail("Feedback-Type: abuse\n" + fields.replace("\r", ""), feedback_ctype=ctype))
    assert isinstance(v.reason, str) and len(v.incidents) <= 1
    for i in v.incidents:
        assert i.time is None or i.time.utcoffset().total_seconds() == 0


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_after_report_headers_give_a_verdict(junk: bytes) -> None:
    raw = arf_mail("Feedback-Type: abuse\nSource-IP: 192.0.2.1")
    v = parse(raw[: len(raw) // 2] + junk)
    assert isinstance(v.reason, str)


@pytest.mark.parametrize("cte", ["base64", "quoted-printable"])
def test_transfer_encoded_feedback_part(cte: str) -> None:
    import base64

    fields = b"Feedback-Type: abuse\nSource-IP: 192.0.2.15\nArrival-Date: Tue, 24 Nov 2026 09:00:00 +0000\n"
    # quoted-printable with a soft line break inside the address: only right if it is decoded
    enc = base64.encodebytes(fields) if cte == "base64" else fields.replace(b"192.0.2.15", b"192.0.=\n2.15")
    raw = arf_mail("PLACEHOLDER", feedback_ctype=f"message/feedback-report\nContent-Transfer-Encoding: {cte}")
    raw = raw.replace(b"PLACEHOLDER", enc.strip())
    assert [(str(i.ip), i.type) for i in parse(raw).incidents] == [("192.0.2.15", "spam")]


def test_declared_report_without_feedback_part_says_truncated() -> None:
    raw = (b"From: f@x.example\nMIME-Version: 1.0\nContent-Type: multipart/report; report-type=feedback-report;"
           b" boundary=B\n\n--B\nContent-Type: text/plain\n\nA user compl")
    v = parse(raw)
    assert v.applied and v.incidents == [] and "truncated" in v.reason
