"""The role of each address on a line: the accused, a victim (the reporter's own, a target), or context.

The words right before an address ("SRC=", "from", "Source IP:" vs "DST=", "Destination",
"our server", "->"), the words right after it ("(our honeypot)") and whole-line labels
("Reporter:", "inetnum:"). Whois ranges, CIDR networks, traceroute hops and URL hosts inside
a logged request are not accused.
"""

from __future__ import annotations

import re
from collections import namedtuple
from ipaddress import IPv4Address

from ...addresses import USEFUL, is_useful_source, source_address
from ...digitblind import blind, key_for, zeroed
from ...lazy import lazy_compile
from ...model import IPAddress

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any

    from ...digitblind import Keyed

# The words right before an address that give its role. Checked victim first:
# "Destination IP:" ends in "IP:" too.
# Deliberately absent: "server", "resolver", "DNS" - in a report, "your server 1.2.3.4" and "open
# resolver 1.2.3.4" are the accused; the reporter's own say "our" - and name a thing that has an
# address ("our web server 1.2.3.4"; "our logs show 1.2.3.4" does not make it ours).
_OWN_NOUNS = (r"(?:servers?|serveurs?|servidor(?:es)?|rechner|hosts?|networks?|net(?:z|work)?|r[ée]seaux?|red"
              r"|sites?|website|webserver|web|machines?|mx|relays?|ips?|addresse?s?|adresse|direcci[oó]n"
              r"|customers?|clients?|kunden?|range|subnet|systems?|syst[eè]mes?|infrastructure|firewall"
              r"|router|honeypots?|sensors?|box|vps|instances?|services?|resolver|domains?|gateway|nodes?"
              r"|devices?|computers?|pcs?|workstations?|mailserver|mail\s?server|nameserver|dns)\b")
_VICTIM_BEFORE = lazy_compile(
    r"(?:\bdst|\bdest(?:ination)?|\btarget(?:ed)?|\bvictim|\bto|\bagainst|\bhoneypot"
    r"|\b(?:our|my|unser\w*|mein\w*|notre|nos|mon|ma|mes|nuestros?|nuestras?|mis?|nostr[oaie])\b"
    r"[\w\s'-]{0,24}?\b" + _OWN_NOUNS +
    r"|\bziel(?:-?ip)?|\bcible|\bdestino"
    r"|\b(?:attacks?|attacked|scans?|scanned|probes?|probing|logins?|connections?|traffic|requests?|hits?)\s+on"
    r"|\bsensor|\bsinkhole|\breporter|\breported\s+by|\blip|\bgateway|\bnext\s?hop"
    r"|\blocal(?:\s+(?:ip|address|host))?|\bdaddr|\bdhost|->|=>|>)"
    r"(?:\s+(?:ip|ips|address|addr|host|port|range|network|net|subnet|netblock|block))?"
    r"\s*(?:[:=#(\[]|\bis\b|\bwas\b|\s)*$", re.I)
#: A victim label that is only the reporter's wording, not a field: "our web server", "to", "against".
#: The log lines that accuse an address outweigh it (issue 11 class 4).
_WEAK_VICTIM = lazy_compile(r"^(?:our|my|unser|mein|notre|nos|mon|ma|mes|nuestr|mis?\b|nostr|to\b|against"
                            r"|attack|scan|probe|probing|login|connection|traffic|request|hit)", re.I)
#: Labels that name the accused; they outweigh a victim label the same address got elsewhere.
_SOURCE_BEFORE = lazy_compile(
    r"(?:\bsrc|\bsource|\bfrom|\battack(?:er|ing)?|\boffend(?:er|ing)|\boriginat(?:ing|ed|or)|\borigin|\bclient"
    r"|\brhost|\brip|\bremote|\bban(?:ned)?|\bsaddr|\bshost|\bblocked|\bdenied"
    r"|\bquell(?:e|-?ip)?|\bangreifer|\battaquant|\borigen|\batacante"
    r"|\b(?:attacked|scanned|probed|hit|flooded|targeted|hammered|abused|spammed|sent|caused)\s+by)"
    r"(?:\s+(?:ip|ips|address|addr|host|dns|network address))?\s*(?:[:=#(\[]|\bis\b|\bwas\b|\s)*$", re.I)
