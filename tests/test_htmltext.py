"""abuso.htmltext reads HTML as Beautiful Soup does, without building its tree.

Beautiful Soup (with the html.parser builder) is the reference: on every HTML part of the samples and
the public corpus, and on generated markup made of the pieces where tree builders differ (white space
between tags, unclosed and stray end tags, empty elements, <pre>, scripts, templates, entities with and
without semicolons, C1 and impossible character references, CDATA, comments, declarations), the strings
must be exactly those of ``BeautifulSoup(markup, "html.parser").get_text()``.
"""

from __future__ import annotations

import email
import random
from email import policy

import bs4  # the reference (a test dependency; abuso itself does not import it)
import pytest

from abuso import htmltext
from abuso.htmltext import html_to_text, strings

from .conftest import CORPUS, ROOT

pytestmark = pytest.mark.filterwarnings("ignore::bs4.XMLParsedAsHTMLWarning",
                                        "ignore::bs4.MarkupResemblesLocatorWarning")


def soup_text(markup: str, sep: str = "", strip: bool = False) -> str:
    return bs4.BeautifulSoup(markup, "html.parser").get_text(sep, strip=strip)


def old_html_to_text(html: str) -> str:
    """html_to_text as it was with Beautiful Soup parsing the marked-up HTML (the reference)."""
    title = htmltext._TITLE.search(html)
    html = htmltext._HEAD.sub(lambda m: "", html)
    html = htmltext._HIDDEN.sub("", html)
    html = htmltext._CELL_END.sub(htmltext._tab_after, html)
    html = htmltext._BR.sub("\n", html)
    html = "\n".join(htmltext._BLOCK.split(html))
    if htmltext._too_deep(html):
        import html as _html

        text = _html.unescape(htmltext._TAGS.sub("", html))
    else:
        text = soup_text(html)
    if title:
        text = soup_text(title.group(1), " ", strip=True) + "\n" + text
    text = htmltext._CELL_GAP.sub("\t", htmltext._SPACES.sub(" ", text))
    return "\n".join(ln for ln in map(str.strip, text.splitlines()) if ln)


def html_parts() -> list[tuple[str, str]]:
    """(where, markup) of every text/html part of the bundled samples and the public corpus."""
    found = []
    folders = [ROOT / "samples"] + ([CORPUS] if CORPUS.is_dir() else [])
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix not in (".md", ".json", ".yaml")):
            msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            for n, part in enumerate(msg.walk()):
                if part.get_content_type() != "text/html":
                    continue
                try:
                    found.append((f"{path.name}#{n}", part.get_content()))
                except (LookupError, ValueError, UnicodeError):
                    continue
    return found


PARTS = html_parts()


def test_there_are_html_parts_to_compare():
    assert len(PARTS) >= 5, [w for w, _ in PARTS]


@pytest.mark.parametrize("where,markup", PARTS, ids=[w for w, _ in PARTS])
def test_real_html_reads_as_beautiful_soup_reads_it(where, markup):
    assert "".join(strings(markup)) == soup_text(markup)
    assert html_to_text(markup) == old_html_to_text(markup)


#: The pieces generated markup is made of.
PIECES = [
    "<p>", "</p>", "<div class='a>b'>", "</div>", "<pre>", "</pre>", "<textarea>", "</textarea>",
    "<script>", "</script>", "<style>", "</style>", "<template>", "</template>", "<rt>", "</rt>", "<rp>",
    "<b>", "</b>", "</i>", "<br>", "<br/>", "</br>", "<img src=x>", "</img>", "<p/>", "<script/>", "<pre/>",
    "<td>", "</td>\t", "<tr>", "</tr>", "<table>", "</table>", "<x-y:z>", "</x-y:z>", "<title>", "</title>",
    " ", "  ", "\t", "\n", "\r\n", "\x0c", "\xa0", "\u2003",
    "192.0.2.1", "2026-11-20 10:00:00", "text", "a < b", "a > b", "&", "& ", "#",
    "&amp;", "&amp", "&nbsp;", "&copy", "&foo;", "&foo", "&NotEqualTilde;", "&#147;", "&#x80;", "&#x81;", "&#0;",
    "&#xD800;", "&#1114112;", "&#65;", "&#x41", "&#12a;", "&#x;",
    "<!-- c -->", "<!---->", "<!DOCTYPE html>", "<?xml version='1.0'?>", "<![CDATA[x<y]]>", "<![CDATA[]]>",
    "<![CDATA[ \n ]]>", "<!ELEMENT x>", "<", "</", "<1>", "<a href='", "'>",
]


def generated(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 40))) for _ in range(count)]


@pytest.mark.parametrize("seed", range(8))
def test_generated_markup_reads_as_beautiful_soup_reads_it(seed):
    for markup in generated(seed, 250):
        assert "".join(strings(markup)) == soup_text(markup), repr(markup)
        assert " ".join(s for s in map(str.strip, strings(markup)) if s) == soup_text(markup, " ", strip=True)


@pytest.mark.parametrize("seed", range(4))
def test_generated_notices_give_the_lines_they_gave(seed):
    rng = random.Random(1000 + seed)
    for markup in generated(seed + 100, 150):
        notice = f"<html><head><title>{rng.choice(PIECES)}x</title></head><body>{markup}</body></html>"
        assert html_to_text(notice) == old_html_to_text(notice), repr(notice)


def test_every_numeric_reference_reads_as_beautiful_soup_reads_it():
    from bs4.dammit import UnicodeDammit

    for n in list(range(0, 0x3000)) + list(range(0xD700, 0xE100)) + [0xFDD0, 0xFFFE, 0x10FFFF, 0x110000, 10**12]:
        assert htmltext._character(n) == UnicodeDammit.numeric_character_reference(n)[0], hex(n)


def test_named_references_are_beautiful_soups():
    from bs4.dammit import EntitySubstitution

    assert htmltext._entities() == EntitySubstitution.HTML_ENTITY_TO_CHARACTER


def test_the_rules_are_beautiful_soups():
    from bs4.builder import HTMLTreeBuilder

    assert htmltext._EMPTY_ELEMENTS == HTMLTreeBuilder.DEFAULT_EMPTY_ELEMENT_TAGS
    assert htmltext._KEEP_SPACE == HTMLTreeBuilder.DEFAULT_PRESERVE_WHITESPACE_TAGS
    assert htmltext._NOT_TEXT == set(HTMLTreeBuilder.DEFAULT_STRING_CONTAINERS)
    assert htmltext._ASCII_SPACES == bs4.BeautifulSoup.ASCII_SPACES


def test_beautiful_soup_is_not_imported_to_read_html():
    import subprocess
    import sys

    # The tab marked after </td> is white space alone between two tags, one space as Beautiful Soup reads it.
    code = ("import sys; from abuso.htmltext import html_to_text; "
            "t = html_to_text('<p>192.0.2.1</p><table><tr><td>a</td><td>b</td></tr></table>'); "
            "assert t == '192.0.2.1\\na b', repr(t); print('bs4' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_white_space_between_tags_is_kept_only_in_a_pre():
    assert strings("<pre>\t\t</pre><p>\t\t</p><p>\n\t</p>") == ["\t\t", " ", "\n"]
    assert strings("<script>x</script><![CDATA[y]]><!-- z -->") == ["y"]
