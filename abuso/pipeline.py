"""reader -> normalizer -> parsers -> filters -> processors, for one message at a time."""

from __future__ import annotations

from pathlib import Path

from . import registry
from .config import Config, load
from .errors import BROKEN, AbusoError, MessageError, TransientError, internal_error
from .model import Dropped, Incident, Report, Verdict, merge_duplicates
from .timestamps import message_scope

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any, Mapping

    from .normalize import Message


class Pipeline:
    """A configured chain of stages. Build once, then ``process`` many messages.

    >>> pipeline = Pipeline.from_config({"filters": {"ip": {"within": ["192.0.2.0/24"]}}})
    >>> report = pipeline.process(raw_bytes)           # doctest: +SKIP
    >>> report.valid, report.incidents, report.verdicts  # doctest: +SKIP
    """

    def __init__(self, config: Config, preview: bool = False) -> None:
        """``preview=True`` (explain, --dry-run): processors with side effects are not built and
        never run; each says what it would have done (``report.notes[name]``)."""
        self.config = config
        self.preview = preview
        defaults = config.defaults
        classes = [registry.load("parsers", s.name) for s in config.parsers]
        # The declared priority orders the chain, so an authority runs before the parsers that defer to it.
        self.parsers = [classes[i]({**_parser_defaults(defaults), **config.parsers[i].options})
                        for i in registry.in_priority_order(classes)]
        self.filters = [registry.load("filters", s.name)(s.options) for s in config.filters]
        self.processors = []
        for s in config.processors:
            cls = registry.load("processors", s.name)
            if preview and _side_effects(cls):
                maker = getattr(cls, "for_preview", None)
                self.processors.append(maker(s.options, config.base) if maker else _Unbuilt(s.name))
            else:
                self.processors.append(cls(s.options, config.base))
        self.max_bytes = int(defaults.get("max_bytes", 32 * 1024 * 1024))

    @classmethod
    def from_config(cls, source: str | Path | Mapping[str, Any] | None = None) -> Pipeline:
        """From a YAML file path, a mapping with the same keys, or None (all defaults)."""
        return cls(load(source))

    def analyse(self, raw: bytes, origin: str = "-") -> Report:
        """Normalize, parse and filter; no processors (no side effects)."""
        from .normalize import normalize
        from .readers.base import not_mail

        report = Report(raw=raw, origin=origin)
        problem = not_mail(raw[:4096] if len(raw) > 4096 else raw)
        if problem and not (len(raw) > 4096 and problem.startswith("blank")):
            raise MessageError(problem)
        if len(raw) > self.max_bytes:
            # "read": a batch reader reads a bigger file only that far (readers/paths.py)
            raise MessageError(f"message is more than max_bytes={self.max_bytes} ({len(raw):,} bytes read)")
        try:
            msg = normalize(raw)
        except RecursionError:
            raise MessageError("message structure nested too deeply to read")
        except MemoryError:  # over the message's budget (defaults.max_memory): the runner says so
            raise
        except BROKEN as e:  # a broken install or a bug every message would hit: not bad mail
            raise internal_error("the normalizer", e)
        except Exception as e:  # kept broad: whatever hostile bytes make the stdlib parser raise is this message's
            raise MessageError(f"cannot parse message: {type(e).__name__}: {e}")
        report.message = msg
        report.message_id, report.subject = msg.message_id, msg.subject
        report.sender, report.date = msg.sender, msg.date
        if msg.arrival is not None:
            report.notes["arrival"] = msg.arrival
        found: list[Incident] = []
        msg.verdicts = report.verdicts  # each parser sees the verdicts of those before it
        with message_scope(lambda: "\n".join(b.text for b in msg.blocks if b.kind != "headers")):
            self._parse(msg, report, found)
        restated = [t for v in report.verdicts.values() if v.incidents for t in v.restated]
        incidents = merge_duplicates(found, [p.name for p in self.parsers if getattr(p, "fallback", False)], restated)
        for flt in self.filters:
            kept = []
            for inc in incidents:
                reason = _run_filter(flt, inc, report)
                if reason is None:
                    kept.append(inc)
                else:
                    report.dropped.append(Dropped(inc, flt.name, reason))
            incidents = kept
        report.incidents = incidents
        return report

    def _parse(self, msg: Message, report: Report, found: list[Incident]) -> None:
        """Every parser on the normalized message, each verdict recorded (dateparser bounded per message)."""
        for parser in self.parsers:
            try:
                verdict = parser.parse(msg)
            except (AbusoError, MemoryError):
                raise
            except BROKEN as e:
                raise internal_error(f"parser {parser.name}", e)
            except Exception as e:  # kept broad: a parser that raises on hostile input fails this message only
                verdict = Verdict(parser.name, False, f"parser failed: {type(e).__name__}: {e}")
                report.error = report.error or f"parser {parser.name} failed: {type(e).__name__}: {e}"
            report.verdicts[parser.name] = verdict
            found.extend(verdict.incidents)

    def process(self, raw: bytes, origin: str = "-") -> Report:
        """Run the whole chain on one raw message.

        Raises MessageError (quarantine this message) or TransientError (retry later; InternalError
        when abuso itself is broken). When a parser failed (``report.error``) no processor runs: a
        store or mailer must not act on half an analysis; the caller quarantines the message.
        """
        report = self.analyse(raw, origin)
        if report.error:
            return report
        for proc in self.processors:
            if isinstance(proc, _Unbuilt) or (self.preview and _side_effects(proc)):  # an _Unbuilt: preview only
                _run_stage(proc, lambda r, p=proc: r.notes.__setitem__(p.name, p.preview(r)), report)
            else:
                _run_stage(proc, proc.process, report)
        # Second pass, in order, once every processor has enriched the report: the
        # store is listed first yet must index the customers/users added after it.
        for proc in self.processors:
            finish = getattr(proc, "finish", None)  # third-party processors may lack it
            if finish is not None and not (self.preview and _side_effects(proc)):
                _run_stage(proc, finish, report)
        return report

    def hold(self) -> bool:
        """Let processors hold back their durable writes until :meth:`commit` (a batch worker's group
        commit, see Processor.hold); True when any will. Never in a preview (nothing is written)."""
        if self.preview:
            return False
        return any([getattr(proc, "hold", _no)() for proc in self.processors])   # a list: every one is asked

    @property
    def held(self) -> int:
        """Writes held back by the processors, waiting for :meth:`commit`."""
        return sum(getattr(proc, "held", 0) for proc in self.processors)

    def commit(self) -> None:
        """Commit every processor's held writes, each even after one failed; then raise the first failure
        as a TransientError (the messages whose writes were held are retried)."""
        self._each("commit", optional=True)

    def close(self) -> None:
        """Close every processor, even after one failed; then raise the first failure.

        A processor that cannot close (a last flush, a commit) may not have kept what it was
        given: that is a TransientError (retry), never silence.
        """
        self._each("close")

    def _each(self, step: str, optional: bool = False) -> None:
        """``step`` (close, commit) of every processor, even after one failed; then the first failure raised,
        as a TransientError unless it is an AbusoError already. ``optional``: a processor without it is skipped
        (third-party processors predate commit); else lacking it is that processor's failure."""
        failures: list[AbusoError] = []
        for proc in self.processors:
            if (self.preview and _side_effects(proc)) or (optional and not hasattr(proc, step)):
                continue  # a preview never opened anything: built for preview only
            try:
                getattr(proc, step)()
            except AbusoError as e:
                failures.append(e)
            except BROKEN as e:
                failures.append(internal_error(f"processor {proc.name}", e))
            except Exception as e:  # kept broad so that the other processors still get theirs; raised below
                failures.append(TransientError(f"{proc.name}: cannot {step}: {type(e).__name__}: {e}"))
        if failures:
            raise failures[0]

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self.close()
            return
        try:
            self.close()
        except AbusoError as e:  # the exception already on its way out is the one to see
            if hasattr(exc, "add_note"):
                exc.add_note(f"and closing the pipeline failed: {e}")


