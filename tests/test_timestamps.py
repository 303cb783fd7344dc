"""The timestamp finder: shapes, zone precedence, yearless stamps, stated zones, the fast path."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abuso import timestamps
from abuso.timestamps import find_timestamps, parse_timestamp, stated_zone, zone_offset, zone_tzinfo

UTC = timezone.utc
REF = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # the report's Date
PLUS1 = timedelta(hours=1)


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


@pytest.mark.parametrize("line, want, zone, shape", [
    # syslog, no year, no zone: Date header offset
    ("Nov 22 03:14:07 srv sshd[1]: Failed password", utc(2026, 11, 22, 2, 14, 7), "date-header", "monthfirst"),
    # ISO 8601
    ("2026-11-22T03:14:07Z x", utc(2026, 11, 22, 3, 14, 7), "explicit", "iso"),
    ("2026-11-22T03:14:07.250+01:00", utc(2026, 11, 22, 2, 14, 7, 250000), "explicit", "iso"),
    ("2026-11-23 08:15:00", utc(2026, 11, 23, 7, 15), "date-header", "iso"),
    ("2026-11-22 03:14:07,123 fail2ban.actions", utc(2026, 11, 22, 2, 14, 7, 123000), "date-header", "iso"),
    # Apache / CLF (dateparser cannot read it)
    ('1.2.3.4 - - [24/Nov/2026:13:05:01 +0100] "GET /"', utc(2026, 11, 24, 12, 5, 1), "explicit", "clf"),
    # RFC 2822 with comment zone; the numeric offset wins
    ("Tue, 23 Oct 2003 18:13:36 -0400 (EST)", utc(2003, 10, 23, 22, 13, 36), "explicit", "rfc2822"),
    ("23 Oct 2003 18:13:36 -0400", utc(2003, 10, 23, 22, 13, 36), "explicit", "rfc2822"),
    # date(1)
    ("Sun Nov 22 03:14:07 CET 2026", utc(2026, 11, 22, 2, 14, 7), "explicit", "monthfirst"),
    ("Sun Nov 22 03:14:07 UTC 2026", utc(2026, 11, 22, 3, 14, 7), "explicit", "monthfirst"),
    # month first with comma and PM (myNetWatchman)
    ("Oct, 23 2003  6:13:36 PM -0400", utc(2003, 10, 23, 22, 13, 36), "explicit", "monthfirst"),
    # US and Windows
    ("11/22/2026 5:07:44 PM", utc(2026, 11, 22, 16, 7, 44), "date-header", "us"),
    ("11/22/2026 12:07:44 AM", utc(2026, 11, 21, 23, 7, 44), "date-header", "us"),
    ("22/11/2026 17:00:00", utc(2026, 11, 22, 16, 0), "date-header", "us"),  # cannot be month 22
    # European
    ("22.11.2026 14:37:12", utc(2026, 11, 22, 13, 37, 12), "date-header", "eu"),
    # snort (no year)
    ("11/22-03:14:07.123456 [**] alert", utc(2026, 11, 22, 2, 14, 7, 123456), "date-header", "snort"),
    # Check Point
    ("22Nov2026  3:14:07 drop src: 1.2.3.4", utc(2026, 11, 22, 2, 14, 7), "date-header", "rfc2822"),
    # GMT-3 in the stamp
    ("2026-11-22 10:00:00 GMT-3", utc(2026, 11, 22, 13, 0), "explicit", "iso"),
    # Apache error log, Windows event XML (nanoseconds), RFC 3339 syslog
    ("[Sun Nov 22 03:14:07.123456 2026] [core:error] [pid 1]", utc(2026, 11, 22, 2, 14, 7, 123456), "date-header",
     "monthfirst"),
    ("<TimeCreated SystemTime='2026-11-22T17:07:44.123456700Z'/>", utc(2026, 11, 22, 17, 7, 44, 123456), "explicit",
     "iso"),
    ("2026-11-22T03:14:07.5+01:00 host sshd[1]:", utc(2026, 11, 22, 2, 14, 7, 500000), "explicit", "iso"),
    ("November 22nd, 2026 3:14:07 PM EST", utc(2026, 11, 22, 20, 14, 7), "explicit", "monthfirst"),
    ("22-Nov-2026 03:14:07", utc(2026, 11, 22, 2, 14, 7), "date-header", "rfc2822"),
    ("11/22/26 5:07:44 PM", utc(2026, 11, 22, 16, 7, 44), "date-header", "us"),   # two-digit year
    ("am 22. November 2026 um 14:37:12 Uhr", utc(2026, 11, 22, 13, 37, 12), "date-header", "prosemon"),
    ("le 22 nov. 2026 à 14:37:12", utc(2026, 11, 22, 13, 37, 12), "date-header", "prosemon"),
    ("on November 22, 2026 at 3:14:07 PM", utc(2026, 11, 22, 14, 14, 7), "date-header", "prosemon"),
    ("22.11.2026 14:37:12 (CET) port scan", utc(2026, 11, 22, 13, 37, 12), "explicit", "eu"),
    ("2026-11-22 14:37:12 (UTC+2)", utc(2026, 11, 22, 12, 37, 12), "explicit", "iso"),
    # epoch: labelled, and at the start of a line (squid)
    ("time=1795588447 src=1.2.3.4", utc(2026, 11, 25, 6, 34, 7), "explicit", "epoch"),
    ("1795588447.123 TCP_DENIED/403", utc(2026, 11, 25, 6, 34, 7, 123000), "explicit", "epoch"),
])
def test_shapes(line: str, want: datetime, zone: str, shape: str) -> None:
    found = find_timestamps(line, reference=REF, header_offset=PLUS1)
    assert len(found) == 1, found
    s = found[0]
    assert (s.time, s.zone, s.shape) == (want, zone, shape)
    assert s.time.tzinfo is UTC


def test_span_excludes_words_after_the_time() -> None:
    line = "Oct 23 18:13:36 sue kernel: DROP"
    s = find_timestamps(line, reference=REF)[0]
    assert line[s.start:s.end] == "Oct 23 18:13:36"


@pytest.mark.parametrize("line", [
    "version 4.04.00.00 and 8.12.9/8.12.6",
    "http://www.mynetwatchman.com/UI.asp?IID=5433333333&CD=21Oct200311:22:11",  # no separator
    "order 1234567890 shipped",   # an epoch-looking number that nothing marks as a time
    "Nov 31 10:00:00 host",       # no such day
    "2026-13-01 10:00:00",        # no such month
    "25:61 is not a time",
    "13:05 PM",                   # 13 PM
    "0001-01-01 00:00:00",        # placeholders, not times
    "9999-12-31 23:59:59 -1400",
])
def test_not_timestamps(line: str) -> None:
    assert find_timestamps(line, reference=REF) == []


def test_zone_precedence() -> None:
    line = "2026-11-22 03:00:00 event"
    cet = timezone(timedelta(hours=1))
    # explicit > stated > date-header > default > assumed-utc
    assert find_timestamps("2026-11-22 03:00:00 +0200", stated=cet, header_offset=PLUS1)[0].zone == "explicit"
    s = find_timestamps(line, stated=cet, header_offset=timedelta(hours=-5), default="EST")[0]
    assert (s.time, s.zone) == (utc(2026, 11, 22, 2), "stated")
    s = find_timestamps(line, header_offset=timedelta(hours=-5), default="CET")[0]
    assert (s.time, s.zone) == (utc(2026, 11, 22, 8), "date-header")
    s = find_timestamps(line, default="Europe/Berlin")[0]
    assert (s.time, s.zone) == (utc(2026, 11, 22, 2), "default")
    s = find_timestamps(line)[0]
    assert (s.time, s.zone) == (utc(2026, 11, 22, 3), "assumed-utc")


def test_dst_aware_region_names() -> None:
    berlin = stated_zone("All times are Europe/Berlin.")
    assert berlin is not None
    summer = find_timestamps("2026-07-12 23:41:07", stated=berlin)[0]
    winter = find_timestamps("2026-11-12 23:41:07", stated=berlin)[0]
    assert summer.time == utc(2026, 7, 12, 21, 41, 7)
    assert winter.time == utc(2026, 11, 12, 22, 41, 7)
    pair = stated_zone("all times CET/CEST")
    assert pair is not None and find_timestamps("2026-07-01 12:00:00", stated=pair)[0].time.hour == 10
    # A bare abbreviation is the fixed offset it names, summer or not.
    cet = stated_zone("times are CET")
    assert cet is not None and find_timestamps("2026-07-01 12:00:00", stated=cet)[0].time.hour == 11


@pytest.mark.parametrize("line, ref, want", [
    ("Nov 22 03:14:07", utc(2026, 11, 25, 12), 2026),
    ("Dec 31 23:59:58", utc(2027, 1, 1, 0, 20), 2026),       # new year: last year
    ("Jan  1 00:00:03", utc(2027, 1, 1, 0, 20), 2027),
    ("Nov 26 03:00:00", utc(2026, 11, 25, 12), 2026),       # a day ahead: zone slack, same year
    ("Nov 28 03:00:00", utc(2026, 11, 25, 12), 2025),       # after the report: last year
    ("Feb 29 10:00:00", utc(2026, 3, 5), 2024),              # the leap day before the report
])
def test_yearless_stamps_take_the_year_at_or_before_the_report(line: str, ref: datetime, want: int) -> None:
    assert find_timestamps(line, reference=ref)[0].time.year == want


def test_partial_stamps_are_marked() -> None:
    assert find_timestamps("2026-11-22 03:14", reference=REF)[0].partial
    assert not find_timestamps("2026-11-22 03:14:07", reference=REF)[0].partial


@pytest.mark.parametrize("line, precision", [
    ("2026-11-22 03:14", 60.0), ("2026-11-22 03:14:07", 1.0), ("2026-11-22 03:14:07.123", 1e-3),
    ("11/22-03:14:07.123456", 1e-6), ("1795588447.5 TCP_DENIED", 0.1), ("time=1795588447", 1.0),
])
def test_precision(line: str, precision: float) -> None:
    assert find_timestamps(line, reference=REF)[0].precision == pytest.approx(precision)


def test_dayfirst_option() -> None:
    assert find_timestamps("03/04/2026 10:00:00")[0].time.month == 3
    assert find_timestamps("03/04/2026 10:00:00", dayfirst=True)[0].time.month == 4


@pytest.mark.parametrize("text, label, hours", [
    ("All times are UTC", "UTC", 0),
    ("Time zone: EST (UTC-5)", "UTC-5", -5),
    ("Time Zone: UTC\nBetter yet Time Zone: VET", "UTC", 0),   # the first statement wins
    ("Auszug aus dem Log (MEZ):", "MEZ", 1),
    ("Our clocks run on GMT-3.", "GMT-3", -3),
    ("Times in GMT-3.", "GMT-3", -3),
    ("This report is based at a timezone of -0700", "-0700", -7),
    ("(All times are UTC.)", "UTC", 0),
    ("timestamps are given in CET", "CET", 1),
])
def test_stated_zone(text: str, label: str, hours: int) -> None:
    found = stated_zone(text)
    assert found is not None
    tz, name = found
    assert name == label
    assert tz.utcoffset(datetime(2026, 1, 15)) == timedelta(hours=hours)


@pytest.mark.parametrize("text", [
    "MEZ", "timezone ZP4", "THIS IS THE TEXT WE LOOK FOR at GMT", "Tue, 23 Oct 2003 18:13:36 -0400 (EST)",
    "windows-1252 encoded", "the times are changing",
])
def test_no_stated_zone(text: str) -> None:
    assert stated_zone(text) is None


def test_zone_offset_keeps_the_config_contract() -> None:
    assert zone_offset("UTC") == timedelta(0)
    assert zone_offset("CET") == PLUS1
    assert zone_offset("+0530") == timedelta(hours=5, minutes=30)
    assert zone_offset("GMT-3") == timedelta(hours=-3)
    assert zone_offset("Europe/Berlin") is None    # no single offset: zone_tzinfo applies DST
    assert zone_offset("Mars/Olympus") is None and zone_offset("XYZ") is None
    assert zone_tzinfo("Europe/Berlin").utcoffset(datetime(2026, 7, 1)) == timedelta(hours=2)


def test_parse_timestamp_fields() -> None:
    s = parse_timestamp("Thu, 8 Mar 2005 17:00:00 +0100")
    assert s is not None and s.time == utc(2005, 3, 8, 16) and s.zone == "explicit"
    s = parse_timestamp("1795588447")
    assert s is not None and s.shape == "epoch"
    assert parse_timestamp("") is None
    assert parse_timestamp("no date here", fallback=False) is None


def test_dateparser_is_only_a_fallback() -> None:
    """Ordinary lines never reach dateparser; odd shapes and other languages do."""
    before = timestamps.FALLBACK_CALLS[0]
    for line in ["Nov 22 03:14:07 srv sshd", "2026-11-23 08:15:00", "11/22/2026 5:07:44 PM",
                 "no time at all here", "ports 80:443 open"]:
        find_timestamps(line, reference=REF, fallback=True)
    parse_timestamp("24/Nov/2026:13:05:01 +0100")
    assert timestamps.FALLBACK_CALLS[0] == before
    assert parse_timestamp("8. März 2026 um 17:00", reference=REF).shape == "prosemon"  # fast path
    s = parse_timestamp("8 марта 2026 г. 17:00", reference=REF)
    assert timestamps.FALLBACK_CALLS[0] == before + 1
    assert s is not None and (s.time, s.shape) == (utc(2026, 3, 8, 17), "fallback")


def test_common_lines_take_the_fast_path() -> None:
    """The regexes, not dateparser, read ordinary log lines (per-line cost: bench/stage_speed.py)."""
    lines = ["Nov 22 03:14:07 web1 sshd[28411]: Failed password for root from 203.0.113.45 port 50122 ssh2",
             "just some prose without digits", '1.2.3.4 - - [24/Nov/2026:13:05:01 +0100] "GET / HTTP/1.1" 200 5']
    before = timestamps.FALLBACK_CALLS[0]
    found = [find_timestamps(line, reference=REF) for line in lines]
    assert timestamps.FALLBACK_CALLS[0] == before
    assert [len(f) for f in found] == [1, 0, 1]
    assert found[2][0].time == utc(2026, 11, 24, 12, 5, 1)


def test_hostile_lines_are_linear() -> None:
    """CPU time, not wall time: a busy machine must not make a linear reading look slow."""
    for blob in ["1:" * 50_000, "Nov " * 50_000, "2026-11-22 " * 20_000, "1/" * 50_000 + "1:00",
                 "22.11." * 30_000]:
        start = time.process_time()
        find_timestamps(blob, reference=REF)
        assert time.process_time() - start < 2.0, blob[:12]


@settings(max_examples=200, deadline=None)
@given(dt=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 12, 31)),
       offset_min=st.integers(-12 * 60, 14 * 60).map(lambda m: m - m % 15),
       fmt=st.sampled_from(["iso", "clf", "rfc2822"]))
def test_explicit_stamps_round_trip(dt: datetime, offset_min: int, fmt: str) -> None:
    tz = timezone(timedelta(minutes=offset_min))
    aware = dt.replace(microsecond=0, tzinfo=tz)
    sign = "+" if offset_min >= 0 else "-"
    off = f"{sign}{abs(offset_min) // 60:02d}{abs(offset_min) % 60:02d}"
    months = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
    text = {
        "iso": aware.strftime("%Y-%m-%dT%H:%M:%S") + off[:3] + ":" + off[3:],
        "clf": f"{aware.day:02d}/{months[aware.month - 1]}/{aware.year}:{aware:%H:%M:%S} {off}",
        "rfc2822": f"{aware.day} {months[aware.month - 1]} {aware.year} {aware:%H:%M:%S} {off}",
    }[fmt]
    found = find_timestamps(f"seen {text} from 192.0.2.1")
    assert [s.time for s in found] == [aware.astimezone(UTC)]
    assert found[0].zone == "explicit"


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_any_text_gives_aware_utc_stamps_inside_the_line(text: str) -> None:
    for s in find_timestamps(text, reference=REF, epoch=True):
        assert s.time.tzinfo is UTC and 0 <= s.start < s.end <= len(text)


@settings(max_examples=200, deadline=None)
@given(stamp=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2030, 12, 31)),
       ahead=st.integers(-300, 300))
def test_yearless_stamps_land_within_the_year_before_the_report(stamp: datetime, ahead: int) -> None:
    stamp = stamp.replace(microsecond=0)
    ref = stamp.replace(tzinfo=UTC) + timedelta(days=ahead)
    months = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
    line = f"{months[stamp.month - 1]} {stamp.day:2d} {stamp:%H:%M:%S} host sshd[1]: x"
    (found,) = find_timestamps(line, reference=ref)
    assert found.time <= ref + timedelta(days=1)
    assert found.time > ref - timedelta(days=366 * 4 + 2)  # Feb 29 may reach back to the last leap year
    if not (stamp.month == 2 and stamp.day == 29):
        assert found.time > ref - timedelta(days=366)
    assert (found.time.month, found.time.day, found.time.time()) == (stamp.month, stamp.day, stamp.time())
