"""The contract every parser keeps."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

from ..model import Incident, Verdict


class Parser:
    """A parser finds incidents in one normalized message (abuso.normalize.Message).

    ``parse`` never raises for bad input: it returns a Verdict whose ``reason``
    says why the format did not apply or why nothing came out, because "0
    incidents" without a reason is what abuse desks hate most.
    """

    name: ClassVar[str] = "parser"
    #: A free-text parser: its incidents about an address that a structured parser
    #: also reported yield to that parser's (abuso.model.merge_duplicates).
    fallback: ClassVar[bool] = False

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    def parse(self, message: Any) -> Verdict:  # pragma: no cover - interface
        raise NotImplementedError

    # Helpers for subclasses.
    def found(self, incidents: list[Incident], reason: str = "") -> Verdict:
        if not incidents and not reason:
            reason = "format applied but no incident found"
        return Verdict(self.name, True, reason, incidents)

    def not_applicable(self, reason: str) -> Verdict:
        return Verdict(self.name, False, reason, [])