#: "Source IP: 1.2.3.4", "Src:(1.2.3.4)", "Attacker: ..." - strong enough to name a whole table's source.
_STRONG_SOURCE = lazy_compile(r"(?:\bsrc|\bsource(?:\s+ip(?:\s+address)?|\s+address)?|\battacker(?:\s+ip)?"
                              r"|\boffending\s+ip|\boffender|\bquell-?ip|\bangreifer)\s*[:=(\[]\s*\(?$", re.I)
_STRONG_ENDS = (":", "=", "(", "[")
#: Whole lines whose addresses are never the accused: victims, reporters, whois ranges.
_LINE_NOT_SOURCE = lazy_compile(
    r"^\s*(?:destination|dest|dst|target|victim|reporter|reported\s+by|reporting|our\s|honeypot|sensor|whois"
    r"|contact|abuse\s+contact|name\s?servers?|n?server|ns\d?|inetnum|inet6num|netrange|cidr|route6?|network"
    r"|netblock|range|origin\s?as|by\b)[^:=]{0,30}[:=]", re.I)
_LINE_RANGE = lazy_compile(r"^(?:whois|inetnum|inet6num|netrange|cidr|route6?|network|netblock|range|origin)",
                           re.I)
#: Words right after an address that make it the reporter's: "192.0.2.9 (our honeypot)".
_VICTIM_AFTER = lazy_compile(r"\s*[(\[]\s*(?:our|my|unser\w*|notre|the victim|victim|target|honeypot|sensor"
                             r"|reporter)\b", re.I)
_RECEIVED = lazy_compile(r"^\s*(?:Return-Path:\s*)?Received:\s*from\b", re.I)
_BY = lazy_compile(r"\bby\b", re.I)
_HELO = lazy_compile(r"helo[= ]\s*\[?$", re.I)
#: "3  ge-6-20.car1.Zurich1.Level3.net (213.242.67.105)  1.2 ms": a traceroute hop is a router on the way.
_HOP = lazy_compile(r"^\s*\d{1,2}\s+(?:\S+\s+)?\(?[0-9A-Fa-f.:]+\)?(?:\s+(?:[\d.]+\s*ms|\*|!\w))*\s*$")
_CIDR_AFTER = lazy_compile(r"/(\d{1,3})(?!\d)")
#: The source port written apart from the address: iptables SPT=, Check Point s_port:, sport=.
_SPT = lazy_compile(r"\b(?:SPT|s_port|sport|src_?port)\s*[=:]\s*(\d{1,5})\b", re.I)
_SRC_LABEL = lazy_compile(r"\b(?:src|saddr)\s*[=:]\s*$", re.I)


_ROLE_DOC = """What one address on a line is: (found, ip, kind, label, port, weak).

    ``kind``: "source" (labelled the accused), "unclear" (no label: accused unless labelled
    victim elsewhere), "victim", "range" (a network or whois range), "useless" (not a usable
    source address) or "skip" (a HELO name, a URL host beside the client). ``weak``: a victim only
    by the reporter's wording ("our server", "against"), not by a field.

    A named tuple (immutable: _replay builds each in one go with tuple.__new__, ~3x cheaper than a
    dataclass's __init__); a caller that changes one replaces it (``role._replace(kind=...)``).
    """
if TYPE_CHECKING:
    from typing import NamedTuple

    class Role(NamedTuple):
        found: Any
        ip: IPAddress
        kind: str
        label: str = ""
        port: int | None = None
        weak: bool = False
