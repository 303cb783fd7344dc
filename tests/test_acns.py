"""The acns parser: notices inline or attached, stamps, and XML that tries to hurt the reader."""

from __future__ import annotations

from datetime import datetime, timezone
from email.message import EmailMessage
from ipaddress import ip_address

from hypothesis import given, settings
from hypothesis import strategies as st

from abuso.normalize import normalize
from abuso.parsers.acns import MAX_XML_BYTES, AcnsParser, find_notices

from .conftest import SAMPLES

UTC = timezone.utc

NOTICE = """<Infringement xmlns="http://www.acns.net/ACNS">
 <Case><ID>{case}</ID></Case>
 <Source><TimeStamp>{stamp}</TimeStamp><IP_Address>{ip}</IP_Address><Port>{port}</Port></Source>
 <Content><Item><Title>{title}</Title><FileName>file.mkv</FileName></Item></Content>
</Infringement>"""


def notice(ip="192.0.2.1", stamp="2026-11-18T10:00:00Z", port="6881", case="1", title="A Film") -> str:
    return NOTICE.format(ip=ip, stamp=stamp, port=port, case=case, title=title)


def mail(body: str, *attachments: tuple[str, bytes, str], date="Thu, 19 Nov 2026 10:00:00 +0000") -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"], m["Date"] = "n@rights.example", "abuse@example.net", "Notice", date
    m.set_content(body)
    for name, data, ctype in attachments:
        maintype, subtype = ctype.split("/")
        m.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return m.as_bytes()


def parse(raw: bytes, **options):
    return AcnsParser(options).parse(normalize(raw))


def test_ip_echelon_notice_inline_and_attached_is_one_incident(corpus):
    v = parse((corpus / "abuseio/ip-echelon/ip-echelon_sample1.eml").read_bytes())
    (inc,) = v.incidents
    assert (inc.ip, inc.type, inc.port, inc.zone) == (ip_address("192.168.2.200"), "copyright", 35657, "explicit")
    assert inc.time == datetime(2015, 11, 13, 20, 35, 3, tzinfo=UTC)
    assert inc.evidence == ("Mission: Impossible - Rogue Nation / "
                            "Mission.Impossible.Rogue.Nation.2015.720p.BluRay.x264-NeZu")
    assert inc.extra["case_id"] == "314620451"
    assert v.reason == "2 ACNS notices (1 repeated)"


def test_copyright_compliance_notice_in_pgp_signed_prose(corpus):
    v = parse((corpus / "abuseio/copyrightcompliance/Copyrightcompliance_Example_1.eml").read_bytes())
    (inc,) = v.incidents
    assert str(inc.ip) == "10.0.2.100" and inc.port == 34890
    assert inc.time == datetime(2015, 9, 4, 13, 19, 53, tzinfo=UTC)


def test_no_notice_is_not_applicable():
    v = parse(mail("Dear abuse team, please stop infringing.\n"))
    assert not v.applied and v.reason == "no ACNS <Infringement> XML"


def test_attached_only_sample():
    v = parse((SAMPLES / "acns/attached-only.eml").read_bytes())
    assert [(str(i.ip), i.time) for i in v.incidents] == [("192.0.2.120", datetime(2026, 11, 18, 21, 4, 5, tzinfo=UTC))]


def test_two_notices_one_with_namespace_prefix_and_offset():
    v = parse((SAMPLES / "acns/inline-two-notices.eml").read_bytes())
    assert [(str(i.ip), i.time, i.port) for i in v.incidents] == [
        ("192.0.2.121", datetime(2026, 11, 18, 22, 0, tzinfo=UTC), 51413),
        ("2001:db8::77", datetime(2026, 11, 18, 22, 30, tzinfo=UTC), 6881)]


def test_bad_source_stamp_falls_back_to_the_item_stamp():
    v = parse((SAMPLES / "acns/bad-source-timestamp.eml").read_bytes())
    assert v.incidents[0].time == datetime(2026, 11, 17, 8, 0, tzinfo=UTC)


def test_unreadable_stamp_gives_null_time_and_says_why():
    v = parse((SAMPLES / "acns/unreadable-timestamp.eml").read_bytes())
    assert v.incidents[0].time is None and v.incidents[0].zone == "none"
    assert "unreadable TimeStamp '32/13/2026 25:61'" in v.reason


def test_missing_stamp_uses_the_date_header_only_when_configured():
    raw = (SAMPLES / "acns/missing-timestamp.eml").read_bytes()
    assert parse(raw).incidents[0].time is None
    inc = parse(raw, date_fallback=True).incidents[0]
    assert inc.time == datetime(2026, 11, 19, 10, 0, tzinfo=UTC) and inc.zone == "date-header"


