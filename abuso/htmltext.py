"""HTML to text for the normalizer: one line per table row, per <br> and per <p>.

Hostile HTML (100,000 nested <div>s, megabytes of tags) costs time in proportion to its size here:
breaks are marked in the markup with regular expressions, and Beautiful Soup only parses markup
that is neither too deep nor too big for it.
"""

from __future__ import annotations

import re

from .errors import INPUT_ERRORS
from .lazy import lazy_compile

_BLOCK_TAGS = ("p", "div", "tr", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "pre",
               "blockquote", "hr", "dt", "dd", "title", "section", "article", "header", "footer")


def html_to_text(html: str) -> str:
    """One line per table row, per <br> and per <p>; cells separated by a tab.

    Line and cell breaks are marked in the markup before Beautiful Soup parses it,
    and comments, scripts and styles are cut there too: editing the parsed tree
    costs time in proportion to its depth per edit, and hostile mail nests
    tens of thousands of <div>s (quadratic: minutes for one message).
    """
    from bs4 import BeautifulSoup, ParserRejectedMarkup  # lazy: costs ~60 ms at import

    title = _TITLE.search(html)
    html = _HEAD.sub(lambda m: "", html)
    html = _HIDDEN.sub("", html)
    html = _CELL_END.sub(_tab_after, html)
    html = _BR.sub("\n", html)
    html = "\n".join(_BLOCK.split(html))  # each block tag on a line of its own (a template costs 6 µs a tag)
    if _too_deep(html):
        # Beautiful Soup re-links its tree in time proportional to the depth for every
        # string it parses: hostile nesting makes that quadratic. Tags are only markers
        # by now, so dropping them and decoding entities gives the same lines.
        import html as _html

        text = _html.unescape(_TAGS.sub("", html))
    else:
        try:
            text = BeautifulSoup(html, "html.parser").get_text("")
        except (ParserRejectedMarkup, *INPUT_ERRORS):  # garbage markup: the tags are only markers now
            import html as _html

            text = _html.unescape(_TAGS.sub("", html))
    if title:
        text = BeautifulSoup(title.group(1), "html.parser").get_text(" ", strip=True) + "\n" + text
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