def _no() -> bool:
    return False


def _run_stage(proc: Any, step: Any, report: Report) -> None:
    """One processor step; failures become TransientError (I/O: retry) or MessageError (quarantine)."""
    try:
        step(report)
    except (AbusoError, MemoryError):  # MemoryError: over the message's budget, never a processor's verdict
        raise
    except BROKEN as e:
        raise internal_error(f"processor {proc.name}", e)
    except OSError as e:
        raise TransientError(f"{proc.name}: {e}")
    except Exception as e:  # kept broad: a processor (third-party ones too) failing on this report
        raise MessageError(f"processor {proc.name} failed: {type(e).__name__}: {e}")


def _run_filter(flt: Any, incident: Any, report: Report) -> str | None:
    """One filter's judgement; a filter that raises fails this message (quarantine), a broken one the run."""
    try:
        return flt.reject(incident, report)
    except (AbusoError, MemoryError):
        raise
    except BROKEN as e:
        raise internal_error(f"filter {flt.name}", e)
    except Exception as e:  # kept broad: a filter (third-party ones too) failing on this report
        raise MessageError(f"filter {flt.name} failed: {type(e).__name__}: {e}")


class _Unbuilt:
    """Stands in, in a preview, for a third-party processor that has no ``preview``."""

    side_effects = True

    def __init__(self, name: str) -> None:
        self.name = name

    def preview(self, report: Report) -> str:
        return f"would run {self.name} (not run: it does not say whether it has side effects)"

    def close(self) -> None:
        pass


def _side_effects(proc: Any) -> bool:
    """Whether a processor (class or instance) changes the world. Third-party processors that do not
    say are taken to have side effects: explain and --dry-run must never act by mistake."""
    return bool(getattr(proc, "side_effects", True))


def _parser_defaults(defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Config ``defaults`` that every parser may use (zone of naive stamps, Date fallback)."""
    return {k: defaults[k] for k in ("zone", "date_fallback") if k in defaults}
