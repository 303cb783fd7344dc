"""The csv parser: column names not positions, zones, caps on hostile zips, verdicts that explain."""

from __future__ import annotations

import codecs
import gzip
import io
import zipfile
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from ipaddress import ip_address

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abuso.errors import ConfigError
from abuso.normalize import normalize
from abuso.parsers.csv import CsvParser, column_key, parse_stamp, sniff_delimiter
from abuso.pipeline import Pipeline

from .conftest import SAMPLES

UTC = timezone.utc


def mail(*attachments: tuple[str, bytes, str], subject: str = "report",
         date: str | None = "Fri, 20 Nov 2026 12:00:00 +0100", sender: str = "soc@reporter.example") -> bytes:
    """A report with the given (filename, data, content type) attachments."""
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, "abuse@example.net", subject
    if date is not None:
        m["Date"] = date
    m["Message-ID"] = "<t@reporter.example>"
    m.set_content("see attachment\n")
    for name, data, ctype in attachments:
        maintype, subtype = ctype.split("/")
        m.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return m.as_bytes()


def zipped(*members: tuple[str, bytes | str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def parse(raw: bytes, **options):
    return CsvParser(options).parse(normalize(raw))


def csv_mail(text: str, name: str = "report.csv", **kw) -> bytes:
    return mail((name, text.encode("utf-8"), "text/csv"), **kw)


# --- the corpus ----------------------------------------------------------------------------


def test_shadowserver_scan_ntp_one_vulnerable_system_per_row(corpus):
    v = parse((corpus / "abuseio/shadowserver/2015-01-01-scan_ntp-sample-asn.csv.zip.eml").read_bytes())
    assert v.applied and len(v.incidents) == 9
    first = v.incidents[0]
    assert (first.ip, first.type, first.port) == (ip_address("76.22.142.205"), "vulnerable-system", 123)
    assert first.time == datetime(2014, 3, 21, 2, 13, 17, tzinfo=UTC)
    # Shadowserver stamps are UTC although the mail's Date is +0100
    assert {i.zone for i in v.incidents} == {"assumed-utc"}
    assert v.reason.startswith("9 rows in 1 CSV file")


def test_sinkhole_drone_takes_source_port_not_destination_port(corpus):
    v = parse((corpus / "abuseio/shadowserver/2015-01-01-sinkhole_http_drone-sample-asn.csv.zip.eml").read_bytes())
    assert {i.type for i in v.incidents} == {"infected-system"}  # "downadup" in the type column is no type
    assert v.incidents[0].port == 8726


def test_timestamp_column_wins_over_a_server_time_column(corpus):
    # scan_memcached has both "timestamp" (the scan) and "time" (the server's clock).
    v = parse((corpus / "abuseio/shadowserver/2015-01-01-scan_memcached-sample-asn.csv.zip.eml").read_bytes())
    by_ip = {str(i.ip): i.time for i in v.incidents}
    assert by_ip["69.175.96.27"] == datetime(2015, 1, 22, 1, 30, 25, tzinfo=UTC)


def test_abusehub_local_time_and_shadowserver_utc_agree_and_merge(corpus):
    v = parse((corpus / "abuseio/abusehub/Abusehub_Example_1.eml").read_bytes())
    assert len(v.incidents) == 1
    inc = v.incidents[0]
    assert inc.time == datetime(2015, 3, 2, 0, 45, 59, tzinfo=UTC)
    assert inc.type == "infected-system" and inc.port == 2005
    assert "2 rows in 2 CSV files, 1 repeated" in v.reason


# --- applicability ---------------------------------------------------------------------------


def test_no_attachment_is_not_applicable_with_a_reason():
    v = parse(mail())
    assert not v.applied and v.reason == "no CSV or zipped CSV attachment"


def test_pdf_and_json_attachments_are_not_csv():
    v = parse(mail(("a.pdf", b"%PDF-1.4", "application/pdf"), ("x.json", b"{}", "application/json")))
    assert not v.applied


def test_csv_without_ip_column_says_so():
    v = parse(csv_mail("dst_ip,timestamp\n192.0.2.1,2026-11-20 10:00:00\n", name="victims.csv"))
    assert v.applied and not v.incidents  # a CSV was there: the reason is shown
    assert v.reason == "victims.csv: no header row naming an IP column"


@pytest.mark.parametrize("header", ["ip", "IP", "src_ip", "Source IP", "source-ip", "IP Address", "ip_address",
                                    "\ufeffip", "SrcIP"])
def test_ip_column_names(header):
    v = parse(csv_mail(f"{header},timestamp\n192.0.2.5,2026-11-20 10:00:00\n"))
    assert [str(i.ip) for i in v.incidents] == ["192.0.2.5"]


def test_src_ip_preferred_over_plain_ip_and_destination_ignored():
    v = parse(csv_mail("dst_ip,ip,src_ip\n198.51.100.1,198.51.100.2,192.0.2.9\n"))
    assert [str(i.ip) for i in v.incidents] == ["192.0.2.9"]


def test_header_after_a_title_line_and_comments():
    text = "Abuse report for AS64500\n# generated 2026-11-20\n\nip;timestamp\n192.0.2.6;2026-11-20 10:00:00\n"
    v = parse(csv_mail(text))
    assert [str(i.ip) for i in v.incidents] == ["192.0.2.6"]


# --- delimiters, quoting, encodings ------------------------------------------------------------


@pytest.mark.parametrize("d", [",", ";", "\t", "|"])
def test_delimiters(d):
    text = d.join(["timestamp", "ip", "port"]) + "\n" + d.join(["2026-11-20 10:00:00", "192.0.2.7", "22"]) + "\n"
    v = parse(csv_mail(text))
    assert [(str(i.ip), i.port) for i in v.incidents] == [("192.0.2.7", 22)]


def test_sniff_delimiter_ignores_separators_inside_quotes():
    assert sniff_delimiter('"a,b,c";"d";"e"') == ";"
    assert sniff_delimiter("ip") == ","


def test_reordered_columns_give_the_same_incidents():
    a = parse(csv_mail("timestamp,ip,port,type\n2026-11-20 10:00:00,192.0.2.8,25,spam\n"))
    b = parse(csv_mail("type,port,ip,timestamp\nspam,25,192.0.2.8,2026-11-20 10:00:00\n"))
    assert [i.key for i in a.incidents] == [i.key for i in b.incidents]
    assert a.incidents[0].type == "spam" and b.incidents[0].port == 25


def test_bom_semicolon_excel_sample():
    v = parse((SAMPLES / "csv/bom-semicolon-excel.eml").read_bytes())
    assert [(str(i.ip), i.type, i.zone, i.port) for i in v.incidents] == [
        ("192.0.2.33", "brute-force", "explicit", 22), ("192.0.2.34", "scanner", "explicit", None)]
    assert "sshd; 40 failed logins" in v.incidents[0].evidence


def test_quoted_line_break_stays_in_its_field():
    v = parse((SAMPLES / "csv/reordered-quoted.eml").read_bytes())
    assert "line one\nline two" in v.incidents[1].evidence
    assert "1 of 4 rows without a valid IP" in v.reason and "1 without a time" in v.reason


def test_utf16_tab_separated_excel_export():
    v = parse((SAMPLES / "csv/utf16-tab-local-time.eml").read_bytes())
    (inc,) = v.incidents
    assert (str(inc.ip), inc.type, inc.zone) == ("192.0.2.80", "dos", "date-header")
    assert inc.time == datetime(2026, 11, 15, 13, 0, tzinfo=UTC)


def test_cp1252_bytes_are_read_not_fatal():
    data = "ip;comment\n192.0.2.10;Müller GmbH\n".encode("cp1252")
    v = parse(mail(("r.csv", data, "text/csv")))
    assert "Müller" in v.incidents[0].evidence


# --- time stamps and zones ---------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("2015-01-01 00:00:12", datetime(2015, 1, 1, 0, 0, 12)),
    ("2015-09-04T13:19:53.000Z", datetime(2015, 9, 4, 13, 19, 53, tzinfo=UTC)),
    ("2026-11-19T23:30:00+01:00", datetime(2026, 11, 19, 22, 30, tzinfo=UTC)),
    ("2015-01-01 00:00:00 UTC", datetime(2015, 1, 1, tzinfo=UTC)),
    ("2015-01-01 01:00:00 CET", datetime(2015, 1, 1, tzinfo=UTC)),
    ("04 Sep 2015 13:19:53 GMT", datetime(2015, 9, 4, 13, 19, 53, tzinfo=UTC)),
    ("2015/01/02 03:04:05", datetime(2015, 1, 2, 3, 4, 5)),
    ("1420070400", datetime(2015, 1, 1, tzinfo=UTC)),
    ("2015-01-01", None),          # a day is not a time of day
    ("yesterday", None),
    ("", None),
])
def test_parse_stamp(value, expected):
    got = parse_stamp(value)
    if expected is None or expected.tzinfo is None:
        assert got == expected
    else:
        assert got is not None and got.astimezone(UTC) == expected