else:
    Role = namedtuple("Role", ("found", "ip", "kind", "label", "port", "weak"), defaults=("", None, False))
    Role.__doc__ = _ROLE_DOC


def line_roles(line: str, found: list[Any], keyed: Keyed | None = None) -> list[Role]:
    """The role of each address found on ``line`` (not a traceroute hop, which _HOP matches).

    Read by the line's plan (:func:`_plan`), kept by the line with its digits made 0 and the
    addresses' spans: what the words around each address say does not depend on the digits.
    ``keyed``: the line with its key, made once for all its memos (abuso.digitblind.keyed), used only when made
    for this very line.
    """
    if not found:
        return []
    if not (_BLIND[0] if _BLIND else _plan_blind()):
        return _read_roles(line, found)
    line_victim = bool(_LINE_NOT_SOURCE.match(line))  # "route6:", "inet6num:": not blind, read on every line
    zero = key_for(line, keyed)
    key = (zero, ((found[0].start, found[0].end),) if len(found) == 1 else tuple([(f.start, f.end) for f in found]),
           line_victim)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _plan(line, found, line_victim)
        if len(_PLANS) >= _PLANS_KEPT:
            _PLANS.clear()
        _PLANS[key] = plan
    return _replay(line, found, plan)


def _read_roles(line: str, found: list[Any]) -> list[Role]:
    """line_roles by a full reading of the line: what a plan replays must equal it."""
    received = bool(_RECEIVED.match(line))
    by = _BY.search(line) if received else None
    line_victim = bool(_LINE_NOT_SOURCE.match(line))
    # Other, non-URL addresses on the line: then a URL host is content, not the actor.
    others = sum(1 for f in found if not line.endswith("://", max(0, f.start - 8), f.start)) > 0
    prev_end = 0
    out = []
    for f in found:
        ip = source_address(f.ip)
        before = line[max(prev_end, f.start - 40):f.start]
        prev_end = f.end
        out.append(_role(line, f, ip, before, received, by, line_victim, others))
    return out


def _role(line: str, f: Any, ip: IPAddress, before: str, received: bool, by: Any, line_victim: bool,
          others: bool) -> Role:
    if not is_useful_source(ip):
        return Role(f, ip, "useless")
    cidr = _CIDR_AFTER.match(line, f.end)
    if cidr and int(cidr.group(1)) < ip.max_prefixlen:
        return Role(f, ip, "range")  # a network (whois, "targeted range"), not one machine
    if received:
        if _HELO.search(before):
            return Role(f, ip, "skip")  # the name the client claimed, not where it connected from
        if by and f.start > by.start():
            return Role(f, ip, "victim", "Received by")
        return Role(f, ip, "source", port=_port(line, f))
    victim, src = _labels_before(before)
    if victim and not (src and src[0] > victim[0]):  # the label nearest the address wins
        label = before[victim[0]:victim[1]].strip(" :=#([")
        return Role(f, ip, "victim", label, weak=bool(_WEAK_VICTIM.match(label)))
    if src:
        return Role(f, ip, "source", port=_port(line, f))
    after = _VICTIM_AFTER.match(line, f.end)
    if after:
        return Role(f, ip, "victim", after.group().strip(" (["))
    if line_victim:
        label = line.split(":")[0].split("=")[0].strip()[:30]
        if _LINE_RANGE.match(label):
            return Role(f, ip, "range")  # whois output: who holds the address, not who did it
        return Role(f, ip, "victim", label, weak=bool(_WEAK_VICTIM.match(label)))  # "Our logs: ..." is wording
    if line.endswith("://", max(0, f.start - 8), f.start) and others:
        return Role(f, ip, "skip")  # a URL host in a logged request, beside the client that sent it
    return Role(f, ip, "unclear", port=_port(line, f))


