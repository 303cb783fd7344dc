"""The contract every processor keeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Mapping

from ..model import Report


class Note(dict):  # type: ignore[type-arg]
    """A processor's note in words: a dict of fields for JSON and programs, and ``str(note)``
    a sentence for people (the text output and ``explain`` print it), e.g.
    ``Note("answered x@example.org (good response)", sent="good", to="x@example.org")``."""

    def __init__(self, text: str, /, **fields: Any) -> None:
        super().__init__(fields)
        self.text = text

    def __str__(self) -> str:
        return self.text


class Processor:
    """A processor acts on a report after the filters; it may enrich incidents
    (``report.incidents[i] = inc.with_extra(...)``) and leave notes in
    ``report.notes[self.name]`` (a :class:`Note` to say it in words). Raise
    :class:`abuso.errors.TransientError` for failures worth a retry (SMTP down, database busy).

    ``base`` is the folder of the config file: relative paths in options are
    resolved against it.
    """

    name: ClassVar[str] = "processor"

    def __init__(self, options: Mapping[str, Any] | None = None, base: Path | None = None) -> None:
        self.options = dict(options or {})
        self.base = base or Path.cwd()

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base / p

    def process(self, report: Report) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self, report: Report) -> None:
        """Called after every processor's ``process``, in config order (the store writes here)."""

    def close(self) -> None:
        """Release files, connections; called once at the end of a run."""
