"""Find IPv4 and IPv6 addresses in free text, with their positions.

Abuse reports are full of dotted numbers that are not addresses: version
strings (``InterMail vK.4.04.00.00``, ``8.12.9/8.12.6``), OIDs, dates
(``22.11.2026``), masked addresses (``144.132.x.x``). Mail::Abuse took many of
them for addresses. Here a candidate is checked in code, not with clever
look-arounds, so that each rule is readable and the regexes stay linear.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache

from .digitblind import blind, key_for
from .lazy import lazy_compile

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any, Iterator

    from .digitblind import Keyed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Four dotted groups of 1-3 digits; boundaries are checked in _v4_ok().
_V4 = lazy_compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
# A run of hex digits, colons and dots with at least two colons: an IPv6 candidate.
# The first two segments exclude ':' and a match only starts a run, so the
# scan stays linear even over megabytes of hex; ipaddress validates.
_V6 = lazy_compile(r"(?<![0-9A-Fa-f:.])[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*")
_V6_ZONE = lazy_compile(r"%[\w.-]{1,16}")
_VERSION_WORD = lazy_compile(r"\b(?:version|ver\.?|release|rel\.?|rev\.?|build|kernel|firmware)\s*$", re.I)
_PORT_AFTER = lazy_compile(r"(?::|\s+port\s+|#)(\d{1,5})\b", re.I)
# tcpdump writes the port as a fifth dotted group: "IP 192.0.2.1.51022 > 198.51.100.2.22: Flags".
# Only the whole shape counts; a lone five-part number is an OID or a version.
_TCPDUMP = lazy_compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})\.(\d{1,5}) > (\d{1,3}(?:\.\d{1,3}){3})\.(\d{1,5}):")


@dataclass(frozen=True)
class Found:
    """One address in a text: the address, its span and a port written with it."""

    ip: IPAddress
    start: int
    end: int
    port: int | None = None


def _octets_ok(text: str) -> bool:
    parts = text.split(".")
    padded = False
    for p in parts:
        if len(p) == 3 and p > "255":
            return False
        if len(p) > 1 and p[0] == "0":
            padded = True
    # Leading zeros ("4.04.00.00") mark version strings and junk; a fixed
    # three-digit zero padding of every octet ("192.168.001.010") is a log style.
    return not padded or all(len(p) == 3 for p in parts)


def _v4_ok(text: str, start: int, end: int) -> bool:
    """Is the dotted quad at text[start:end] free-standing (not part of a longer token)?"""
    if start:
        before = text[start - 1]
        if before.isalnum() or before in "_.":
            return False
        prev = text[start - 2] if start >= 2 else " "
        if before in "-/" and prev.isalpha():
            return False  # dsl-1.2.3.4 (host names), Product/1.2.3.4 (versions)
        if _VERSION_WORD.search(text, max(0, start - 12), start):
            return False
    if end < len(text):
        after = text[end]
        if after.isalnum() or after in "_@":
            return False  # 1.2.3.4abc, and 1.2.3.4@example.com (a mailbox, not a host)
        if after == "." and end + 1 < len(text) and text[end + 1].isalnum():
            return False  # 1.2.3.4.5, OIDs, 1.2.3.4.in-addr.arpa
    return True


def find_addresses(text: str, limit: int | None = None, keyed: Keyed | None = None) -> list[Found]:
    """Every IPv4 and IPv6 address in ``text``, in order, with spans.

    IPv6 is looked for first so that the IPv4 tail of ``::ffff:1.2.3.4`` is not
    reported twice. A port is attached when written with the address
    (``1.2.3.4:8080``, ``[2001:db8::1]:443``, ``1.2.3.4 port 22``, tcpdump's
    ``1.2.3.4.51022 >``). ``limit``: stop after that many (hostile lists).

    A text of up to a log line's length is read by its :func:`_plan`, kept by the text with its
    digits made 0: the lines of a log differ in their numbers, and the spans where an address can
    stand do not (see _plan). Only the checks on the numbers themselves run for every text.
    ``keyed``: the text with its key, made once for all its memos (abuso.digitblind.keyed); used only when
    made for this very text (digitblind.key_for), else the text is zeroed.
    """
    if len(text) > _PLAN_MAX or not (_BLIND[0] if _BLIND else _plan_blind()):
        return _scan(text, limit)
    key = key_for(text, keyed)
    plan = _PLANS.get(key, _NO_PLAN)
    if plan is _NO_PLAN:
        plan = _plan(text)
        if len(_PLANS) >= _PLANS_KEPT:
            _PLANS.clear()
        _PLANS[key] = plan
    if plan is None:
        return _scan(text, limit)
    return _replay(text, plan, limit)


def _scan(text: str, limit: int | None = None) -> list[Found]:
    """find_addresses by a full reading of ``text``: what a plan replays must equal it.

    Every IPv4 and IPv6 address in ``text``, in order, with spans.

    IPv6 is looked for first so that the IPv4 tail of ``::ffff:1.2.3.4`` is not
    reported twice. A port is attached when written with the address
    (``1.2.3.4:8080``, ``[2001:db8::1]:443``, ``1.2.3.4 port 22``, tcpdump's
    ``1.2.3.4.51022 >``). ``limit``: stop after that many (hostile lists).
    """
    found: list[Found] = []
    taken: list[tuple[int, int]] = []
    if text.count(":") >= 2:
        for f in _find_v6(text):
            found.append(f)
            taken.append((f.start, f.end))
    if "." in text:
        tcpdump: dict[int, int] = {}
        if " > " in text:
            for m in _TCPDUMP.finditer(text):
                for g in (1, 3):
                    if int(m.group(g + 1)) <= 65535:
                        tcpdump[m.start(g)] = int(m.group(g + 1))
        for m in _V4.finditer(text):
            s, e = m.span()
            if taken and any(a <= s < b for a, b in taken) or not _octets_ok(m.group()):
                continue
            port = None
            if e + 1 < len(text) and text[e] == "." and text[e + 1].isdigit():
                # A fifth dotted group: an OID or version, unless tcpdump wrote a port there.
                port = tcpdump.get(s)
                if port is None:
                    continue
            elif not _v4_ok(text, s, e):
                continue
            a, b, c, d = (int(p) for p in m.group().split("."))
            ip = ipaddress.IPv4Address((a << 24) | (b << 16) | (c << 8) | d)
            if port is None:
                port = _port_value(text, _v4_port_span(text, s, e))
            found.append(Found(ip, s, e, port))
            if limit is not None and len(found) >= limit:
                break
    if taken:
        found.sort(key=lambda f: f.start)
    return found if limit is None else found[:limit]


def _find_v6(text: str) -> Iterator[Found]:
    for m in _V6.finditer(text):
        s, e = m.span()
        cand, s, e = _trim_v6(m.group(), s, e)
        colons = cand.count(":")
        url_port = None
        if colons == 8 and "::" not in cand and text.endswith("://", max(0, s - 3), s):
            # http://2001:db8:0:0:0:0:0:2:2222/ - an unbracketed address with a port, as
            # Google Safe Browsing writes them: eight groups, then the port.
            head, _, tail = cand.rpartition(":")
            if tail.isdigit() and int(tail) <= 65535:
                cand, url_port, e, colons = head, int(tail), s + len(head), 7
        if colons < 2 or "::" not in cand and colons != 7 and not (colons == 6 and "." in cand):
            continue  # "03:14:07", MAC addresses: not enough groups for IPv6
        if len(cand) > 45 or s and (text[s - 1].isalnum() or text[s - 1] in "_:."):
            continue
        if url_port is None and e < len(text) and (text[e].isalnum() or text[e] == "_"):
            continue
        ip = _v6_address(cand)
        if ip is None:
            continue
        if url_port is not None:
            yield Found(ip, s, e, url_port)
            continue
        yield Found(ip, s, e, _port_value(text, _v6_port_span(text, s, e)))


#: Plans of texts up to a log line's length, by the text with its digits made 0; how many are kept.
_PLAN_MAX = 2_000
_PLANS_KEPT = 8_192
_NO_PLAN: Any = object()
#: A port's digits (start, end) after an address, or None.
_PortSpan = tuple[int, int] | None
#: (IPv6 candidates (start, end, port), tcpdump ports (address start, port digits),
#:  IPv4 candidates (start, end, a fifth dotted group follows, port)); None: read the text in full.
_Plan = tuple[tuple[tuple[int, int, _PortSpan], ...], tuple[tuple[int, tuple[int, int]], ...],
              tuple[tuple[int, int, bool, _PortSpan], ...]] | None
_PLANS: dict[str | bytes, _Plan] = {}
_BLIND: list[bool] = []


def _plan_blind() -> bool:
    """Do all patterns _plan runs treat every digit alike? (Worked out once.)"""
    if not _BLIND:
        _BLIND.append(all(blind(rx) for rx in (_V4, _V6, _V6_ZONE, _VERSION_WORD, _PORT_AFTER, _TCPDUMP)))
    return _BLIND[0]


def _plan(text: str) -> _Plan:
    """What _scan decides from the shape of ``text`` alone: the spans where an address may stand.

    _scan's steps, less those that read the digits' values. Each pattern run here treats every
    ASCII digit alike (_plan_blind), and each test of a character asks about a class that holds
    every digit or none (isalnum, isdigit, "_.", ": p#]"); so a text with other digits in the same
    places gets the same plan, and the plan can be kept by the text with its digits made 0.
    _replay does the rest on the real text: octets over 255 and zero padding, IPv6 validity (an
    embedded dotted quad), port ranges. None where the shape alone cannot say which candidate
    the scan would read (an unbracketed IPv6 URL host with a port): then _scan reads it.
    """
    v6: list[tuple[int, int, _PortSpan]] = []
    if text.count(":") >= 2:
        for m in _V6.finditer(text):
            s, e = m.span()
            cand, s, e = _trim_v6(m.group(), s, e)
            colons = cand.count(":")
            if colons == 8 and "::" not in cand and text.endswith("://", max(0, s - 3), s):
                if cand.rpartition(":")[2].isdigit():
                    return None  # a port or not, by its value
            if colons < 2 or "::" not in cand and colons != 7 and not (colons == 6 and "." in cand):
                continue
            if len(cand) > 45 or s and (text[s - 1].isalnum() or text[s - 1] in "_:."):
                continue
            if e < len(text) and (text[e].isalnum() or text[e] == "_"):
                continue
            v6.append((s, e, _v6_port_span(text, s, e)))
    tcpdump: list[tuple[int, tuple[int, int]]] = []
    v4: list[tuple[int, int, bool, _PortSpan]] = []
    if "." in text:
        if " > " in text:
            for m in _TCPDUMP.finditer(text):
                for g in (1, 3):
                    tcpdump.append((m.start(g), m.span(g + 1)))
        for m in _V4.finditer(text):
            s, e = m.span()
            if e + 1 < len(text) and text[e] == "." and text[e + 1].isdigit():
                v4.append((s, e, True, None))  # a fifth dotted group: a tcpdump port, or nothing
                continue
            if not _v4_ok(text, s, e):
                continue
            v4.append((s, e, False, _v4_port_span(text, s, e)))
    return tuple(v6), tuple(tcpdump), tuple(v4)


def _port_span(text: str, end: int) -> _PortSpan:
    m = _PORT_AFTER.match(text, end)
    return m.span(1) if m else None


def _trim_v6(cand: str, s: int, e: int) -> tuple[str, int, int]:
    """An IPv6 candidate without the sentence's punctuation around it ("…2001:db8::1." / "::1:")."""
    while cand and cand[-1] in ".:" and not cand.endswith("::"):
        cand, e = cand[:-1], e - 1
    while cand.startswith(":") and not cand.startswith("::"):
        cand, s = cand[1:], s + 1
    return cand, s, e