def test_configured_zone_is_used_for_naive_stamps_when_the_report_has_no_date():
    v = parse(csv_mail("ip,time\n192.0.2.11,2026-11-20 10:00:00\n", date=None), zone="CET")
    assert v.incidents[0].time == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    assert v.incidents[0].zone == "default"
    # A region follows summer time on each stamp's own date.
    v = parse(csv_mail("ip,time\n192.0.2.11,2026-07-20 10:00:00\n", date=None), zone="Europe/Berlin")
    assert (v.incidents[0].time, v.incidents[0].zone) == (datetime(2026, 7, 20, 8, 0, tzinfo=UTC), "default")


def test_report_date_offset_comes_before_the_configured_zone():
    v = parse(csv_mail("ip,time\n192.0.2.11,2026-11-20 10:00:00\n", date="Fri, 20 Nov 2026 12:00:00 -0500"),
              zone="CET")
    assert (v.incidents[0].time, v.incidents[0].zone) == (datetime(2026, 11, 20, 15, 0, tzinfo=UTC), "date-header")


def test_zone_stated_in_the_mail_comes_before_the_date_offset():
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "soc@r.example", "abuse@example.net", "r"
    m["Date"] = "Fri, 20 Nov 2026 12:00 -0500"
    m.set_content("Please find the events attached. All times are CET.\n")
    m.add_attachment(b"ip,time\n192.0.2.11,2026-11-20 10:00:00\n", maintype="text", subtype="csv", filename="r.csv")
    v = parse(m.as_bytes(), zone="UTC")
    assert (v.incidents[0].time, v.incidents[0].zone) == (datetime(2026, 11, 20, 9, 0, tzinfo=UTC), "stated")


