"""dateparser as the timestamps' last resort: for shapes the fast readers do not know, in the report's languages,
asked once per text and message, within a budget per message.

:func:`message_scope` installs one :class:`DateScope` around a message's parse (the pipeline does); every
parser's fallback shares it. Only text that could hold a day and a month is ever given to dateparser, which
is imported on the first call (~100 ms, plus the locales of its languages).
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta, timezone, tzinfo
from time import perf_counter

from .lazy import lazy_compile

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Callable, Iterator

    from .stampread import Stamp

__all__ = ["FALLBACK_CALLS", "FALLBACK_SKIPPED", "MAX_CALLS_PER_MESSAGE", "MAX_SECONDS_PER_MESSAGE", "DateScope",
           "fallback", "message_scope", "report_languages"]


#: How often dateparser ran (tests and the benchmark check the fast path keeps it idle).
FALLBACK_CALLS = [0]
#: How often it was not asked: the text cannot hold a date it would read, the answer was memoised,
#: or the message's budget was spent.
FALLBACK_SKIPPED = [0]

#: A message's dateparser budget: calls, and seconds once a call has returned (the first call in a
#: process also loads the locales of its languages, ~0.4 s; without ``languages=`` it ran language
#: detection over every locale it ships: ~2.6 s first, ~110 ms each call after).
MAX_CALLS_PER_MESSAGE = 2
MAX_SECONDS_PER_MESSAGE = 0.05

# Function words of the languages the prose shapes know, to tell dateparser which locales to try.
_STOPWORDS = {
    "de": {"der", "die", "das", "und", "nicht", "wurde", "von", "mit", "ist", "ihr", "ihre", "uhr", "sehr",
           "geehrte", "damen", "herren", "grüßen", "freundlichen", "am", "um", "auf", "unser", "unsere"},
    "fr": {"le", "la", "les", "des", "et", "une", "est", "sur", "pour", "dans", "nous", "vous", "votre",
           "notre", "bonjour", "cordialement", "été", "à", "du", "au"},
    "es": {"el", "los", "las", "del", "que", "una", "por", "con", "desde", "fue", "hemos", "su", "nuestro",
           "estimados", "saludos", "dirección", "se", "han"},
    "it": {"il", "gli", "della", "che", "una", "per", "alle", "ore", "sono", "nostri", "nostro", "buongiorno",
           "cordiali", "saluti", "indirizzo", "ha", "di"},
    "nl": {"het", "een", "van", "op", "om", "niet", "zijn", "werd", "heeft", "onze", "uw", "geachte", "met",
           "vriendelijke", "groet", "en"},
    "pt": {"os", "das", "não", "uma", "em", "às", "foi", "pelo", "nossos", "nosso", "prezados", "atenciosamente",
           "endereço", "para", "seu", "sua"},
}
_WORDS = lazy_compile(r"[^\W\d_]+")
#: Text dateparser could read a day and month from (REQUIRE_PARTS): a numeric date, a month name of
#: the languages above, or a word in another script (past Latin Extended) next to a number ("8 марта").
#: Anything else cannot give a stamp in the languages it is given, so it is never asked.
_NUMERIC_DATE = lazy_compile(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}")
_FOREIGN_BESIDE_NUMBER = lazy_compile(r"\d\s*[^\W\d_]*[^\x00-\u024f\W\d_]|[^\x00-\u024f\W\d_][^\W\d_]*\.?\s*\d")


def report_languages(text: str) -> list[str] | None:
    """The languages a report is written in, for dateparser's ``languages=``: English plus those whose
    function words are frequent in its first 8 KB (a count of words, a few µs per KB). None when it is
    written in another script (Cyrillic, Greek, CJK...): then dateparser detects the language itself."""
    head = text[:8192]
    if sum(1 for c in head if c > "\u024f" and c.isalpha()) > 20:
        return None
    counts = dict.fromkeys(_STOPWORDS, 0)
    for w in _WORDS.findall(text[:8192].lower()):
        for lang, words in _STOPWORDS.items():
            if w in words:
                counts[lang] += 1
    ranked = sorted((c, lang) for lang, c in counts.items() if c >= 3)
    return [lang for _, lang in reversed(ranked[-2:])] + ["en"]


class DateScope:
    """dateparser for one message: its languages (looked up on first need), a memo and a bounded cost.

    :func:`message_scope` installs one around a message's parse; every parser's fallback shares it.
    """

    __slots__ = ("_text", "_languages", "_known", "calls", "spent", "memo")

    def __init__(self, text: Callable[[], str] | str | None = None, languages: list[str] | None = None) -> None:
        self._text = text
        self._languages = languages
        self._known = languages is not None
        self.calls = 0
        self.spent = 0.0
        self.memo: dict[tuple, Stamp | None] = {}

    @property
    def languages(self) -> list[str] | None:
        if not self._known:
            text = self._text() if callable(self._text) else (self._text or "")
            self._languages, self._known = report_languages(text), True
        return self._languages

    @property
    def spent_out(self) -> bool:
        return self.calls >= MAX_CALLS_PER_MESSAGE or self.spent >= MAX_SECONDS_PER_MESSAGE


_SCOPE: ContextVar[DateScope | None] = ContextVar("abuso_date_scope", default=None)


@contextmanager
def message_scope(text: Callable[[], str] | str | None = None,
                  languages: list[str] | None = None) -> Iterator[DateScope]:
    """Bound dateparser for the stamps read inside: one budget and one memo per message."""
    scope = DateScope(text, languages)
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


def _could_be_date(text: str) -> bool:
    if _NUMERIC_DATE.search(text) or _FOREIGN_BESIDE_NUMBER.search(text):
        return True
    from .stampread import MONTHS

    return any(w in MONTHS for w in _WORDS.findall(text.lower()))


def fallback(text: str, reference: datetime | None, stated: tzinfo | None, header_offset: timedelta | None,
              default: tzinfo | None, whole: bool = False) -> Stamp | None:
    """dateparser, lazily imported, for shapes the regexes do not know (and other languages).

    Only text that could hold a day and a month is given to it; inside a :func:`message_scope`
    it gets the report's languages, each text is asked once per message, and a message stops
    asking once it spent MAX_CALLS_PER_MESSAGE calls or MAX_SECONDS_PER_MESSAGE.
    """
    if not _could_be_date(text):
        FALLBACK_SKIPPED[0] += 1
        return None
    scope = _SCOPE.get()
    key = (text, whole, reference, stated, header_offset, default)
    if scope is not None:
        if key in scope.memo:
            FALLBACK_SKIPPED[0] += 1
            return scope.memo[key]
        if scope.spent_out:
            FALLBACK_SKIPPED[0] += 1
            return None
    started = perf_counter()
    try:
        found = _ask_dateparser(text, reference, stated, header_offset, default, whole,
                                scope.languages if scope is not None else None)
    finally:
        if scope is not None:
            scope.calls += 1
            scope.spent += perf_counter() - started
    if scope is not None:
        scope.memo[key] = found
    return found


def _ask_dateparser(text: str, reference: datetime | None, stated: tzinfo | None, header_offset: timedelta | None,
                    default: tzinfo | None, whole: bool, languages: list[str] | None) -> Stamp | None:
    FALLBACK_CALLS[0] += 1
    # A dependency, not optional: a missing dateparser is a broken install (pipeline: InternalError),
    # never "no timestamp" in silence.
    import dateparser
    from dateparser.search import search_dates

    from .errors import INPUT_ERRORS
    from .stampread import Stamp, _resolve, _zone_of_token
    from .timestamps import _TIMEISH

    settings = {"RETURN_AS_TIMEZONE_AWARE": False, "PREFER_DATES_FROM": "past",
                "REQUIRE_PARTS": ["day", "month"]}
    if reference is not None:
        settings["RELATIVE_BASE"] = reference.replace(tzinfo=None)
    try:
        if whole:
            dt = dateparser.parse(text, languages=languages, settings=settings)
            found = [(text, dt)] if dt is not None else []
        else:
            found = search_dates(text, languages=languages, settings=settings) or []
    except (*INPUT_ERRORS, ArithmeticError):  # odd input: ValueError, OverflowError, IndexError...; no stamp
        return None
    for sub, dt in found:
        if dt is None or not _TIMEISH.search(sub):
            continue
        start = text.find(sub)
        tz = _zone_of_token(sub.rsplit(None, 1)[-1]) if " " in sub.strip() else None
        if tz is not None:
            return Stamp(dt.replace(tzinfo=tz).astimezone(timezone.utc), "explicit", start, start + len(sub),
                         "fallback")
        return _resolve(dt.replace(tzinfo=None), start, start + len(sub), "fallback", stated, header_offset,
                        default)
    return None
