"""Per-line answers kept by the line with its digits made 0 (issue 8) equal a full reading of every line.

The memo is warmed with lines of the same shapes and other digits first, so a wrong plan replayed
on a line it does not fit would show here.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from abuso import addresses
from abuso.addresses import find_addresses

ROOT = Path(__file__).resolve().parent.parent
#: Pieces of awkward lines: octet edges, zero padding, IPv6 forms and zones, ports, tcpdump, URL hosts.
_PIECES = ["1.2.3.4", "255.255.255.255", "256.1.2.3", "01.2.3.4", "001.002.003.004", "10.0.0.1", "1.2.3.4.5",
           "::", ":", "::1", "[", "]", "]:", ":8080", ":99999", ":0", " port ", " port 70000", "#", "#22",
           "fe80::1%eth0", "2001:db8::", "2001:db8:0:0:0:0:0:2", "::ffff:", "ffff", "1.2.3", ".", " > ",
           ".51022", ".99999", "://", "http://", "a", "-", "/", "version ", "dsl-", "@x", "_", " ", "00:11:22:33:44:55",
           "03:14:07", "12", "300", "0", "9", "2001:db8:0:0:0:0:0:2:2222/", "1::2:3.4.5.6", "1:2:3:4:5:6:1.2.3.4"]


def _sample_lines() -> list[str]:
    lines: list[str] = []
    for path in sorted((ROOT / "samples").rglob("*.eml")):
        lines += [ln for ln in path.read_bytes().decode("utf-8", "replace").split("\n") if "." in ln or ":" in ln]
    return lines


def _redigit(rnd: random.Random, line: str) -> str:
    """The line with each ASCII digit replaced at random, favouring the digits at octet and port edges."""
    return "".join(rnd.choice("0123456789025569") if c in "0123456789" else c for c in line)


def _lines(seed: int) -> list[str]:
    rnd = random.Random(seed)
    lines = _sample_lines()
    built = ["".join(rnd.choice(_PIECES) for _ in range(rnd.randint(1, 12))) for _ in range(4000)]
    lines += built
    lines += [_redigit(rnd, ln) for ln in lines for _ in range(2)]
    return lines


@pytest.mark.parametrize("limit", [None, 1, 2])
def test_address_plans_give_the_full_scan(limit: int | None) -> None:
    lines = _lines(8)
    assert len(lines) > 10_000
    addresses._PLANS.clear()
    warm = [find_addresses(ln, limit) for ln in lines]  # plans made by earlier lines of the same shape
    assert len(addresses._PLANS) < len(lines) / 2
    assert warm == [addresses._scan(ln, limit) for ln in lines]
    # And read again in reverse order, each plan made by another line than before.
    addresses._PLANS.clear()
    assert [find_addresses(ln, limit) for ln in reversed(lines)] == [addresses._scan(ln, limit)
                                                                     for ln in reversed(lines)]


def test_address_plan_patterns_are_digit_blind() -> None:
    assert addresses._plan_blind()


def test_a_line_that_the_shape_cannot_decide_is_read_in_full() -> None:
    """An unbracketed IPv6 URL host with a port: whether the last group is a port depends on its value."""
    assert addresses._plan("http://2001:db8:0:0:0:0:0:2:2222/") is None
    assert [(str(f.ip), f.port) for f in find_addresses("http://2001:db8:0:0:0:0:0:2:2222/")] == [("2001:db8::2", 2222)]
    assert find_addresses("http://2001:db8:0:0:0:0:0:2:92222/") == []


def test_values_decide_on_a_kept_plan() -> None:
    addresses._PLANS.clear()
    assert [str(f.ip) for f in find_addresses("from 192.0.2.1 port 2222")] == ["192.0.2.1"]
    assert find_addresses("from 192.0.2.1 port 2222")[0].port == 2222
    assert find_addresses("from 992.0.2.1 port 2222") == []  # the same shape, an octet over 255
    assert find_addresses("from 192.0.2.1 port 92222")[0].port is None
    assert find_addresses("from 192.00.2.1 port 2222") == []  # zero padding: a version string
    assert len(addresses._PLANS) == 3  # 0000, 00000 and 000.00: three shapes


_TYPE_PIECES = ["Event ID: 4625", "Event ID: 4626", "EventID 46250", "pop3-login", "pop4-login", "imap-login",
                "530 login incorrect", "531 login incorrect", "sshd[123]:", "Failed password for", "from", " ",
                "SRC=1.2.3.4", "DPT=22", "DROP", "spam", "bot", "worm", "2001", "ddos", "x", "-", "version 2",
                "ftp login", "POST /wp-login.php", "phish", "torrent", "exploit", "scan", "1", "99"]


def test_line_types_give_the_rules_answers() -> None:
    """type_from_text of single lines, kept by shape for the digit-blind alternatives, equals the plain
    reading (the first rule whose pattern matches) on sample, built and re-digited lines, whichever line
    of a shape came first."""
    from abuso import taxonomy
    from abuso.digitblind import keyed
    from abuso.taxonomy import KEYWORD_RULES, type_from_text

    rnd = random.Random(8)
    lines = _sample_lines()
    lines += ["".join(rnd.choice(_TYPE_PIECES) for _ in range(rnd.randint(1, 6))) for _ in range(3000)]
    lines += [_redigit(rnd, ln) for ln in lines for _ in range(2)]
    plain = [next((name for name, rx in KEYWORD_RULES if rx.search(ln)), None) for ln in lines]
    assert {"brute-force", "scanner", "spam"} <= set(plain)
    for order in (lines, lines[::-1]):
        taxonomy._LINE_TYPES.clear()
        got = [type_from_text(ln) for ln in order]
        assert got == (plain if order is lines else plain[::-1])
        # Handed each line's key (a plan without rules of digits answers at once), plans warm and cold.
        assert [type_from_text(ln, keyed(ln)) for ln in order] == got
        taxonomy._LINE_TYPES.clear()
        assert [type_from_text(ln, keyed(ln)) for ln in order] == got
        assert [type_from_text(ln + "\n" + ln, keyed(ln + "\n" + ln)) for ln in order[:500]] == [
            next((name for name, rx in KEYWORD_RULES if rx.search(ln + "\n" + ln)), None) for ln in order[:500]]
    assert len(taxonomy._LINE_TYPES) < len(lines) / 2
    # The rules with digits of their own are split off: the rest is kept by shape.
    assert taxonomy._split_rules()
    with_digits = [t for _, digits in taxonomy._SPLIT for t, _ in digits]
    assert sorted(with_digits) == ["4625", "530 login incorrect", "pop3-login"]


def test_a_rule_with_digits_is_read_on_every_line() -> None:
    from abuso import taxonomy
    from abuso.taxonomy import type_from_text

    taxonomy._LINE_TYPES.clear()
    assert type_from_text("Nov 28 pop3-login: from 192.0.2.1") == "brute-force"
    assert type_from_text("Nov 28 pop4-login: from 192.0.2.1") is None  # the same shape
    assert type_from_text("Event ID: 4625 DROP") == "brute-force"  # before scanner
    assert type_from_text("Event ID: 4626 DROP") == "scanner"
    # The same, handed each line's key (the kept plan read without _line_type).
    from abuso.digitblind import keyed

    for line, want in (("Nov 28 pop3-login: from 192.0.2.1", "brute-force"),
                       ("Nov 28 pop4-login: from 192.0.2.1", None),
                       ("Event ID: 4625 DROP", "brute-force"), ("Event ID: 4626 DROP", "scanner")):
        assert type_from_text(line, keyed(line)) == want


_ROLE_PIECES = ["SRC=", "DST=", "192.0.2.1", "198.51.100.22", "10.0.0.1", "127.0.0.1", "0.0.0.0", "2001:db8::1",
                "::ffff:192.0.2.5", "/24", "/32", "/8", "/128", "/64", " from ", " to ", "our server ", "Source IP: ",
                "Destination: ", " (our honeypot)", " (victim)", "Received: from ", " by ", "helo=", "[", "]",
                "http://", "://", " SPT=", "51022", " sport=", "src=", "route6: ", "route: ", "inet6num: ",
                "inetnum: ", "Reporter: ", "Our logs: ", "whois ", " -> ", " port ", ":22", " ", "x", "5", "27"]


def test_role_plans_give_the_full_reading() -> None:
    """line_roles, kept by the line's shape and its addresses' spans, equals _read_roles on sample, built
    and re-digited lines, whichever line of a shape came first."""
    from abuso.parsers.log import roles

    rnd = random.Random(8)
    lines = _sample_lines()
    lines += ["".join(rnd.choice(_ROLE_PIECES) + rnd.choice(["", "", " "]) for _ in range(rnd.randint(1, 10)))
              for _ in range(6000)]
    lines += [_redigit(rnd, ln) for ln in lines for _ in range(2)]
    pairs = [(ln, fs) for ln in lines if (fs := find_addresses(ln))]
    assert len(pairs) > 5000
    plain = [roles._read_roles(ln, fs) for ln, fs in pairs]
    kinds = {r.kind for rs in plain for r in rs}
    assert kinds == {"source", "unclear", "victim", "range", "useless", "skip"}
    assert any(r.port is not None for rs in plain for r in rs) and any(r.weak for rs in plain for r in rs)
    for order in (pairs, pairs[::-1]):
        roles._PLANS.clear()
        got = [roles.line_roles(ln, fs) for ln, fs in order]
        assert got == (plain if order is pairs else plain[::-1])
        # Built in one go by _replay (tuple.__new__): Roles all the same, each field where Role(...) puts it.
        assert all(type(r) is roles.Role and len(r) == 6 for rs in got for r in rs)
        assert [tuple(r) for rs in got for r in rs] == [(r.found, r.ip, r.kind, r.label, r.port, r.weak)
                                                        for rs in got for r in rs]
    assert len(roles._PLANS) < len(pairs) * 0.7  # plans were shared
    assert roles._plan_blind()


def test_role_values_decide_on_a_kept_plan() -> None:
    from abuso.parsers.log import roles

    def kinds(line: str) -> list[tuple[str, str, int | None]]:
        return [(r.kind, r.label, r.port) for r in roles.line_roles(line, find_addresses(line))]

    roles._PLANS.clear()
    assert kinds("Reporter: 192.0.2.0/24") == [("range", "", None)]
    assert kinds("Reporter: 192.0.2.0/44") == [("victim", "Reporter", None)]  # no prefix length: the line's label
    assert kinds("route: 192.0.2.0/44") == [("range", "", None)]  # whois: the line's label says range
    # "inet6num" is a whois label and "inet7num" nothing: the same shape, read on each line.
    assert kinds("inet6num: 2001:db8::1 x") == [("range", "", None)]
    assert kinds("inet7num: 2001:db8::1 x") == [("unclear", "", None)]
    assert kinds("SRC=192.0.2.1 DST=198.51.100.2 SPT=51022") == [("source", "", 51022), ("victim", "DST", None)]
    assert kinds("SRC=127.0.0.1 DST=198.51.100.2 SPT=51022") == [("useless", "", None), ("victim", "DST", None)]


def test_day_first_pattern_finds_what_the_plain_one_does() -> None:
    """context._DAY_FIRST has its look-behind after the day's digits (re then skips ahead by its first
    character): the same matches as the look-behind written first."""
    import re

    from abuso.parsers.log.context import _DAY_FIRST

    plain = re.compile(r"(?<![\d/])(?:1[3-9]|2\d|3[01])/(?:0?[1-9]|1[0-2])/(?:\d{4}|\d{2})(?![\d/])")
    rnd = random.Random(8)
    texts = ["".join(rnd.choice(["0", "1", "2", "3", "9", "/", " ", "x", "13", "31", "2026", "/1/"])
                     for _ in range(rnd.randint(0, 12))) for _ in range(20_000)]
    texts += ["22/11/2026", "1/22/11/2026", "/22/11/2026", "x22/11/26", "13/1/2026", "12/11/2026"]
    for text in texts:
        want = plain.search(text)
        got = _DAY_FIRST.search(text)
        assert (got and got.span()) == (want and want.span()), text


def test_useful_sources_kept_by_type_and_integer() -> None:
    """is_useful_source keeps its answers by (type, integer): the same as reading the properties, also for an
    IPv4 and an IPv6 address with the same integer, scoped IPv6 and interfaces (not kept)."""
    import ipaddress

    from abuso.addresses import _useful, is_useful_source

    rnd = random.Random(8)
    ips: list[object] = [ipaddress.IPv4Address(rnd.getrandbits(32)) for _ in range(3000)]
    ips += [ipaddress.IPv6Address(rnd.getrandbits(128)) for _ in range(1000)]
    ips += [ipaddress.IPv4Address(n) for n in range(4)] + [ipaddress.IPv6Address(n) for n in range(4)]
    ips += [ipaddress.ip_address(t) for t in ("127.0.0.1", "224.0.0.1", "169.254.1.1", "240.0.0.1", "ff02::1",
                                              "fe80::1", "fe80::1%eth0", "::ffff:127.0.0.1", "2001:db8::1", "fd00::1")]
    ips += [ipaddress.ip_interface("127.0.0.1/8"), ipaddress.ip_interface("fe80::1/64")]
    for ip in ips + ips[::-1]:
        assert is_useful_source(ip) is _useful(ip), ip  # type: ignore[arg-type]
    # The same integer, two answers: ::1 is the loopback, 0.0.0.1 is not.
    assert is_useful_source(ipaddress.IPv4Address(1)) and not is_useful_source(ipaddress.IPv6Address(1))


def _memo_answers(line: str, keyed_: object) -> tuple[object, ...]:
    """What the four per-line memos give for ``line`` when handed ``keyed_`` (None: no key handed)."""
    from abuso import timestamps
    from abuso.parsers.log import roles
    from abuso.taxonomy import type_from_text

    found = find_addresses(line, None, keyed_)  # type: ignore[arg-type]
    return (found, timestamps.find_timestamps(line, keyed=keyed_),  # type: ignore[arg-type]
            type_from_text(line, keyed_), roles.line_roles(line, found, keyed_))  # type: ignore[arg-type]


def test_a_key_made_for_another_line_is_not_trusted() -> None:
    """Each memo takes a handed key only when it was made for that very line object: the key of another
    line (another shape, or an equal text in another object) gives the answers of no key at all."""
    from abuso import digitblind, taxonomy, timestamps
    from abuso.digitblind import keyed, zeroed
    from abuso.parsers.log import roles

    rnd = random.Random(8)
    lines = _sample_lines()[:1500]
    lines += ["Nov 28 06:10:02 sshd[1]: Failed password for root from 192.0.2.1 port 2222",
              "SRC=192.0.2.1 DST=198.51.100.2 SPT=51022 Nov 28 06:10:02", "inet6num: 2001:db8::1 x"]
    others = lines[1:] + lines[:1]
    memos = (addresses._PLANS, timestamps._PLANS, taxonomy._LINE_TYPES, roles._PLANS)
    for order in (0, 1):
        for memo in memos:
            memo.clear()
        for ln, other in (zip(lines, others, strict=True) if order == 0 else zip(others, lines, strict=True)):
            want = _memo_answers(ln, None)
            assert _memo_answers(ln, keyed(ln)) == want
            assert _memo_answers(ln, keyed(other)) == want, (ln, other)  # another line's key: ignored
            assert _memo_answers(ln, keyed(_redigit(rnd, ln))) == want
            twin = "".join(list(ln))  # equal text, another object
            assert _memo_answers(ln, keyed(twin)) == want
    # The reference reading of the test each memo inlines.
    for ln, other in zip(lines, others, strict=True):
        assert digitblind.key_for(ln, keyed(ln)) == digitblind.key_for(ln, keyed(other)) == zeroed(ln)
        assert digitblind.key_for(ln, None) == zeroed(ln)


def test_a_handed_key_saves_the_zeroing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Handed the line's own key, no memo zeroes the line again; handed another line's, each does."""
    from abuso import digitblind
    from abuso.digitblind import keyed
    from abuso.parsers.log import roles  # noqa: F401 - imported before zeroed is patched below

    calls: list[object] = []
    zeroed = digitblind.zeroed

    def counting(text: str) -> str | bytes:
        calls.append(text)
        return zeroed(text)

    # Every memo takes its key through digitblind.key_for, which zeroes with digitblind.zeroed.
    line = "Nov 28 06:10:02 sshd[1]: Failed password for root from 192.0.2.1 port 2222"
    own, other = keyed(line), keyed("Nov 28 06:10:02 sshd[1]: Failed password for root from 192.0.2.9 port 2222")
    monkeypatch.setattr(digitblind, "zeroed", counting)
    # The line itself: a memo planning its shape for the first time zeroes other texts (roles: the words
    # before an address), whichever key it was handed.
    _memo_answers(line, own)
    assert calls.count(line) == 0
    _memo_answers(line, other)
    assert calls.count(line) == 4


