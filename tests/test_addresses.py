"""The address finder: real addresses in any surroundings, never version strings or dotted junk."""

from __future__ import annotations

import ipaddress
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abuso.addresses import find_addresses, is_useful_source, source_address


def ips(text: str) -> list[str]:
    return [str(f.ip) for f in find_addresses(text)]


@pytest.mark.parametrize("text, want", [
    ("SRC=192.0.2.1 DST=198.51.100.2", ["192.0.2.1", "198.51.100.2"]),
    ("from [192.0.2.1] by mx", ["192.0.2.1"]),
    ("connect from unknown[203.0.113.5]", ["203.0.113.5"]),
    ("(192.0.2.1)", ["192.0.2.1"]),
    ("host 192.0.2.1.", ["192.0.2.1"]),
    ("ip:192.0.2.1, next", ["192.0.2.1"]),
    ("192.0.2.1-192.0.2.9", ["192.0.2.1", "192.0.2.9"]),
    ("192.168.001.010 padded", ["192.168.1.10"]),
    ("x 2001:db8::1 y", ["2001:db8::1"]),
    ("[2001:db8::1]:443", ["2001:db8::1"]),
    ("2001:0db8:0000:0000:0000:0000:0000:0001", ["2001:db8::1"]),
    ("from ::ffff:192.0.2.1 port 22", ["::ffff:c000:201"]),
    ("fe80::1%eth0 link", ["fe80::1"]),
    ("end of sentence 2001:db8::5.", ["2001:db8::5"]),
])
def test_finds(text: str, want: list[str]) -> None:
    assert ips(text) == want


@pytest.mark.parametrize("text", [
    "InterMail vK.4.04.00.00 851-426-100",   # version with leading zeros (Mail::Abuse took it)
    "(8.12.9/8.12.6/3.0) with ESMTP",          # sendmail versions
    "Exim 4.92 and SpamAssassin 3.4.6",
    "1.2.3.4.5",                               # longer dotted number
    "OID 1.3.6.1.4.1.9.9.43",
    "22.11.2026 14:37:12",                     # a date
    "144.132.x.x",                             # masked
    "version 10.2.3.4",
    "Mozilla/4.0.0.1 compatible",
    "kernel 5.10.0.21",
    "999.1.1.1 and 1.1.1.256",                 # octets out of range
    "dsl-192-0-2-1 and dsl-192.0.2.1",         # host names
    "4.3.2.1.in-addr.arpa",
    "user 192.0.2.1@example.com",              # a mailbox, not a host
    "Nov 22 03:14:07 host",                    # a time is not IPv6
    "00:16:3e:aa:bb:cc",                       # a MAC address
    "std::vector<int> and Mail::Abuse::Log",
    "[1:2001219:20] snort signature id",
    "1.2.3",
])
def test_not_addresses(text: str) -> None:
    assert ips(text) == []


def test_spans_and_ports() -> None:
    text = "Failed password for root from 203.0.113.5 port 51022 ssh2 via [2001:db8::7]:2222"
    found = find_addresses(text)
    assert [text[f.start:f.end] for f in found] == ["203.0.113.5", "2001:db8::7"]
    assert [f.port for f in found] == [51022, 2222]
    assert find_addresses("198.51.100.9:8080")[0].port == 8080
    assert find_addresses("H=(User) [198.51.100.9]:54321 F=<a@b>")[0].port == 54321
    assert find_addresses("[198.51.100.9] said")[0].port is None


def test_tcpdump_ports() -> None:
    found = find_addresses("IP 192.0.2.1.51022 > 198.51.100.2.22: Flags [S]")
    assert [(str(f.ip), f.port) for f in found] == [("192.0.2.1", 51022), ("198.51.100.2", 22)]


def test_ipv4_mapped_is_the_ipv4_host() -> None:
    f = find_addresses("from ::ffff:192.0.2.1")[0]
    assert source_address(f.ip) == ipaddress.ip_address("192.0.2.1")


@pytest.mark.parametrize("ip, useful", [
    ("10.1.2.3", True), ("192.0.2.1", True), ("2001:db8::1", True),
    ("0.0.0.0", False), ("127.0.0.1", False), ("255.255.255.0", False), ("224.0.0.1", False),
    ("169.254.1.1", False), ("::1", False), ("ff02::1", False),
])
def test_useful_sources(ip: str, useful: bool) -> None:
    assert is_useful_source(ipaddress.ip_address(ip)) is useful


# --- properties -------------------------------------------------------------------

# No 'e' or 'u': random words must not spell "version", "build" or "kernel".
_words = st.text(alphabet="abcdfghijklmnopqrstvwxyz ,;=()[]<>\"'!?\t-", max_size=30)


def _left(s: str) -> str:
    return s if not s or s[-1] in " ,;=([<\"'\t" else s + " "


def _right(s: str) -> str:
    return s if not s or s[0] in " ,;)]>\"'!?\t" else " " + s


@settings(max_examples=300, deadline=None)
@given(ip=st.ip_addresses(), before=_words, after=_words, bracket=st.booleans())
def test_any_address_in_any_text_is_found_exactly(ip: ipaddress._BaseAddress, before: str, after: str,
                                                  bracket: bool) -> None:
    rendered = str(ip)
    if bracket:
        rendered = f"[{rendered}]"
    text = _left(before) + rendered + _right(after)
    found = find_addresses(text)
    assert [f.ip for f in found] == [ip]
    f = found[0]
    assert ipaddress.ip_address(text[f.start:f.end]) == ip


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.integers(0, 255), min_size=1, max_size=12).filter(lambda p: len(p) != 4),
       before=_words, after=_words)
def test_dotted_numbers_of_other_lengths_are_never_found(parts: list[int], before: str, after: str) -> None:
    text = _left(before) + ".".join(map(str, parts)) + _right(after)
    assert find_addresses(text) == []


@settings(max_examples=200, deadline=None)
@given(major=st.integers(0, 20), rest=st.lists(st.integers(0, 99), min_size=3, max_size=3),
       word=st.sampled_from(["version ", "v", "ver. ", "release ", "build ", "Exim/", "kernel "]))
def test_versions_are_never_found(major: int, rest: list[int], word: str) -> None:
    assert find_addresses(f"running {word}{major}.{'.'.join(map(str, rest))} now") == []


def test_hostile_input_is_linear() -> None:
    """Megabytes of hex, digits, dots and colons must not backtrack.

    CPU time, not wall time: a busy machine stretches the wall clock, never a linear scan into a
    quadratic one (these take ~0.05 s of CPU; backtracking takes minutes)."""
    blobs = ["a" * 200_000 + ":", "1." * 100_000, ":" * 100_000 + "1", "1:" * 100_000, "f" * 100_000 + "::"]
    for blob in blobs:
        start = time.process_time()
        find_addresses(blob)
        assert time.process_time() - start < 1.0, blob[:10]


def test_reserved_ipv6_shapes_from_code_and_binary_are_not_sources():
    import ipaddress

    from abuso.addresses import is_useful_source

    for text in ("::3", "d::", "std::vector", "100::1"):
        for found in find_addresses(f"x {text} y"):
            assert not is_useful_source(found.ip), text
    assert is_useful_source(ipaddress.ip_address("2001:db8::42"))
    assert is_useful_source(ipaddress.ip_address("fd00::1"))  # unique-local: an internal report's own space