def test_shadowserver_utc_comes_before_a_stated_zone_and_the_date_offset():
    m = EmailMessage()
    m["From"], m["To"], m["Date"] = "autoreports@shadowserver.org", "abuse@example.net", "Fri, 20 Nov 2026 12:00 +0100"
    m["Subject"] = "[example] Shadowserver scan_ntp Report: 2026-11-19"
    m.set_content("All times are CET.\n")
    m.add_attachment(b"timestamp,ip\n2026-11-19 10:00:00,192.0.2.11\n", maintype="text", subtype="csv",
                     filename="2026-11-19-scan_ntp-example-asn.csv")
    v = parse(m.as_bytes(), zone="CET")
    assert (v.incidents[0].time, v.incidents[0].zone) == (datetime(2026, 11, 19, 10, 0, tzinfo=UTC), "assumed-utc")


def test_naive_stamp_without_configured_zone_uses_the_date_header_offset():
    v = parse(csv_mail("ip,time\n192.0.2.12,2026-11-20 10:00:00\n", date="Fri, 20 Nov 2026 12:00:00 -0500"))
    assert v.incidents[0].time == datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    assert v.incidents[0].zone == "date-header"


def test_column_named_utc_is_explicit():
    v = parse(csv_mail("ip,Time (UTC)\n192.0.2.13,2026-11-20 10:00:00\n"), zone="CET")
    assert v.incidents[0].time == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    assert v.incidents[0].zone == "explicit"