def test_the_log_parser_hands_each_memo_its_own_lines_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """read_block makes one key per line that may hold an address (digitblind.keyed) and hands it to the
    four memos of that very line: every key handed is (the line read, its zeroed text)."""
    from abuso.digitblind import zeroed
    from abuso.normalize import normalize
    from abuso.parsers.log import LogParser, context
    from abuso.parsers.log import lines as lines_mod

    handed: list[str] = []

    def check(name: str, text: str, k: object) -> None:
        if k is not None:
            assert isinstance(k, tuple) and k[0] is text and k[1] == zeroed(text)
            handed.append(name)

    find_addresses_, find_timestamps_ = context.find_addresses, context.find_timestamps
    line_roles_, type_from_text_ = context.line_roles, lines_mod.type_from_text

    def addresses_(text, limit=None, keyed=None):  # type: ignore[no-untyped-def]
        check("addresses", text, keyed)
        return find_addresses_(text, limit, keyed)

    def stamps_(text, **kw):  # type: ignore[no-untyped-def]
        check("stamps", text, kw.get("keyed"))
        return find_timestamps_(text, **kw)

    def roles_(text, found, keyed=None):  # type: ignore[no-untyped-def]
        check("roles", text, keyed)
        return line_roles_(text, found, keyed)

    def types_(text, keyed=None):  # type: ignore[no-untyped-def]
        check("types", text, keyed)
        return type_from_text_(text, keyed)

    monkeypatch.setattr(context, "find_addresses", addresses_)
    monkeypatch.setattr(context, "find_timestamps", stamps_)
    monkeypatch.setattr(context, "line_roles", roles_)
    monkeypatch.setattr(lines_mod, "type_from_text", types_)
    found = 0
    for path in sorted((ROOT / "samples" / "log").rglob("*.eml")):
        found += len(LogParser({}).parse(normalize(path.read_bytes())).incidents)
    assert found > 40
    assert set(handed) == {"addresses", "stamps", "roles", "types"}


