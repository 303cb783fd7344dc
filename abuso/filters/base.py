"""The contract every filter keeps."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

from ..model import Incident, Report


class Filter:
    """``reject`` returns None to keep an incident, or the reason it is dropped."""

    name: ClassVar[str] = "filter"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    def reject(self, incident: Incident, report: Report) -> str | None:  # pragma: no cover
        raise NotImplementedError