def _v4_port_span(text: str, s: int, e: int) -> _PortSpan:
    """The port written with the IPv4 address at s..e: 1.2.3.4:8080, 1.2.3.4 port 22, Exim's [1.2.3.4]:54321."""
    if e < len(text) and text[e] in ": p#]":
        return _port_span(text, e + 1) if text[e] == "]" and s and text[s - 1] == "[" else _port_span(text, e)
    return None


def _v6_port_span(text: str, s: int, e: int) -> _PortSpan:
    """The port written with the IPv6 address at s..e, after its zone if any: [2001:db8::1]:443, 2001:db8::1 port 22."""
    end = e
    z = _V6_ZONE.match(text, e)
    if z:
        end = z.end()
    if s and text[s - 1] == "[" and end < len(text) and text[end] == "]":
        return _port_span(text, end + 1) if end + 1 < len(text) and text[end + 1] == ":" else None
    if end < len(text) and text[end] in " p#":
        return _port_span(text, end)
    return None


def _port_value(text: str, span: _PortSpan) -> int | None:
    if span is None:
        return None
    port = int(text[span[0]:span[1]])
    return port if 0 < port <= 65535 else None


#: Dotted quads read by _replay: a log names the same few addresses on many lines.
_QUADS: dict[str, ipaddress.IPv4Address | None] = {}


