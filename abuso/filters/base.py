"""The contract every filter keeps."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

from ..model import Incident, Report
from ..options import Configurable, Option


class Filter(Configurable):
    """``reject`` returns None to keep an incident, or the reason it is dropped.

    Options are declared in ``OPTIONS`` and checked by the config before any filter is built.
    """

    name: ClassVar[str] = "filter"
    #: None: undeclared (third-party stages written before declarations); built-ins declare theirs.
    OPTIONS: ClassVar[tuple[Option, ...] | None] = None

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    def reject(self, incident: Incident, report: Report) -> str | None:  # pragma: no cover
        raise NotImplementedError
