"""The X-ARF parser: 0.2 YAML report.txt, the JSON generations, and hostile or broken reports."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abuso.normalize import normalize
from abuso.parsers.xarf import MAX_DOC_BYTES, XarfParser, ip_for_source, split_broken_multipart, type_of

from .conftest import sample_path

REPORT = """---
Reported-From: reports@reporter.example
Category: {category}
Report-Type: {report_type}
Service: {service}
Version: 0.2
Date: {date}
Source-Type: {source_type}
Source: {source}
Port: {port}
"""


def xarf_mail(report: str, *, header: str = "X-ARF: YES", name: str = 'name="report.txt"',
              body: str = "Hello abuse team, see the report.", date: str = "Tue, 24 Nov 2026 10:00:00 +0100",
              extra_parts: str = "") -> bytes:
    return (f"From: r@reporter.example\nTo: abuse@isp.example\nSubject: abuse report\nDate: {date}\n"
            f"{header}\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"X\"\n\n"
            f"--X\nContent-Type: text/plain; charset=utf-8\n\n{body}\n\n"
            f"--X\nContent-Type: text/plain; charset=utf-8; {name}\n\n{report}\n{extra_parts}--X--\n").encode()


def report(**kw: str) -> str:
    values = {"category": "abuse", "report_type": "login-attack", "service": "ssh",
              "date": "Tue, 24 Nov 2026 09:14:07 +0100", "source_type": "ip-address", "source": "192.0.2.33",
              "port": "22"}
    values.update(kw)
    return REPORT.format(**values)


def parse(raw: bytes, **options):
    return XarfParser(options).parse(normalize(raw))


def one(v) -> tuple:
    assert len(v.incidents) == 1, v.reason
    i = v.incidents[0]
    return str(i.ip), i.type, i.time, i.zone


# --- X-ARF 0.2 ---------------------------------------------------------------------


def test_xarf_02_login_attack() -> None:
    v = parse(xarf_mail(report()))
    assert one(v) == ("192.0.2.33", "brute-force", datetime(2026, 11, 24, 8, 14, 7, tzinfo=timezone.utc),
                      "explicit")
    inc = v.incidents[0]
    assert inc.parser == "xarf" and inc.port is None and inc.extra["destination_port"] == 22
    assert "Source: 192.0.2.33" in inc.evidence


def test_attached_log_is_evidence() -> None:
    log = '--X\nContent-Type: text/plain; name="logfile.log"\n\nNov 24 09:14:07 srv sshd[1]: Failed password\n'
    inc = parse(xarf_mail(report(), extra_parts=log)).incidents[0]
    assert inc.evidence.startswith("Reported-From: reports@reporter.example\n")
    assert inc.evidence.endswith("\n\nNov 24 09:14:07 srv sshd[1]: Failed password")


@pytest.mark.parametrize("category, report_type, service, expected", [
    ("abuse", "login-attack", "ssh", "brute-force"),
    ("abuse", "regbot", "regbot", "spam"),
    ("info", "harvesting", "postfix", "scanner"),
    ("abuse", "malware-attack", "http", "malware-distribution"),
    ("fraud", "phishing", "http", "phishing"),
    ("abuse", "Denial of service", "http", "ddos"),
    ("abuse", "comment spam", "http", "spam"),
    ("fraud", "something-new", "http", "phishing"),      # the category still says fraud
    ("abuse", "something-new", "ssh", "brute-force"),    # the service says ssh
])
def test_report_types(category: str, report_type: str, service: str, expected: str) -> None:
    v = parse(xarf_mail(report(category=category, report_type=report_type, service=service)))
    assert one(v)[1] == expected


def test_unknown_type_is_undetermined_and_said() -> None:
    v = parse(xarf_mail(report(category="info", report_type="mystery", service="gopher")))
    assert one(v)[1] == "undetermined" and "not recognised" in v.reason


@pytest.mark.parametrize("header", ["X-ARF: YES", "X-XARF: PLAIN", "x-arf: yes", "Open-Arf: YES"])
def test_marking_headers(header: str) -> None:
    assert one(parse(xarf_mail(report(), header=header)))[0] == "192.0.2.33"


def test_unnamed_report_part_in_marked_mail() -> None:
    """pyxarf and SSHCure send the report as an unnamed text part, without '---'."""
    body = report().replace("---\n", "")
    assert one(parse(xarf_mail(body, name="format=flowed")))[0] == "192.0.2.33"


def test_unnamed_yaml_in_unmarked_mail_is_ignored() -> None:
    v = parse(xarf_mail(report(), header="X-Other: 1", name="format=flowed"))
    assert not v.applied and v.incidents == []


def test_naive_date_takes_report_date_offset() -> None:
    v = parse(xarf_mail(report(date="2026-11-24 09:14:07"), date="Tue, 24 Nov 2026 10:00:00 -0500"))
    assert one(v)[2:] == (datetime(2026, 11, 24, 14, 14, 7, tzinfo=timezone.utc), "date-header")


@pytest.mark.parametrize("date", ["2026-11-24T08:14:07Z", "2026-11-24T09:14:07+01:00", "Nov 24 2026 09:14:07 +0100",
                                  "2026-11-24 09:14:07 +0100", "1795508047"])
def test_date_formats(date: str) -> None:
    assert one(parse(xarf_mail(report(date=date))))[2:] == (
        datetime(2026, 11, 24, 8, 14, 7, tzinfo=timezone.utc), "explicit")


def test_missing_date_and_fallback() -> None:
    text = report().replace("Date: Tue, 24 Nov 2026 09:14:07 +0100\n", "")
    assert one(parse(xarf_mail(text)))[2] is None
    assert one(parse(xarf_mail(text), date_fallback=True))[2:] == (
        datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc), "date-header")


def test_port_of_a_server_side_report_is_the_source_port() -> None:
    v = parse(xarf_mail(report(category="fraud", report_type="phishing", service="http", port="8080")))
    assert v.incidents[0].port == 8080 and "destination_port" not in v.incidents[0].extra


def test_invalid_yaml_that_is_still_key_value_lines() -> None:
    """clean-mx writes 'Schema-URL: http: //…', which no YAML parser accepts."""
    text = report() + "Schema-URL: http: //support.example/schema.json\n"
    v = parse(xarf_mail(text))
    assert one(v)[:2] == ("192.0.2.33", "brute-force")
    nested = text + "Extra:\n  - [unclosed\n"  # not flat, and not YAML either: still its lines
    v = parse(xarf_mail(nested))
    assert one(v)[:2] == ("192.0.2.33", "brute-force")
    assert "not valid YAML" in v.reason and "Key: value lines" in v.reason


@pytest.mark.parametrize("text", [
    report(),
    report() + "Report-ID: '1234'\n",                 # quoted: YAML's
    report() + "Note: Local timezone is +0100 (CET)\n",
    report().replace("---\n", "") + "Port: 0:65535\n",
])
def test_flat_fast_path_agrees_with_yaml(text: str) -> None:
    import yaml

    from abuso.parsers.xarf import flat_fields

    flat = flat_fields(text)
    full = yaml.safe_load(text)
    if flat is None:
        assert "'" in text
        return
    assert {k: str(v) for k, v in full.items() if k in flat} == {k: v for k, v in flat.items()}


def test_yaml_tags_are_never_constructed(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*a, **k):
        raise AssertionError("YAML executed code")

    monkeypatch.setattr(os, "system", forbidden)
    text = '---\nSource: !!python/object/apply:os.system ["echo pwned"]\nCategory: abuse\n'
    v = parse(xarf_mail(text))
    assert v.incidents == []
    assert "not valid YAML" in v.reason


def test_oversized_report_is_not_read() -> None:
    text = report() + "Padding: " + "x" * (MAX_DOC_BYTES + 10) + "\n"
    v = parse(xarf_mail(text))
    assert v.incidents == [] and "not read" in v.reason


def test_deeply_nested_yaml_gives_a_verdict() -> None:
    v = parse(xarf_mail("---\nSource: " + "[" * 50_000 + "\n"))
    assert v.incidents == [] and v.reason


def test_header_without_report_says_so() -> None:
    raw = (b"From: r@x.example\nSubject: s\nX-ARF: YES\nContent-Type: text/plain\n\nWe saw bad things.\n")
    v = parse(raw)
    assert v.applied and v.incidents == [] and "no report.txt or JSON report part" in v.reason


def test_not_xarf() -> None:
    v = parse(b"From: a@b.example\nSubject: hello\nContent-Type: text/plain\n\nport scan from 192.0.2.1\n")
    assert not v.applied and v.reason.startswith("not an X-ARF report")


# --- URI sources -------------------------------------------------------------------


def test_uri_source_resolved_from_text() -> None:
    v = parse(xarf_mail(report(category="fraud", report_type="phishing", source_type="uri",
                               source="http://shop.customer.example/login/"),
                        body="Phishing at http://shop.customer.example/login/ [192.0.2.44] targets a bank."))
    inc = v.incidents[0]
    assert (str(inc.ip), inc.extra["derived"], inc.extra["source"]) == (
        "192.0.2.44", "text", "http://shop.customer.example/login/")


def test_uri_source_with_ambiguous_text_gives_no_incident() -> None:
    body = "Sites: http://a.example/ [192.0.2.1] and http://b.example/ [192.0.2.2]"
    v = parse(xarf_mail(report(category="fraud", report_type="phishing", source_type="uri",
                               source="http://c.example/x"), body=body))
    assert v.incidents == [] and "names no single address" in v.reason


def test_uri_with_ip_host() -> None:
    msg = normalize(xarf_mail(report()))
    assert str(ip_for_source("http://[2001:db8::7]:8080/x", msg)) == "2001:db8::7"
    assert str(ip_for_source("http://192.0.2.9/x", msg)) == "192.0.2.9"


def test_ip_phrase_ignores_traceroute() -> None:
    body = ("The site is located at IP address 192.0.2.60.\n1  hop.example (198.51.100.1)\n"
            "2  192.0.2.60 (192.0.2.60)")
    msg = normalize(xarf_mail(report(), body=body))
    assert str(ip_for_source("http://nowhere.example/", msg)) == "192.0.2.60"


# --- JSON ----------------------------------------------------------------------------


def json_mail(doc, *, as_body: bool = False) -> bytes:
    text = json.dumps(doc) if not isinstance(doc, str) else doc
    if as_body:
        return (f"From: r@x.example\nSubject: xarf\nDate: Tue, 24 Nov 2026 10:00:00 +0000\n"
                f"Content-Type: text/plain\n\n{text}\n").encode()
    return (f"From: r@x.example\nSubject: xarf\nDate: Tue, 24 Nov 2026 10:00:00 +0000\nMIME-Version: 1.0\n"
            f"Content-Type: multipart/mixed; boundary=J\n\n--J\nContent-Type: text/plain\n\nsee attachment\n"
            f"--J\nContent-Type: application/json; name=xarf.json\nContent-Disposition: attachment; "
            f"filename=xarf.json\n\n{text}\n--J--\n").encode()


ABUSIX = {"Version": "2", "ReporterInfo": {"ReporterOrg": "X"}, "Disclosure": True,
          "Report": {"ReportClass": "Activity", "ReportType": "PortScan", "Date": "2026-11-24T05:00:00Z",
                     "SourceIp": "198.51.100.8", "SourcePort": 4444}}
XARF4 = {"xarf_version": "4.0.0", "timestamp": "2026-11-24T06:00:00+01:00", "source_identifier": "2001:db8::8",
         "source_port": 5555, "category": "connection", "type": "ddos"}


@pytest.mark.parametrize("doc, expected", [
    (ABUSIX, ("198.51.100.8", "scanner", datetime(2026, 11, 24, 5, tzinfo=timezone.utc), 4444)),
    (XARF4, ("2001:db8::8", "ddos", datetime(2026, 11, 24, 5, tzinfo=timezone.utc), 5555)),
    ({"machine_readable": {"Category": "abuse", "Report-Type": "login-attack", "Source": "192.0.2.5",
                           "Date": "Feb  3 2026 02:13:35 +0100", "Port": 22}},
     ("192.0.2.5", "brute-force", datetime(2026, 2, 3, 1, 13, 35, tzinfo=timezone.utc), None)),
    ({**XARF4, "type": "login_attack", "category": "connection"},
     ("2001:db8::8", "brute-force", datetime(2026, 11, 24, 5, tzinfo=timezone.utc), 5555)),
    ({**XARF4, "type": "auth_failure"},
     ("2001:db8::8", "brute-force", datetime(2026, 11, 24, 5, tzinfo=timezone.utc), 5555)),
    ({**XARF4, "type": "malware", "category": "content"},
     ("2001:db8::8", "malware-distribution", datetime(2026, 11, 24, 5, tzinfo=timezone.utc), 5555)),
])
@pytest.mark.parametrize("as_body", [False, True])
def test_json_generations(doc, expected, as_body: bool) -> None:
    v = parse(json_mail(doc, as_body=as_body))
    assert len(v.incidents) == 1, v.reason
    i = v.incidents[0]
    assert (str(i.ip), i.type, i.time, i.port) == expected


def test_json_list_gives_one_incident_per_report() -> None:
    docs = [{**XARF4, "source_identifier": f"192.0.2.{n}"} for n in (1, 2, 3)]
    v = parse(json_mail(docs))
    assert sorted(str(i.ip) for i in v.incidents) == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]


def test_malformed_json_gives_a_verdict() -> None:
    v = parse(json_mail('{"Report": {"SourceIp": "192.0.2.1", "Date": "2026-'))
    assert v.applied and v.incidents == [] and "X-ARF JSON is malformed" in v.reason


def test_unrelated_json_attachment_is_not_xarf() -> None:
    v = parse(json_mail({"order": 17, "items": ["socks"]}))
    assert not v.applied and v.incidents == []


def test_json_source_that_is_not_an_address() -> None:
    v = parse(json_mail({**XARF4, "source_identifier": "not-an-ip"}))
    assert v.incidents == [] and "'not-an-ip' is not an address" in v.reason


# --- fail2ban's boundary ---------------------------------------------------------------


def test_fail2ban_boundary_with_at_sign() -> None:
    from email import policy
    from email.parser import BytesParser

    msg = BytesParser(policy=policy.default).parsebytes(sample_path("samples/xarf/fail2ban.eml").read_bytes())
    assert not msg.is_multipart(), "policy.default's structured Content-Type parser stops at the '@'"
    parts = split_broken_multipart(msg)
    assert [p.get_param("name") for p in parts] == [None, "report.txt", "logfile.log"]


def test_type_of() -> None:
    assert type_of("LoginAttack") == "brute-force"
    assert type_of("login_attack") == "brute-force"
    assert type_of("Comment Spam") == "spam"
    assert type_of("abuse") == "spam"  # the generic ALIASES meaning; categories are handled apart
    assert type_of("") is None and type_of(None) is None and type_of("zzz") is None


# --- bail-out (its speed: bench/stage_speed.py) ------------------------------------------


def test_bails_out_on_non_xarf_mail() -> None:
    body = "\n".join(f"Nov 24 03:14:{i % 60:02d} srv sshd[1]: Failed password for root from 192.0.2.{i % 250}"
                     for i in range(400))
    msg = normalize(f"From: a@b.example\nSubject: ssh\nContent-Type: text/plain\n\n{body}\n".encode())
    v = XarfParser({}).parse(msg)
    assert not v.applied and not v.incidents and v.reason


def test_unmarked_json_needs_source_and_type() -> None:
    ses = {"notificationType": "Complaint", "source": "sender@shop.example", "sourceIp": "192.0.2.1"}
    raw = json_mail(ses, as_body=True)
    assert parse(raw).incidents == []
    vouched = json_mail({"SourceIp": "192.0.2.1"})  # named xarf.json: a source alone is a report
    assert [str(i.ip) for i in parse(vouched).incidents] == ["192.0.2.1"]


# --- hostile input never raises ----------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_any_report_text_gives_a_verdict(text: str) -> None:
    text = text.replace("\r", "")
    for raw in (xarf_mail(text), json_mail(text), json_mail(text, as_body=True)):
        v = parse(raw)
        assert isinstance(v.reason, str)
        assert all(i.parser == "xarf" for i in v.incidents)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["Source", "SourceIp", "Date", "timestamp", "Category", "ReportType",
                                        "type", "Port", "source_port", "Report"]),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                                 st.text(max_size=40), st.lists(st.text(max_size=20), max_size=3),
                                 st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3)),
                       max_size=8))
def test_any_json_values_give_a_verdict(doc: dict) -> None:
    v = parse(json_mail(doc))
    assert isinstance(v.reason, str)
    for i in v.incidents:
        assert i.time is None or i.time.utcoffset().total_seconds() == 0


def test_mail_address_source_is_not_resolved_to_a_host() -> None:
    v = parse(xarf_mail(report(source_type="email", source="spammer@mail.customer.example"),
                        body="mail.customer.example [192.0.2.70] sent it"))
    assert v.incidents == [] and "is a mail address" in v.reason


def test_copyright_subtypes_come_from_the_category() -> None:
    v = parse(json_mail({**XARF4, "category": "copyright", "type": "p2p"}))
    assert one(v)[1] == "copyright"


def test_forwarded_xarf_report() -> None:
    inner = xarf_mail(report(source="192.0.2.81")).decode()
    raw = ("From: noc@isp.example\nSubject: Fwd: abuse report\nMIME-Version: 1.0\n"
           "Content-Type: multipart/mixed; boundary=F\n\n--F\nContent-Type: text/plain\n\nfor you\n"
           f"--F\nContent-Type: message/rfc822\n\n{inner}\n--F--\n").encode()
    assert one(parse(raw))[:2] == ("192.0.2.81", "brute-force")


def test_two_report_parts_in_one_mail() -> None:
    second = ('--X\nContent-Type: text/plain; name="report.txt"\n\n'
              + report(source="192.0.2.82", report_type="regbot", service="http") + "\n")
    v = parse(xarf_mail(report(source="192.0.2.81"), extra_parts=second))
    assert sorted((str(i.ip), i.type) for i in v.incidents) == [("192.0.2.81", "brute-force"),
                                                                 ("192.0.2.82", "spam")]


def test_normalizer_reads_fail2ban_parts_too() -> None:
    """The log lines of a fail2ban report reach the other parsers (shared normalize change)."""
    msg = normalize(sample_path("samples/xarf/fail2ban.eml").read_bytes())
    assert any("Failed password for invalid user admin from 192.0.2.200" in b.text for b in msg.blocks)
    # abuso reads Content-Type as written (mimeparse.TextHeader), so the '@' no longer hides the parts.
    assert msg.email.is_multipart() and [b.part for b in msg.blocks] == ["1.1", "1.2", "1.3"]


def test_split_without_boundary_lines() -> None:
    msg = normalize(b"From: a@b.example\nContent-Type: multipart/mixed; boundary=x@y\n\nno parts at all\n")
    assert split_broken_multipart(msg.email) == []


def test_uri_source_with_ip_field() -> None:
    """Netcraft adds 'Ip:' beside a URL Source; that beats guessing from the text."""
    text = report(category="fraud", report_type="phishing", source_type="uri",
                  source="http://shop.customer.example/login/") + "Ip: 192.0.2.45\n"
    v = parse(xarf_mail(text, body="Phishing at http://shop.customer.example/login/ [192.0.2.99]"))
    inc = v.incidents[0]
    assert (str(inc.ip), inc.extra["source"]) == ("192.0.2.45", "http://shop.customer.example/login/")
    assert "derived" not in inc.extra
