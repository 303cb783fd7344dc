"""HTML to text for the normalizer: one line per table row, per <br> and per <p>.

Hostile HTML (100,000 nested <div>s, megabytes of tags) costs time in proportion to its size here:
breaks are marked in the markup with regular expressions, and the parser only reads markup that is
neither too deep nor too big for it.

The text is what Beautiful Soup's ``BeautifulSoup(markup, "html.parser").get_text()`` gives, read
from the same tokenizer (the standard library's :class:`html.parser.HTMLParser`) without building
Beautiful Soup's tree: that tree cost ~75% of the time of an HTML notice (:class:`_Strings`,
checked against Beautiful Soup itself by tests/test_htmltext.py).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from .errors import INPUT_ERRORS
from .lazy import lazy_compile

_BLOCK_TAGS = ("p", "div", "tr", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "pre",
               "blockquote", "hr", "dt", "dd", "title", "section", "article", "header", "footer")


def html_to_text(html: str) -> str:
    """One line per table row, per <br> and per <p>; cells separated by a tab.

    Line and cell breaks are marked in the markup before it is parsed, and
    comments, scripts and styles are cut there too: editing a parsed tree
    costs time in proportion to its depth per edit, and hostile mail nests
    tens of thousands of <div>s (quadratic: minutes for one message).
    """
    title = _TITLE.search(html)
    html = _HEAD.sub(lambda m: "", html)
    html = _HIDDEN.sub("", html)
    html = _CELL_END.sub(_tab_after, html)
    html = _BR.sub("\n", html)
    html = "\n".join(_BLOCK.split(html))  # each block tag on a line of its own (a template costs 6 µs a tag)
    if _too_deep(html):
        # Closing a tag searches the open ones (as Beautiful Soup's tree does): hostile
        # nesting makes that quadratic. Tags are only markers by now, so dropping them
        # and decoding entities gives the same lines.
        import html as _html

        text = _html.unescape(_TAGS.sub("", html))
    else:
        try:
            text = "".join(strings(html))
        except (AssertionError, *INPUT_ERRORS):  # html.parser gave up: the tags are only markers now
            import html as _html

            text = _html.unescape(_TAGS.sub("", html))
    if title:
        try:
            heading = " ".join(s for s in map(str.strip, strings(title.group(1))) if s)
        except (AssertionError, *INPUT_ERRORS):
            heading = ""
        text = heading + "\n" + text
    # Once over the whole text, not per line: neither pattern reaches across a line break.
    text = _CELL_GAP.sub("\t", _SPACES.sub(" ", text))
    return "\n".join(ln for ln in map(str.strip, text.splitlines()) if ln)


def _tab_after(m: re.Match[str]) -> str:
    return m.group() + "\t"


#: Beyond this nesting depth (or this many tags), HTML is not given to Beautiful Soup.
MAX_HTML_DEPTH = 256
MAX_HTML_TAGS = 50_000
_VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())


def _too_deep(html: str) -> bool:
    depth = tags = 0
    for m in _TAG_TOKEN.finditer(html):
        tags += 1
        name = m.group(2).lower()
        if m.group(1):
            depth = max(depth - 1, 0)
        elif name not in _VOID and not m.group(3):
            depth += 1
            if depth > MAX_HTML_DEPTH:
                return True
        if tags > MAX_HTML_TAGS:
            return True
    return False


_TAG_TOKEN = lazy_compile(r"<(/?)([A-Za-z][\w:-]*)[^>]*?(/?)>")
_TITLE = lazy_compile(r"<title\b[^>]*>(.*?)</title\s*>", re.I | re.S)
_HEAD = lazy_compile(r"<head\b.*?</head\s*>", re.I | re.S)
_HIDDEN = lazy_compile(r"<!--.*?-->|<(script|style)\b.*?</\1\s*>", re.I | re.S)
_CELL_END = lazy_compile(r"</t[dh]\s*>", re.I)
_BR = lazy_compile(r"<br\b[^>]*>", re.I)
_BLOCK = lazy_compile(r"(</?(?:" + "|".join(t for t in _BLOCK_TAGS if t != "br") + r")\b[^>]*>)", re.I)
_SPACES = lazy_compile(r"[ \xa0]+")
#: A tab and the white space after it up to the end of its line (\s without the characters
#: str.splitlines breaks at).
_CELL_GAP = lazy_compile(r" ?\t[ \t\x1f\xa0\u1680\u2000-\u200a\u202f\u205f\u3000]*")
_TAGS = lazy_compile(r"<[^>]*>")


def strings(markup: str) -> list[str]:
    """The strings of ``markup`` that ``BeautifulSoup(markup, "html.parser").get_text()`` joins, in order."""
    parser = _Strings()
    parser.feed(markup)
    parser.close()
    parser.end_data()
    return parser.strings


#: Beautiful Soup's HTML rules (bs4.builder.HTMLTreeBuilder): tags closed as they open, tags whose
#: white space is kept, and tags whose strings are not text (scripts, styles, templates, ruby notes).
_EMPTY_ELEMENTS = frozenset(("area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "menuitem",
                             "meta", "param", "source", "track", "wbr", "basefont", "bgsound", "command", "frame",
                             "image", "isindex", "nextid", "spacer"))
_KEEP_SPACE = frozenset(("pre", "textarea"))
_NOT_TEXT = frozenset(("rt", "rp", "style", "script", "template"))
_ASCII_SPACES = "\x20\x0a\x09\x0c\x0d"
_TEXT, _CDATA, _OTHER = 0, 1, 2
_DECIMAL_REF = re.compile("^([0-9]+)(.*)")
_HEX_REF = re.compile("^([0-9a-f]+)(.*)")


class _Strings(HTMLParser):
    """html.parser's events turned into the strings of the tree Beautiful Soup would build from them.

    Beautiful Soup joins the data between two events into one string; a string of ASCII white space only
    becomes one space or one newline unless a <pre> or <textarea> is open; the strings inside an open
    <script>, <style>, <template>, <rt> or <rp> are not text, nor are comments, declarations and
    processing instructions, while CDATA sections are. An end tag closes every tag opened after the
    most recent open tag of its name, and is ignored when none is open.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.strings: list[str] = []
        self._data: list[str] = []
        self._open: list[str] = []
        self._count: dict[str, int] = {}
        self._keep_space = 0
        self._not_text = 0
        #: Empty elements closed as they opened, by name: that many of their end tags are ignored (a count,
        #: not Beautiful Soup's list, which 50,000 <img> tags make quadratic).
        self._closed: dict[str, int] = {}

    def end_data(self, kind: int = _TEXT) -> None:
        if not self._data:
            return
        text = "".join(self._data)
        self._data = []
        if not self._keep_space and not text.strip(_ASCII_SPACES):
            text = "\n" if "\n" in text else " "
        if kind == _CDATA or kind == _TEXT and not self._not_text:
            self.strings.append(text)

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.end_data()
        if tag in _EMPTY_ELEMENTS:
            self._closed[tag] = self._closed.get(tag, 0) + 1
            return
        self._push(tag)

    def handle_startendtag(self, tag: str, attrs: object) -> None:
        self.end_data()        # <tag/>: opened and closed at once

    def handle_endtag(self, tag: str) -> None:
        if self._closed.get(tag):
            self._closed[tag] -= 1
            return
        self.end_data()
        if not self._count.get(tag):
            return
        while True:
            name = self._open.pop()
            self._count[name] -= 1
            if name in _KEEP_SPACE:
                self._keep_space -= 1
            if name in _NOT_TEXT:
                self._not_text -= 1
            if name == tag:
                return

    def _push(self, tag: str) -> None:
        self._open.append(tag)
        self._count[tag] = self._count.get(tag, 0) + 1
        if tag in _KEEP_SPACE:
            self._keep_space += 1
        if tag in _NOT_TEXT:
            self._not_text += 1

    def handle_data(self, data: str) -> None:
        self._data.append(data)

    def handle_charref(self, name: str) -> None:
        base, pattern = (16, _HEX_REF) if name[:1] in ("x", "X") else (10, _DECIMAL_REF)
        digits = name[1:] if base == 16 else name
        extra = ""
        try:
            number: int | None = int(digits, base)
        except ValueError:
            m = pattern.search(digits)
            number, extra = (int(m.group(1), base), m.group(2)) if m else (None, digits)
        self._data.append(_character(number) if number is not None else "")
        self._data.append(extra)

    def handle_entityref(self, name: str) -> None:
        self._data.append(_entities().get(name) or "&" + name)

    def handle_comment(self, data: str) -> None:
        self._other(data, _OTHER)

    def handle_decl(self, decl: str) -> None:
        self._other(decl, _OTHER)

    def unknown_decl(self, data: str) -> None:
        if data.upper().startswith("CDATA["):
            self._other(data[6:], _CDATA)
        else:
            self._other(data, _OTHER)

    def handle_pi(self, data: str) -> None:
        self._other(data, _OTHER)

    def _other(self, data: str, kind: int) -> None:
        self.end_data()
        self._data.append(data)
        self.end_data(kind)


def _character(number: int) -> str:
    """A numeric character reference as HTML reads it: C1 controls as Windows-1252, the impossible ones U+FFFD."""
    if number == 0 or number > 0x10FFFF or 0xD800 <= number <= 0xDFFF:
        return "\ufffd"
    if 0x80 <= number <= 0x9F:
        try:
            return bytes((number,)).decode("cp1252")
        except UnicodeDecodeError:
            return chr(number)
    return chr(number)


_ENTITIES: dict[str, str] = {}


def _entities() -> dict[str, str]:
    """HTML5's named character references by name without the semicolon (the first in sorted order wins)."""
    if not _ENTITIES:
        from html.entities import html5

        for name, character in sorted(html5.items()):
            _ENTITIES.setdefault(name[:-1] if name.endswith(";") else name, character)
    return _ENTITIES