def _quad(quad: str) -> ipaddress.IPv4Address | None:
    """The address a candidate dotted quad stands for, or None when its octets are not an address's."""
    ip: ipaddress.IPv4Address | None = None
    if _octets_ok(quad):
        a, b, c, d = (int(p) for p in quad.split("."))
        ip = ipaddress.IPv4Address((a << 24) | (b << 16) | (c << 8) | d)
    if len(_QUADS) >= _PLANS_KEPT:
        _QUADS.clear()
    _QUADS[quad] = ip
    return ip


#: _replay makes each Found without the frozen dataclass's __init__ (one object.__setattr__ call per field):
#: ``_new_object(Found)`` and its instance dictionary filled in the fields' order (ip, start, end, port), as
#: __init__ leaves it.
_new_object = object.__new__


def _replay(text: str, plan: tuple[Any, Any, Any], limit: int | None) -> list[Found]:
    """_scan's result from ``text``'s plan: the checks of the digits' values, in _scan's order."""
    v6, tcp, v4 = plan
    found: list[Found] = []
    taken: list[tuple[int, int]] = []
    for s, e, span in v6:
        ip6 = _v6_address(text[s:e])
        if ip6 is not None:
            f = _new_object(Found)
            f.__dict__.update(ip=ip6, start=s, end=e, port=_port_value(text, span))
            found.append(f)
            taken.append((s, e))
    if v4:
        tcpdump: dict[int, int] = {}
        for at, (a, b) in tcp:
            p = int(text[a:b])
            if p <= 65535:
                tcpdump[at] = p
        for s, e, fifth, span in v4:
            if taken and any(a <= s < b for a, b in taken):
                continue
            quad = text[s:e]
            ip4 = _QUADS.get(quad, _NO_PLAN)
            if ip4 is _NO_PLAN:
                ip4 = _quad(quad)
            if ip4 is None:
                continue
            if fifth:
                port = tcpdump.get(s)
                if port is None:
                    continue
            else:
                port = None if span is None else _port_value(text, span)
            f = _new_object(Found)
            f.__dict__.update(ip=ip4, start=s, end=e, port=port)
            found.append(f)
            if limit is not None and len(found) >= limit:
                break
    if taken:
        found.sort(key=lambda f: f.start)
    return found if limit is None else found[:limit]