def test_strong_sources_finds_what_the_plain_search_does() -> None:
    """strong_sources runs _STRONG_SOURCE only where the last character before an address that is not blank
    is one of ":=([" (what the pattern's end needs): the same sources as searching before every address."""
    from abuso.addresses import is_useful_source, source_address
    from abuso.parsers.log import roles

    def plain(lines: list[str], addrs: list[list[object]]) -> list[tuple[object, int | None]]:
        found: dict[object, int | None] = {}
        for ln, fs in zip(lines, addrs, strict=True):
            for f in fs:
                if roles._STRONG_SOURCE.search(ln, max(0, f.start - 24), f.start):  # type: ignore[attr-defined]
                    ip = source_address(f.ip)  # type: ignore[attr-defined]
                    if is_useful_source(ip):
                        found.setdefault(ip, f.port)  # type: ignore[attr-defined]
        return list(found.items())

    pieces = ["Source IP", "source address", "src", "SRC", "Attacker", "offending ip", "Offender", "Quell-IP",
              "angreifer", "sourceX", "xsrc", ":", "=", "(", "[", " ", "\t", "\r", "\x1c", "\u2003", "((", "x",
              "192.0.2.1", "198.51.100.7:22", "[2001:db8::5]:443", "10.0.0.1", "127.0.0.1", " port 22", "ip"]
    rnd = random.Random(8)
    lines = [ln for ln in _sample_lines() if "src" in ln.lower() or "source" in ln.lower() or "attack" in ln.lower()]
    lines += ["".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 9))) for _ in range(20_000)]
    addrs: list[list[object]] = [find_addresses(ln) for ln in lines]  # type: ignore[misc]
    assert sum(1 for fs in addrs if fs) > 5_000
    want = plain(lines, addrs)
    assert len(want) >= 4
    assert roles.strong_sources(lines, addrs) == want  # type: ignore[arg-type]
    for ln, fs in zip(lines, addrs, strict=True):  # line by line too (setdefault hides later finds)
        assert roles.strong_sources([ln], [fs]) == plain([ln], [fs])  # type: ignore[arg-type]


