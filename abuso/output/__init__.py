"""Output writers: each module has ``render(report) -> str`` (lines ending in a newline)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Callable

    from ..model import Report

FORMATS = {
    "text": "abuso.output.text",
    "json": "abuso.output.json",
    "intelmq": "abuso.output.intelmq",
}


def renderer(fmt: str) -> Callable[[Report], str]:
    import importlib

    return importlib.import_module(FORMATS[fmt]).render


def valid_text(text: str) -> str:
    """Text that encodes as UTF-8: a lone surrogate (an undecodable byte kept by surrogateescape) becomes
    U+FFFD. In a Python str every code point in U+D800-DFFF is lone (astral characters are single code
    points), so readers of our JSON never meet invalid UTF-8 or an invalid \\udcxx escape."""
    if text.isascii():  # most reports: found at C speed, where the substitution scanned every character
        return text
    try:
        text.encode("utf-8")  # fails only on a surrogate
        return text
    except UnicodeEncodeError:
        pass
    import re

    return re.sub("[\ud800-\udfff]", "\ufffd", text)
