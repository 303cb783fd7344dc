"""The contract every processor keeps."""

from __future__ import annotations

from pathlib import Path

from ..model import Report
from ..options import Configurable, Option

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any, ClassVar, Mapping


class Note(dict[str, "Any"]):  # "Any": typing is not imported at run time
    """A processor's note in words: a dict of fields for JSON and programs, and ``str(note)``
    a sentence for people (the text output and ``explain`` print it), e.g.
    ``Note("answered x@example.org (good response)", sent="good", to="x@example.org")``."""

    def __init__(self, text: str, /, **fields: Any) -> None:
        super().__init__(fields)
        self.text = text

    def __str__(self) -> str:
        return self.text


class Processor(Configurable):
    """A processor acts on a report after the filters; it may enrich incidents
    (``report.incidents[i] = inc.with_extra(...)``) and leave notes in
    ``report.notes[self.name]`` (a :class:`Note` to say it in words). Raise
    :class:`abuso.errors.TransientError` for failures worth a retry (SMTP down, database busy).

    ``base`` is the folder of the config file: relative paths in options are
    resolved against it.

    Options are declared in ``OPTIONS`` (:class:`abuso.options.Option`) and checked by
    the config before any processor is built.

    A processor that changes the world (writes files or databases, sends mail) sets
    ``side_effects = True``. ``abuso explain`` and ``abuso run --dry-run`` then never build
    it (its constructor does not run: nothing is opened or created) and never call its
    ``process`` or ``finish``: they call :meth:`preview` on an instance made by
    :meth:`for_preview`, to say what it would have done. Read-only look-ups (a table,
    RADIUS logs) keep ``side_effects = False`` and run as usual.
    """

    name: ClassVar[str] = "processor"
    #: None: undeclared (third-party processors written before declarations); built-ins declare theirs.
    OPTIONS: ClassVar[tuple[Option, ...] | None] = None
    #: True: writes, sends or creates something; skipped (previewed) by explain and --dry-run.
    side_effects: ClassVar[bool] = False

    def __init__(self, options: Mapping[str, Any] | None = None, base: Path | None = None) -> None:
        self.options = dict(options or {})
        self.base = base or Path.cwd()

    @classmethod
    def for_preview(cls, options: Mapping[str, Any] | None = None, base: Path | None = None) -> Processor:
        """An instance for :meth:`preview` only: ``options`` and ``base`` set, the subclass's
        constructor not run (so nothing is opened or created). A processor whose constructor
        only reads may return ``cls(options, base)`` instead."""
        self = cls.__new__(cls)
        Processor.__init__(self, options, base)
        return self

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base / p

    def process(self, report: Report) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self, report: Report) -> None:
        """Called after every processor's ``process``, in config order (the store writes here)."""

    def preview(self, report: Report) -> str | Note:
        """What ``process`` and ``finish`` would do for this report, in words (a str, or a :class:`Note`
        whose ``str()`` says it); nothing is done. It goes where ``process`` leaves its note:
        ``report.notes[self.name]``."""
        return f"would run {self.name} (it has side effects: skipped in explain and --dry-run)"

    def hold(self) -> bool:
        """Asked once by a batch worker before its first message: may this processor hold back its durable
        writes until :meth:`commit` (a group commit: one disk wait for a chunk of messages)? Return True if
        it will. The worker commits before it says any message of the chunk is done. The default, False,
        writes as it goes."""
        return False

    @property
    def held(self) -> int:
        """How many writes are held back, waiting for :meth:`commit`."""
        return 0

    def commit(self) -> None:
        """Make durable what was held back since the last commit; raise if that fails (the messages whose
        writes were held are then retried)."""

    def close(self) -> None:
        """Release files, connections; called once at the end of a run."""
