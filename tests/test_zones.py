"""The one order for a naive timestamp's zone (abuso.zones), DST, and defaults.zone through the config."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.message import EmailMessage

import pytest

from abuso.config import load
from abuso.errors import ConfigError
from abuso.normalize import normalize
from abuso.pipeline import Pipeline
from abuso.zones import Zones, check_zone, resolve, zone_offset, zone_tzinfo

UTC = timezone.utc
NAIVE = datetime(2026, 11, 22, 3, 0)


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


# --- the order -----------------------------------------------------------------------------------


def test_each_source_in_order_and_its_label() -> None:
    """Every source is given, with a different offset, and removed one at a time from the top."""
    sources = dict(stated="UTC+3", header_offset=timedelta(hours=-5), default="CET")
    aware = NAIVE.replace(tzinfo=timezone(timedelta(hours=2)))
    assert resolve(aware, format_utc=True, **sources) == (utc(2026, 11, 22, 1), "explicit")
    assert resolve(NAIVE, format_utc=True, **sources) == (utc(2026, 11, 22, 3), "assumed-utc")
    assert resolve(NAIVE, **sources) == (utc(2026, 11, 22, 0), "stated")
    del sources["stated"]
    assert resolve(NAIVE, **sources) == (utc(2026, 11, 22, 8), "date-header")
    del sources["header_offset"]
    assert resolve(NAIVE, **sources) == (utc(2026, 11, 22, 2), "default")
    assert resolve(NAIVE) == (utc(2026, 11, 22, 3), "assumed-utc")


def test_a_time_that_cannot_be_placed_is_none() -> None:
    assert resolve(datetime(1, 1, 1, 0, 30), default="+0100") is None
    assert resolve(datetime(9999, 12, 31, 23, 30), header_offset=timedelta(hours=-5)) is None


def test_report_sources_come_from_the_message_and_the_statement_is_read_on_first_need() -> None:
    msg = normalize(b"From: a@example.org\nDate: Sun, 22 Nov 2026 10:00:00 -0500\nSubject: x\n\n"
                    b"All times are CET.\n2026-11-22 03:00:00 192.0.2.1 scan\n")
    zones = Zones.of(msg, {"zone": "Asia/Tokyo"})
    assert zones.header_offset == timedelta(hours=-5) and zones.default is not None
    assert zones.resolve(NAIVE) == (utc(2026, 11, 22, 2), "stated")
    # Without a statement, the Date offset; without a Date either, the configured zone.
    msg = normalize(b"From: a@example.org\nDate: Sun, 22 Nov 2026 10:00:00 -0500\nSubject: x\n\nscan\n")
    assert Zones.of(msg, {"zone": "Asia/Tokyo"}).resolve(NAIVE) == (utc(2026, 11, 22, 8), "date-header")
    msg = normalize(b"From: a@example.org\nSubject: x\n\nscan\n")
    assert Zones.of(msg, {"zone": "Asia/Tokyo"}).resolve(NAIVE) == (utc(2026, 11, 21, 18), "default")
    assert Zones.of(msg).resolve(NAIVE) == (utc(2026, 11, 22, 3), "assumed-utc")


# --- regions, DST and the clock-change rule ---------------------------------------------------


def test_region_default_follows_summer_time_on_each_stamps_own_date() -> None:
    assert resolve(datetime(2026, 1, 15, 12, 0), default="Europe/Berlin") == (utc(2026, 1, 15, 11), "default")
    assert resolve(datetime(2026, 7, 15, 12, 0), default="Europe/Berlin") == (utc(2026, 7, 15, 10), "default")
    # The abbreviation alone is the fixed offset it names, in July too; the pair is the region.
    assert resolve(datetime(2026, 7, 15, 12, 0), default="CET") == (utc(2026, 7, 15, 11), "default")
    assert resolve(datetime(2026, 7, 15, 12, 0), default="CET/CEST") == (utc(2026, 7, 15, 10), "default")


def test_ambiguous_hour_is_the_first_and_nonexistent_hour_takes_the_offset_before_the_jump() -> None:
    # 25 Oct 2026: Berlin clocks go back 03:00 CEST -> 02:00 CET; 02:30 happens twice.
    assert resolve(datetime(2026, 10, 25, 2, 30), default="Europe/Berlin")[0] == utc(2026, 10, 25, 0, 30)
    # 29 Mar 2026: clocks jump 02:00 CET -> 03:00 CEST; 02:30 never shows: read at +1 (= 03:30 CEST).
    assert resolve(datetime(2026, 3, 29, 2, 30), default="Europe/Berlin")[0] == utc(2026, 3, 29, 1, 30)
    # The hours around both changes are unambiguous.
    assert resolve(datetime(2026, 10, 25, 3, 30), default="Europe/Berlin")[0] == utc(2026, 10, 25, 2, 30)
    assert resolve(datetime(2026, 3, 29, 3, 30), default="Europe/Berlin")[0] == utc(2026, 3, 29, 1, 30)


def test_zone_offset_stays_fixed_only_for_the_radius_reader() -> None:
    assert zone_offset("CET") == timedelta(hours=1) and zone_offset("+05:30") == timedelta(hours=5, minutes=30)
    assert zone_offset("Europe/Berlin") is None and zone_offset("CET/CEST") is None
    assert zone_tzinfo("Europe/Berlin") is not None


def test_check_zone_wording() -> None:
    assert check_zone("Europe/Berlin") is zone_tzinfo("Europe/Berlin")
    for bad in ("Mars/Olympus", "", None, "CETT"):
        with pytest.raises(ValueError, match="unknown time zone"):
            check_zone(bad)


# --- defaults.zone through the config loader ---------------------------------------------------


def _report(body: str, date: str | None = None) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "soc@reporter.example", "abuse@example.net", "attacks"
    if date:
        m["Date"] = date
    m.set_content(body)
    return m.as_bytes()


def test_region_in_defaults_zone_through_the_config_file(tmp_path) -> None:
    cfg = tmp_path / "abuso.yaml"
    cfg.write_text("parsers: [log]\ndefaults:\n  zone: Europe/Berlin\n")
    assert load(cfg).defaults["zone"] == "Europe/Berlin"
    pipeline = Pipeline.from_config(cfg)
    raw = _report("2026-01-15 12:00:00 sshd: Failed password for root from 192.0.2.10\n"
                  "2026-07-15 12:00:00 sshd: Failed password for root from 192.0.2.11\n")
    got = {(str(i.ip), i.time, i.zone) for i in pipeline.analyse(raw).incidents}
    assert got == {("192.0.2.10", utc(2026, 1, 15, 11), "default"), ("192.0.2.11", utc(2026, 7, 15, 10), "default")}
    # The report's Date offset comes first.
    raw = _report("2026-07-15 12:00:00 sshd: Failed password for root from 192.0.2.11\n",
                  date="Wed, 15 Jul 2026 18:00:00 -0400")
    (inc,) = pipeline.analyse(raw).incidents
    assert (inc.time, inc.zone) == (utc(2026, 7, 15, 16), "date-header")


def test_unknown_region_in_defaults_zone_names_file_line_and_key(tmp_path) -> None:
    cfg = tmp_path / "abuso.yaml"
    cfg.write_text("parsers: [log]\ndefaults:\n  zone: Europe/Atlantis\n")
    with pytest.raises(ConfigError, match=r":3: defaults.zone: must be a time zone .* not 'Europe/Atlantis'"):
        load(cfg)


# --- every parser, one answer -------------------------------------------------------------------


def _arf(stamp: str) -> bytes:
    return (b"From: fbl@reporter.example\nTo: abuse@isp.example\nSubject: report\n" + DATE +
            b"MIME-Version: 1.0\nContent-Type: multipart/report; report-type=feedback-report; boundary=B\n\n"
            b"--B\nContent-Type: text/plain\n\nA complaint.\n\n--B\nContent-Type: message/feedback-report\n\n"
            b"Feedback-Type: abuse\nSource-IP: 192.0.2.7\nArrival-Date: " + stamp.encode() + b"\n\n--B--\n")


def _csv(stamp: str) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"], m["Date"] = "soc@r.example", "abuse@example.net", "r", DATE[6:].decode().strip()
    m.set_content("see attachment\n")
    m.add_attachment(f"ip,time\n192.0.2.7,{stamp}\n".encode(), maintype="text", subtype="csv", filename="r.csv")
    return m.as_bytes()


def _received(stamp: str) -> bytes:
    return (b"From: u@r.example\nTo: abuse@example.net\nSubject: spam\n" + DATE +
            b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain\n\n"
            b"Spam below.\n\n--B\nContent-Type: message/rfc822\n\n"
            b"Received: from spam.example (spam.example [192.0.2.7]) by mx.reporter.example; " + stamp.encode() +
            b"\nFrom: s@spam.example\nSubject: buy\n\nbuy\n\n--B--\n")


def _log(stamp: str) -> bytes:
    return b"From: soc@r.example\nTo: abuse@example.net\nSubject: scans\n" + DATE + (
        f"\n{stamp} port scan from 192.0.2.7\n").encode()


DATE = b"Date: Tue, 24 Nov 2026 10:00:00 -0500\n"


@pytest.mark.parametrize("parser, build, stamp", [
    ("arf", _arf, "Tue, 24 Nov 2026 09:00:00"),
    ("csv", _csv, "2026-11-24 09:00:00"),
    ("received", _received, "Tue, 24 Nov 2026 09:00:00"),
    ("log", _log, "2026-11-24 09:00:00"),
])
def test_every_parser_gives_a_naive_stamp_the_same_time_and_label(parser, build, stamp) -> None:
    pipeline = Pipeline.from_config({"parsers": [parser], "defaults": {"zone": "Asia/Tokyo"}})
    (inc,) = pipeline.analyse(build(stamp)).incidents
    assert (str(inc.ip), inc.time, inc.zone) == ("192.0.2.7", utc(2026, 11, 24, 14), "date-header")