#: A line's plan: (the source port's digits written apart (iptables SPT=), or None;
#: per address: (the digits of a CIDR length after it, or None; its role by the words around it:
#: kind, label (text, or a span of the line), weak, whether the port may be written apart)).
_Verdict = tuple[tuple[int, int] | None, str, str | tuple[int, int], bool, bool]
_Plan = tuple[tuple[int, int] | None, tuple[_Verdict, ...]]
_PLANS: dict[tuple[str | bytes, tuple[tuple[int, int], ...], bool], _Plan] = {}
_PLANS_KEPT = 8_192
_BLIND: list[bool] = []


def _plan_blind() -> bool:
    """Do the patterns a plan is made with treat every digit alike? (Worked out once.)"""
    if not _BLIND:
        _BLIND.append(all(blind(rx) for rx in (_RECEIVED, _BY, _HELO, _VICTIM_BEFORE, _SOURCE_BEFORE, _WEAK_VICTIM,
                                                _VICTIM_AFTER, _CIDR_AFTER, _SRC_LABEL, _SPT)))
    return _BLIND[0]


def _plan(line: str, found: list[Any], line_victim: bool) -> _Plan:
    """What _read_roles decides from the line's shape and the addresses' spans alone.

    _role's steps less those that read values: whether the address is a usable source, a CIDR
    length against the address's size, ports. Every pattern run here treats every digit alike
    (_plan_blind) and every position comes from the spans, so a line with other digits in the
    same places and addresses at the same spans gets the same plan. _LINE_NOT_SOURCE and
    _LINE_RANGE have digits of their own ("route6", "inet6num"): the first is part of the key, the
    second is read by _replay.
    """
    received = bool(_RECEIVED.match(line))
    by = _BY.search(line) if received else None
    others = sum(1 for f in found if not line.endswith("://", max(0, f.start - 8), f.start)) > 0
    spt = _SPT.search(line)
    prev_end = 0
    verdicts: list[_Verdict] = []
    for f in found:
        lo = max(prev_end, f.start - 40)
        before = line[lo:f.start]
        prev_end = f.end
        cidr = _CIDR_AFTER.match(line, f.end)
        src_label = bool(_SRC_LABEL.search(line[max(0, f.start - 8):f.start]))
        verdict: tuple[str, str | tuple[int, int], bool, bool]
        if received:
            if _HELO.search(before):
                verdict = ("skip", "", False, False)
            elif by and f.start > by.start():
                verdict = ("victim", "Received by", False, False)
            else:
                verdict = ("source", "", False, True)
        else:
            victim, src = _labels_before(before)
            after = _VICTIM_AFTER.match(line, f.end)
            if victim and not (src and src[0] > victim[0]):
                a, b = _stripped(line, lo + victim[0], lo + victim[1], " :=#([")
                verdict = ("victim", (a, b), bool(_WEAK_VICTIM.match(line[a:b])), False)
            elif src:
                verdict = ("source", "", False, True)
            elif after:
                verdict = ("victim", _stripped(line, after.start(), after.end(), " (["), False, False)
            elif line_victim:
                head = line.split(":")[0].split("=")[0]
                a = len(head) - len(head.lstrip())
                b = a + len(head.strip()[:30])
                verdict = ("line", (a, b), bool(_WEAK_VICTIM.match(line[a:b])), False)
            elif line.endswith("://", max(0, f.start - 8), f.start) and others:
                verdict = ("skip", "", False, False)
            else:
                verdict = ("unclear", "", False, True)
        kind, label, weak, port = verdict
        verdicts.append((cidr.span(1) if cidr else None, kind, label, weak, port and src_label))
    return (spt.span(1) if spt else None), tuple(verdicts)


def _stripped(line: str, a: int, b: int, chars: str) -> tuple[int, int]:
    """The span of line[a:b].strip(chars) (chars without digits: the same span whatever the digits)."""
    part = line[a:b]
    a += len(part) - len(part.lstrip(chars))
    return a, a + len(part.strip(chars))


_new = tuple.__new__


