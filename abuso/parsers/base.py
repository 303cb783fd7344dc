"""The contract every parser keeps."""

from __future__ import annotations

from ..model import Incident, Verdict
from ..options import Configurable, Option

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any, ClassVar, Mapping

    from ..normalize import Message

#: The time options every parser that reads timestamps takes (``defaults`` gives them to all).
TIME_OPTIONS = (
    Option("zone", "zone", help="zone of naive timestamps when the report states none"),
    Option("date_fallback", "bool", False, help="an incident without a time takes the report's Date"),
)


class Parser(Configurable):
    """A parser finds incidents in one normalized message (abuso.normalize.Message).

    Options are declared in ``OPTIONS`` (:class:`abuso.options.Option`) and checked by
    the config before any parser is built; ``defaults.zone`` and
    ``defaults.date_fallback`` reach every parser as options.

    ``parse`` never raises for bad input: it returns a Verdict whose ``reason``
    says why the format did not apply or why nothing came out, because "0
    incidents" without a reason is what abuse desks hate most.
    """

    name: ClassVar[str] = "parser"
    #: A free-text parser: its incidents about an address that a structured parser
    #: also reported yield to that parser's (abuso.model.merge_duplicates).
    fallback: ClassVar[bool] = False
    #: Place in the chain, higher first: structured formats (60-100) before the Received
    #: heuristic (30) and free text (10), so the most specific evidence is kept on merge and an
    #: authority runs before the parsers that defer to it. A configured ``parsers`` list runs in
    #: this order; without one, every built-in and plugin parser does (abuso.registry).
    priority: ClassVar[int] = 50
    #: The format states the report's source itself (ARF Source-IP, X-ARF, SpamCop "Email from"):
    #: such a parser marks its verdict with :meth:`states_source`, and a parser later in the chain
    #: that would only guess the source (``received``) leaves the report to it.
    authority: ClassVar[bool] = False
    #: None: undeclared (third-party parsers written before declarations); built-ins declare theirs.
    OPTIONS: ClassVar[tuple[Option, ...] | None] = None

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    def parse(self, message: Message) -> Verdict:  # pragma: no cover - interface
        raise NotImplementedError

    # Helpers for subclasses.
    def found(self, incidents: list[Incident], reason: str = "") -> Verdict:
        if not incidents and not reason:
            reason = "format applied but no incident found"
        return Verdict(self.name, True, reason, incidents)

    def not_applicable(self, reason: str) -> Verdict:
        return Verdict(self.name, False, reason, [])

    def states_source(self, verdict: Verdict, what: str) -> Verdict:
        """Mark ``verdict``: the report states its source in this format (``what``: "an ARF report")."""
        if not self.authority:
            raise TypeError(f"parser {self.name!r} states a source but does not declare authority")
        verdict.source_stated = what
        return verdict


def stated_by_authority(message: Message) -> Verdict | None:
    """The first verdict, among the parsers that already ran on ``message``, that states the source itself.

    The pipeline hands each parser the verdicts of the parsers before it in
    ``message.verdicts``; a parser used alone sees none.
    """
    for verdict in message.verdicts.values():
        if verdict.source_stated:
            return verdict
    return None