def test_date_and_time_in_separate_columns():
    v = parse(csv_mail("src_ip,event_date,event_time\n192.0.2.14,2026-11-20,10:00:00\n",
                       date="Fri, 20 Nov 2026 12:00:00 +0000"))
    assert v.incidents[0].time == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def test_no_time_stays_null_unless_date_fallback():
    raw = csv_mail("ip\n192.0.2.15\n")
    assert parse(raw).incidents[0].time is None
    inc = parse(raw, date_fallback=True).incidents[0]
    assert inc.time == datetime(2026, 11, 20, 11, 0, tzinfo=UTC) and inc.zone == "date-header"


# --- types -------------------------------------------------------------------------------------


def test_shadowserver_report_name_beats_the_tag_column():
    # "ssh" alone would read as brute-force; in a scan_ssh report it is a vulnerable service.
    data = zipped(("2026-11-20-scan_ssh-example-asn.csv", '"timestamp","ip","port","tag"\n'
                                                           '"2026-11-20 01:00:00","192.0.2.16",22,"ssh"\n'))
    v = parse(mail(("2026-11-20-scan_ssh-example-asn.csv.zip", data, "application/zip")))
    assert v.incidents[0].type == "vulnerable-system"


def test_type_per_row_from_a_category_column():
    v = parse(csv_mail("ip,category\n192.0.2.17,phishing\n192.0.2.18,Botnet drone\n192.0.2.19,whatever\n"))
    assert [i.type for i in v.incidents] == ["phishing", "infected-system", "undetermined"]


def test_subject_names_the_type_when_rows_do_not():
    v = parse(csv_mail("ip\n192.0.2.20\n", subject="Spam sources in your network"))
    assert v.incidents[0].type == "spam"


# --- ports and hostile rows ----------------------------------------------------------------------


def test_bad_ports_and_short_rows_do_not_break_the_table():
    v = parse(csv_mail("ip,port,timestamp\n192.0.2.21,99999,2026-11-20 10:00:00\n192.0.2.22\n192.0.2.23,x\n"))
    assert [(str(i.ip), i.port) for i in v.incidents] == [("192.0.2.21", None), ("192.0.2.22", None),
                                                           ("192.0.2.23", None)]


def test_huge_field_is_reported_as_malformed_and_rows_before_it_kept():
    text = "ip,note\n192.0.2.24,ok\n192.0.2.25,\"" + "x" * 200_000 + "\"\n"
    v = parse(csv_mail(text))
    assert [str(i.ip) for i in v.incidents] == ["192.0.2.24"]
    assert "malformed CSV after row 1" in v.reason


def test_defanged_and_port_suffixed_addresses():
    v = parse(csv_mail("ip\n192.0.2[.]26\n192.0.2.27:4444\n[2001:db8::1]\n"))
    assert [str(i.ip) for i in v.incidents] == ["192.0.2.26", "192.0.2.27", "2001:db8::1"]


# --- zips and caps -------------------------------------------------------------------------------


def test_zip_bomb_member_is_refused_before_inflating():
    v = parse((SAMPLES / "csv/zip-bomb.eml").read_bytes())
    assert [str(i.ip) for i in v.incidents] == ["192.0.2.70"]
    assert "bomb.csv: refused, would inflate" in v.reason