def test_naive_stamp_is_the_formats_utc_whatever_the_date_offset_or_configured_zone():
    # xs:dateTime without offset: ACNS senders write UTC (abuso.zones, step 2 of the one order);
    # the sample's Date is +0100, and a configured default comes after both.
    raw = (SAMPLES / "acns/naive-timestamp.eml").read_bytes()
    inc = parse(raw).incidents[0]
    assert inc.time == datetime(2026, 11, 18, 12, 0, tzinfo=UTC) and inc.zone == "assumed-utc"
    inc = parse(raw, zone="CET").incidents[0]
    assert inc.time == datetime(2026, 11, 18, 12, 0, tzinfo=UTC) and inc.zone == "assumed-utc"


def test_entity_expansion_is_never_performed():
    v = parse((SAMPLES / "acns/entity-expansion.eml").read_bytes())
    (inc,) = v.incidents
    assert str(inc.ip) == "192.0.2.126"
    assert "lol" not in inc.evidence
    assert "undeclared entity references removed" in v.reason


def test_external_entity_is_not_read():
    body = ('<?xml version="1.0"?>\n<!DOCTYPE Infringement [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
            + notice(title="&xxe;"))
    v = parse(mail(body))
    assert "root:" not in v.incidents[0].evidence


def test_declarations_inside_the_element_are_refused():
    text = "<Infringement><!ENTITY a 'b'><Source/></Infringement>"
    assert list(find_notices(text)) == [("", "a notice with DOCTYPE/ENTITY declarations")]


def test_oversized_and_unterminated_notices_are_refused():
    big = "<Infringement>" + "x" * (MAX_XML_BYTES + 1) + "</Infringement>"
    assert list(find_notices(big))[0][1].startswith("a notice of ")
    assert list(find_notices("<Infringement><Source>")) == [("", "an <Infringement> element without its end tag")]


def test_invalid_ip_applies_but_explains():
    v = parse(mail(notice(ip="999.1.1.1")))
    assert v.applied and not v.incidents
    assert "invalid IP address '999.1.1.1'" in v.reason


def test_malformed_xml_applies_but_explains():
    v = parse(mail("<Infringement><Source><IP_Address>192.0.2.1</Source></Infringement>"))
    assert v.applied and not v.incidents and "malformed ACNS XML" in v.reason


def test_bad_port_is_dropped_not_fatal():
    v = parse(mail(notice(port="70000")))
    assert v.incidents[0].port is None


def test_html_escaped_notice():
    v = parse((SAMPLES / "acns/html-escaped.eml").read_bytes())
    assert [str(i.ip) for i in v.incidents] == ["192.0.2.127"]


def test_utf16_xml_attachment():
    data = ('<?xml version="1.0" encoding="UTF-16"?>\n' + notice(ip="192.0.2.9", title="Café")).encode("utf-16")
    v = parse(mail("see attachment", ("n.xml", data, "application/xml")))
    assert [str(i.ip) for i in v.incidents] == ["192.0.2.9"]
    assert v.incidents[0].evidence.startswith("Café")


def test_latin1_xml_attachment_with_declared_encoding():
    data = ('<?xml version="1.0" encoding="ISO-8859-1"?>\n' + notice(title="Café")).encode("latin-1")
    v = parse(mail("see attachment", ("n.xml", data, "application/octet-stream")))
    assert v.incidents[0].evidence.startswith("Café")


def test_timestamp_from_complainant_when_source_and_items_have_none():
    body = notice().replace("<TimeStamp>2026-11-18T10:00:00Z</TimeStamp>", "").replace(
        "<Case>", "<Complainant><TimeStamp>2026-11-17T01:02:03Z</TimeStamp></Complainant><Case>")
    v = parse(mail(body))
    assert v.incidents[0].time == datetime(2026, 11, 17, 1, 2, 3, tzinfo=UTC)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300), st.text(max_size=60))
def test_never_raises_on_hostile_content(inner, ip):
    body = f"prose\n<Infringement xmlns='http://www.acns.net/ACNS'>{inner}<Source><IP_Address>{ip}</IP_Address>" \
           f"</Source></Infringement>\n<Infringement>{inner}"
    v = AcnsParser().parse(normalize(mail(body)))
    assert isinstance(v.reason, str) and v.applied
    assert all(i.type == "copyright" for i in v.incidents)


def test_stamp_at_the_edge_of_time_is_unreadable_not_fatal():
    v = parse(mail(notice(stamp="0001-01-01T00:00:00+05:00")))
    assert v.incidents[0].time is None and "unreadable TimeStamp" in v.reason


def test_refused_notice_is_applied_with_its_reason():
    v = parse(mail("<Infringement><Source><IP_Address>192.0.2.1</IP_Address></Source>"))
    assert v.applied and not v.incidents
    assert v.reason.endswith("an <Infringement> element without its end tag")
