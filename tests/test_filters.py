from datetime import datetime, timedelta, timezone
from ipaddress import ip_address

import pytest

from abuso.errors import ConfigError
from abuso.filters.ip import IpFilter
from abuso.filters.time import TimeFilter
from abuso.model import Incident, Report

DATE = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


def inc(ip: str, time: datetime | None = DATE) -> Incident:
    return Incident(ip_address(ip), "scanner", time, "log", "explicit" if time else "none")


def test_ip_within_and_outside_v4_v6():
    f = IpFilter({"within": ["192.0.2.0/24", "2001:db8::/32"], "outside": ["192.0.2.0/28"]})
    r = Report(b"")
    assert f.reject(inc("192.0.2.17"), r) is None
    assert f.reject(inc("2001:db8:1::5"), r) is None
    assert "not within" in f.reject(inc("198.51.100.1"), r)
    assert "excluded" in f.reject(inc("192.0.2.3"), r)
    assert "not within" in f.reject(inc("2001:db9::1"), r)


def test_ip_bad_network_is_config_error():
    with pytest.raises(ConfigError):
        IpFilter({"within": ["300.1.1.0/24"]})


def test_time_window_relative_to_report_date_not_now():
    f = TimeFilter({"before": "30d", "after": "1d"})
    r = Report(b"", date=DATE)
    assert f.reject(inc("192.0.2.1", DATE - timedelta(days=29)), r) is None
    assert "before" in f.reject(inc("192.0.2.1", DATE - timedelta(days=31)), r)
    assert "after" in f.reject(inc("192.0.2.1", DATE + timedelta(days=2)), r)
    # An old report re-processed years later keeps its incidents.
    old = Report(b"", date=datetime(2003, 10, 31, tzinfo=timezone.utc))
    assert f.reject(inc("192.0.2.1", datetime(2003, 10, 23, tzinfo=timezone.utc)), old) is None


def test_time_untimed_policy():
    r = Report(b"", date=DATE)
    assert TimeFilter({}).reject(inc("192.0.2.1", None), r) is None
    assert TimeFilter({"untimed": "drop"}).reject(inc("192.0.2.1", None), r)


def test_time_window_falls_back_to_arrival_when_date_is_missing():
    from abuso.pipeline import Pipeline

    raw = (b"Received: from mx (mx [192.0.2.1]) by us; Sun, 22 Nov 2026 12:00:00 +0000\n"
           b"Subject: no date\n\nbody\n")
    report = Pipeline.from_config({"parsers": []}).analyse(raw)
    assert report.date is None and report.notes["arrival"] == DATE
    f = TimeFilter({"before": "1d"})
    assert "arrival time" in f.reject(inc("192.0.2.1", DATE - timedelta(days=3)), report)
    assert f.reject(inc("192.0.2.1", DATE - timedelta(hours=3)), report) is None


def test_ip_ranges_agree_with_stdlib_on_edges_and_merged_networks():
    import ipaddress

    nets = ["192.0.2.0/25", "192.0.2.128/25", "198.51.100.7/32", "2001:db8::/48", "10.0.0.0/8"]
    f = IpFilter({"within": nets})
    r = Report(b"")
    parsed = [ipaddress.ip_network(n) for n in nets]
    probes = ["192.0.1.255", "192.0.2.0", "192.0.2.255", "192.0.3.0", "198.51.100.6", "198.51.100.7",
              "198.51.100.8", "2001:db8::", "2001:db8:0:ffff:ffff:ffff:ffff:ffff", "2001:db8:1::", "::ffff:10.0.0.1",
              "9.255.255.255", "10.255.255.255", "11.0.0.0"]
    for p in probes:
        addr = ipaddress.ip_address(p)
        want = any(addr in n for n in parsed if n.version == addr.version)
        assert (f.reject(inc(p), r) is None) == want, p