def test_a_line_that_quotes_a_subject_holds_the_hint_once_lowered() -> None:
    """_line searches _QUOTED_SUBJECT only on lines whose lowered text holds _QUOTED_HINT: every character the
    pattern matches (re.I, Unicode) for a letter of the hint lowers to that letter."""
    import re
    import sys

    from abuso.parsers.log.context import _QUOTED_HINT, _QUOTED_SUBJECT

    every = "".join(chr(cp) for cp in range(sys.maxunicode + 1) if not 0xD800 <= cp <= 0xDFFF)
    for c in _QUOTED_HINT:
        assert {m.group().lower() for m in re.finditer(re.escape(c), every, re.I)} == {c}
    assert _QUOTED_SUBJECT.pattern.lower().endswith(_QUOTED_HINT)
    rnd = random.Random(8)
    pieces = ["subject:", "Subject:", "SUBJECT:", "SuBjEcT:", "\u017fubject:", "subject :", "xsubject:", "ubject:",
              " ", "(", "[Spam] ", "192.0.2.1", "\u0130", "a"]
    for _ in range(5000):
        line = "".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 6)))
        if _QUOTED_SUBJECT.search(line):
            assert _QUOTED_HINT in line.lower(), line


def test_replayed_addresses_are_found_objects_as_init_makes_them() -> None:
    """_replay builds each Found without the frozen dataclass's __init__: the same type, fields, instance
    dictionary (in the fields' order), equality and hash as Found(...)."""
    from abuso.addresses import Found

    addresses._PLANS.clear()
    lines = _lines(8)[:3000]
    seen = 0
    for ln in lines + lines:
        for f in find_addresses(ln):
            made = Found(f.ip, f.start, f.end, f.port)
            assert type(f) is Found and vars(f) == vars(made) and list(vars(f)) == list(vars(made))
            assert f == made and hash(f) == hash(made) and repr(f) == repr(made)
            seen += 1
    assert seen > 1000
    with pytest.raises(AttributeError):
        f.port = 1  # type: ignore[misc]  # still frozen
