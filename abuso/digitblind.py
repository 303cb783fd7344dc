"""Patterns that treat every ASCII digit alike, and answers memoised by the text with its digits made 0.

Log lines differ in their numbers (times, pids, counters, ports, addresses), far less in their
words. A pattern with no digit of its own (no ``7``, no ``[0-5]``, no back-reference to what
may hold digits) cannot tell ``1`` from ``9``: whether and where it matches a text is the same
in the text with every ASCII digit made ``0``. So a search that most lines fail can be answered
once per shape of line instead of once per line.
"""

from __future__ import annotations

from .lazy import regex_tree
from .startcache import remembered

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any

_DIGITS = frozenset("0123456789")
ZEROS = str.maketrans("123456789", "000000000")


_BYTE_ZEROS = bytes.maketrans(b"123456789", b"000000000")


def zeroed(text: str) -> str | bytes:
    """``text`` with every ASCII digit made 0 (other characters, other digits, kept), as a key: bytes
    for ASCII text (bytes.translate is a table lookup, ~10x cheaper than str.translate), else str."""
    if text.isascii():
        return text.encode("ascii").translate(_BYTE_ZEROS)
    return text.translate(ZEROS)


#: A line with its key, ``(text, zeroed(text))``, made once by :func:`keyed` and handed to each memo of
#: that line (addresses, stamps, line types, roles: four zeroings of the same line before).
Keyed = tuple[str, str | bytes]


def keyed(text: str) -> Keyed:
    """``(text, zeroed(text))``: a line with its key, made once for every memo that keys by it.

    A memo handed one takes the key only when it was made for the very text object the memo reads
    (``keyed[0] is text``, :func:`key_for`); one made for another text, even an equal one, is ignored
    and the text zeroed afresh. So a key handed with the wrong line never reaches a memo. A wrong key
    could only come from a pair built by hand with something else than ``zeroed(text)``: only this
    function builds them (the memos' callers in abuso.parsers.log take theirs from here).
    """
    return text, zeroed(text)


def key_for(text: str, made: Keyed | None) -> str | bytes:
    """``zeroed(text)``, taken from ``made`` when it was made for this very text object (see :func:`keyed`):
    how every memo handed a key takes it."""
    return made[1] if made is not None and made[0] is text else zeroed(text)


#: :func:`blind`'s answers, by the pattern object (module-level patterns: they live as long as the process).
_ANSWERS: dict[int, bool] = {}


def blind(rx: Any) -> bool:
    """:func:`digit_blind` of a compiled (or lazily compiled) pattern, worked out once per pattern (and,
    on the procmail path, kept between processes by abuso.startcache: parsing a long pattern's tree
    costs a piped message several ms)."""
    answer = _ANSWERS.get(id(rx))
    if answer is None:
        pattern, flags = rx.pattern, int(rx.flags)
        answer = _ANSWERS[id(rx)] = remembered((pattern, flags), lambda: digit_blind(pattern, flags), digit_blind)
    return answer


def digit_blind(pattern: str, flags: int = 0) -> bool:
    """True when ``pattern`` (str, compiled with ``flags``) treats every ASCII digit alike and looks
    behind by one character at most (callers key on one character before the searched span).
    False when unsure."""
    parsed = regex_tree(pattern, flags)
    if parsed is None:
        return False
    c, tree = parsed
    groups: dict[int, Any] = {}

    def collect(items: Any) -> None:  # each group's content, for back-references
        for op, av in items:
            if op is c.SUBPATTERN:
                groups[av[0]] = av[-1]
            for sub in _children(c, op, av):
                collect(sub)

    def blind_set(members: Any) -> bool:
        for op, av in members:
            if op is c.LITERAL and chr(av) in _DIGITS:
                return False
            if op is c.RANGE:
                inside = {d for d in _DIGITS if av[0] <= ord(d) <= av[1]}
                if inside and inside != _DIGITS:
                    return False
            elif op not in (c.LITERAL, c.RANGE, c.NEGATE, c.CATEGORY):
                return False
        return True

    def digitless(items: Any) -> bool:  # a group that can never hold a digit: a back-reference to it is blind
        data = list(items)
        if len(data) != 1:
            return False
        op, av = data[0]
        if op is c.LITERAL:
            return chr(av) not in _DIGITS
        if op is c.IN:
            return all(o is c.LITERAL and chr(a) not in _DIGITS for o, a in av)
        return False

    def blind(items: Any) -> bool:
        for op, av in items:
            if op in (c.LITERAL, c.NOT_LITERAL):
                if chr(av) in _DIGITS:
                    return False
            elif op is c.IN:
                if not blind_set(av):
                    return False
            elif op is c.GROUPREF:
                if av not in groups or not digitless(groups[av]):
                    return False
            elif op in (c.ASSERT, c.ASSERT_NOT) and av[0] < 0:
                lo, hi = av[1].getwidth()
                if hi > 1:
                    return False
            elif op not in (c.ANY, c.AT, c.SUBPATTERN, c.BRANCH, c.MAX_REPEAT, c.MIN_REPEAT,
                            c.ASSERT, c.ASSERT_NOT):
                return False  # conditionals, atomic groups ...: not looked into
            for sub in _children(c, op, av):
                if not blind(sub):
                    return False
        return True

    collect(tree)
    return blind(tree)


def _children(c: Any, op: Any, av: Any) -> list[Any]:
    if op is c.SUBPATTERN:
        return [av[-1]]
    if op in (c.MAX_REPEAT, c.MIN_REPEAT):
        return [av[2]]
    if op is c.BRANCH:
        return list(av[1])
    if op in (c.ASSERT, c.ASSERT_NOT):
        return [av[1]]
    return []