def test_member_cap():
    v = parse((SAMPLES / "csv/zip-many-members.eml").read_bytes())
    assert len(v.incidents) == 20
    assert "only the first 20 of 30 members read (max_members)" in v.reason
    assert len(parse((SAMPLES / "csv/zip-many-members.eml").read_bytes(), max_members=30).incidents) == 30


def test_row_cap_across_files():
    rows = "".join(f"192.0.2.{i},2026-11-20 10:00:{i:02d}\n" for i in range(10))
    raw = mail(("a.csv", ("ip,timestamp\n" + rows).encode(), "text/csv"),
               ("b.csv", ("ip,timestamp\n" + rows).encode(), "text/csv"))
    v = parse(raw, max_rows=15)
    assert len(v.incidents) == 10  # 15 rows read; the 5 of b.csv repeat a.csv
    assert "stopped after 15 rows (max_rows)" in v.reason
    v = parse(raw + b"", max_rows=5)
    assert len(v.incidents) == 5 and v.reason.count("stopped after 5 rows") == 1


def test_byte_cap_cuts_an_honest_large_member_at_a_line_end():
    rows = "".join(f"192.0.{i // 250}.{i % 250},2026-11-20 10:00:00\n" for i in range(5000))
    data = zipped(("big.csv", "ip,timestamp\n" + rows))
    v = parse(mail(("big.zip", data, "application/zip")), max_bytes=10_000)
    assert 0 < len(v.incidents) < 5000
    assert "big.zip:big.csv cut at max_bytes=10000" in v.reason
    # the cut is at a line end: the incidents are exactly the first rows, none from a truncated line
    first = [f"192.0.{i // 250}.{i % 250}" for i in range(len(v.incidents))]
    assert [str(i.ip) for i in v.incidents] == first
    assert all(i.time is not None for i in v.incidents)


def test_non_csv_members_skipped_and_nested_zip_read():
    v = parse((SAMPLES / "csv/zip-non-csv-members.eml").read_bytes())
    assert sorted(str(i.ip) for i in v.incidents) == ["192.0.2.60", "192.0.2.99"]
    assert "README.pdf: not a CSV member, skipped" in v.reason


def test_corrupt_zip_is_explained():
    v = parse(mail(("r.zip", b"PK\x03\x04" + b"\x00" * 100, "application/zip")))
    assert v.applied and not v.incidents and "unreadable zip" in v.reason


def test_encrypted_member_is_skipped():
    data = bytearray(zipped(("r.csv", "ip\n192.0.2.30\n")))
    # set the "encrypted" flag bit in the local and central headers
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):
        at = data.find(sig)
        flag_at = at + (6 if sig == b"PK\x03\x04" else 8)
        data[flag_at] |= 1
    v = parse(mail(("r.zip", bytes(data), "application/zip")))
    assert not v.incidents and "encrypted, skipped" in v.reason


def test_forwarded_report_attachment_is_found():
    v = parse((SAMPLES / "csv/forwarded-shadowserver.eml").read_bytes())
    assert [(str(i.ip), i.type) for i in v.incidents] == [("192.0.2.90", "vulnerable-system")]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000), st.sampled_from(["r.csv", "r.zip"]))
def test_never_raises_on_garbage(data, name):
    ctype = "application/zip" if name.endswith(".zip") else "text/csv"
    v = parse(mail((name, b"PK\x03\x04" + data if name.endswith(".zip") else data, ctype)))
    assert isinstance(v.reason, str)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.ip_addresses(), st.datetimes(min_value=datetime(2000, 1, 1),
                                                           max_value=datetime(2030, 1, 1))), max_size=20),
       st.sampled_from([",", ";", "\t"]))
def test_every_valid_row_becomes_an_incident(rows, d):
    text = f"ip{d}timestamp\n" + "".join(f"{ip}{d}{t.isoformat(sep=' ', timespec='seconds')}\n" for ip, t in rows)
    v = parse(csv_mail(text, date="Fri, 20 Nov 2026 12:00:00 +0000"))
    want = {(ip, t.replace(microsecond=0, tzinfo=UTC)) for ip, t in rows}
    assert {(i.ip, i.time) for i in v.incidents} == want