def _replay(line: str, found: list[Any], plan: _Plan) -> list[Role]:
    """_read_roles' answer from the line's plan: the checks of values, in _role's order.

    Each Role is built in one go (tuple.__new__ with all six fields, as Role(...) would fill them)."""
    spt, verdicts = plan
    out = []
    for f, (cidr, kind, label, weak, apart) in zip(found, verdicts, strict=True):
        ip = f.ip
        if ip.__class__ is not IPv4Address:  # source_address gives a plain IPv4Address back as it is
            ip = source_address(ip)
        useful = USEFUL.get((ip.__class__, ip._ip))  # is_useful_source's kept answer (none for other classes)
        if useful is None:
            useful = is_useful_source(ip)
        if not useful:
            out.append(_new(Role, (f, ip, "useless", "", None, False)))
        elif cidr is not None and int(line[cidr[0]:cidr[1]]) < ip.max_prefixlen:
            out.append(_new(Role, (f, ip, "range", "", None, False)))
        elif kind == "source" or kind == "unclear":
            port = f.port
            if port is None and apart:
                port = int(line[spt[0]:spt[1]]) if spt is not None else None
            out.append(_new(Role, (f, ip, kind, "", port, False)))
        else:
            text = label if isinstance(label, str) else line[label[0]:label[1]]
            if kind == "line":
                out.append(_new(Role, (f, ip, "range", "", None, False)) if _LINE_RANGE.match(text)
                           else _new(Role, (f, ip, "victim", text, None, weak)))
            else:
                out.append(_new(Role, (f, ip, kind, text, None, weak)))
    return out


#: Spans of the victim and source labels ending a text before an address, by the text with its ASCII
#: digits made 0: neither pattern has a digit of its own (abuso.digitblind checks it), so every digit
#: is alike to them and the spans are the same. Log lines differ in their numbers (pids, counters,
#: user u17), not in their words: most lines of a long log are read once. Searching both patterns
#: back from every position of 40 characters cost ~20 µs a line.
_LABELS: dict[str | bytes, tuple[tuple[int, int] | None, tuple[int, int] | None]] = {}


def _labels_before(before: str) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    key = zeroed(before) if blind(_VICTIM_BEFORE) and blind(_SOURCE_BEFORE) else None
    found = _LABELS.get(key) if key is not None else None
    if found is None:
        m = _VICTIM_BEFORE.search(before)
        src = _SOURCE_BEFORE.search(before)
        found = (m.span() if m else None, src.span() if src else None)
        if key is not None:
            if len(_LABELS) >= 4096:
                _LABELS.clear()
            _LABELS[key] = found
    return found


def _port(line: str, f: Any) -> int | None:
    """The address's source port: written with it, or apart after a "src=" label (iptables SPT=)."""
    if f.port is None and _SRC_LABEL.search(line[max(0, f.start - 8):f.start]):
        m = _SPT.search(line)
        return int(m.group(1)) if m else None
    return f.port


def strong_sources(lines: list[str], addrs: list[list[Any]]) -> list[tuple[IPAddress, int | None]]:
    """Addresses labelled strongly as the source ("Source IP:"), with their ports, in order."""
    found: dict[IPAddress, int | None] = {}
    for ln, fs in zip(lines, addrs, strict=True):
        for f in fs:
            # _STRONG_SOURCE ends in [:=(\[]\s*\(?$: it can match only where the last character before the
            # address that is not blank is one of ":=([" (str.isspace and rstrip are what \s matches).
            s = f.start
            if not s:
                continue
            c = ln[s - 1]
            if c not in _STRONG_ENDS and not (c.isspace() and ln[max(0, s - 24):s].rstrip()[-1:] in _STRONG_ENDS):
                continue
            if _STRONG_SOURCE.search(ln, max(0, s - 24), s):
                ip = source_address(f.ip)
                if is_useful_source(ip):
                    found.setdefault(ip, f.port)
    return list(found.items())