@lru_cache(maxsize=4096)
def _v6_address(text: str) -> ipaddress.IPv6Address | None:
    """IPv6Address(text), or None; a log names the same few addresses on many lines."""
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        return None


#: is_useful_source's answers for plain IPv4Address / IPv6Address objects, by (type, the address's integer)
#: (the log parser's roles look here before calling it):
#: an lru_cache keyed by the address itself ran ipaddress's __hash__ (Python code: hash(hex(int))) on
#: every call. The answer reads nothing else (an IPv6 scope does not change it).
USEFUL: dict[tuple[type, int], bool] = {}


def is_useful_source(ip: IPAddress) -> bool:
    """Can this address be the source of an incident at all?

    Private addresses stay (the corpus and many internal reports use them);
    unspecified, loopback, multicast, link-local and reserved ones (netmasks
    such as 255.255.255.0 fall there; so do IPv6 strings like ``::3`` or ``d::``
    that C++ scopes, hex dumps and random bytes produce) never name a machine.
    """
    kind = type(ip)
    if kind is not ipaddress.IPv4Address and kind is not ipaddress.IPv6Address:
        return _useful(ip)  # an interface or a subclass: its properties may read more than the integer
    key = (kind, ip._ip)  # type: ignore[union-attr]  # the integer itself (int() is a Python call)
    useful = USEFUL.get(key)
    if useful is None:
        useful = _useful(ip)
        if len(USEFUL) >= 4096:
            USEFUL.clear()
        USEFUL[key] = useful
    return useful


def _useful(ip: IPAddress) -> bool:
    return not (ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_link_local or ip.is_reserved)


def source_address(ip: IPAddress) -> IPAddress:
    """IPv4-mapped and 6to4-free normal form: ``::ffff:1.2.3.4`` is 1.2.3.4 for the ip filter."""
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