# --- options -------------------------------------------------------------------------------------


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="max_rows"):
        Pipeline.from_config({"parsers": [{"csv": {"max_rows": 0}}]})
    with pytest.raises(ConfigError, match="zone"):
        Pipeline.from_config({"parsers": [{"csv": {"zone": "Mars/Olympus"}}]})


def test_column_key():
    assert column_key("\ufeff Source IP ") == "source_ip"
    assert column_key("Date (UTC)") == "date_utc"


def test_timedelta_sanity():
    # guard for the naive-stamp arithmetic: local = utc + offset
    v = parse(csv_mail("ip,time\n192.0.2.31,2026-11-20 00:30:00\n", date=None), zone="+05:30")
    assert v.incidents[0].time == datetime(2026, 11, 20, 0, 30, tzinfo=UTC) - timedelta(hours=5, minutes=30)


def test_utf8_bom_header_is_recognised():
    data = codecs.BOM_UTF8 + b"ip,timestamp\n192.0.2.32,2026-11-20 10:00:00\n"
    v = parse(mail(("r.csv", data, "text/csv")))
    assert [str(i.ip) for i in v.incidents] == ["192.0.2.32"]


# --- gzip and inline parts -------------------------------------------------------------------------


def test_gzipped_csv():
    data = gzip.compress(b"ip,timestamp\n192.0.2.40,2026-11-20 10:00:00\n")
    v = parse(mail(("r.csv.gz", data, "application/gzip")))
    assert [str(i.ip) for i in v.incidents] == ["192.0.2.40"]


def test_gzip_bomb_is_cut_at_the_byte_cap():
    data = gzip.compress(b"ip\n192.0.2.41\n" + b"\n" * 5_000_000)
    assert len(data) < 10_000
    v = parse(mail(("r.csv.gz", data, "application/x-gzip")), max_bytes=100_000)
    assert [str(i.ip) for i in v.incidents] == ["192.0.2.41"]
    assert "r.csv.gz cut at max_bytes=100000" in v.reason


def test_corrupt_gzip_is_explained():
    v = parse(mail(("r.csv.gz", b"\x1f\x8b\x08garbage", "application/gzip")))
    assert v.applied and not v.incidents and "r.csv.gz: unreadable gzip" in v.reason


def test_inline_text_plain_csv_part_is_read():
    m = EmailMessage()
    m["From"], m["Subject"], m["Date"] = "soc@reporter.example", "report", "Fri, 20 Nov 2026 12:00:00 +0000"
    m.set_content("see below\n")
    m.add_attachment("ip,timestamp\n192.0.2.42,2026-11-20 10:00:00\n", filename="inline.csv",
                     disposition="inline")
    v = parse(m.as_bytes())
    assert [str(i.ip) for i in v.incidents] == ["192.0.2.42"]


@pytest.mark.parametrize("value, expected", [
    ("20/11/2026 14:00", datetime(2026, 11, 20, 14, 0)),
    ("11/20/2026 14:00:05", datetime(2026, 11, 20, 14, 0, 5)),
    ("05/06/2026 14:00", None),     # May 6th or June 5th: no guess
    ("31/02/2026 14:00", None),
])
def test_slashed_dates_only_when_unambiguous(value, expected):
    assert parse_stamp(value) == expected


def test_stamp_at_the_edge_of_time_does_not_break_the_table():
    v = parse(csv_mail("ip,time\n192.0.2.43,0001-01-01 00:00:00\n192.0.2.44,9999-12-31 23:59:59+00:00\n"),
              zone="+01:00")
    assert [(str(i.ip), i.time) for i in v.incidents][0] == ("192.0.2.43", None)
    assert v.incidents[1].time == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
