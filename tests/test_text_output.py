"""The text format: what an operator reads."""

from __future__ import annotations

from datetime import datetime, timezone

from abuso.model import Incident
from abuso.output.text import incident_line

WHEN = datetime(2026, 11, 22, 2, 14, 7, tzinfo=timezone.utc)


def test_ipv6_with_port_is_bracketed() -> None:
    line = incident_line(Incident("2001:db8::77", "p2p", WHEN, "log", "explicit", port=6881))
    assert "[2001:db8::77]:6881 " in line
    assert "2001:db8::77:6881" not in line


def test_ipv4_with_port_and_addresses_without_port() -> None:
    assert " 192.0.2.1:22 " in incident_line(Incident("192.0.2.1", "brute-force", WHEN, "log", port=22))
    line = incident_line(Incident("2001:db8::77", "spam", None, "log"))
    assert line.split()[0] == "2001:db8::77"
    assert "(no time)" in line
