"""Errors with exit statuses (sysexits.h) and one-line messages."""

from __future__ import annotations

from email.errors import MessageError as _EmailError

EX_OK = 0
EX_DATAERR = 65
EX_TEMPFAIL = 75
EX_CONFIG = 78


class AbusoError(Exception):
    """Base: carries the exit status the command line uses."""

    status = 1


class ConfigError(AbusoError):
    """A bad config: the message names file, line and key."""

    status = EX_CONFIG

    def __init__(self, message: str, file: str | None = None, line: int | None = None, key: str | None = None):
        self.file, self.line, self.key, self.bare = file, line, key, message
        where = ""
        if file:
            where = f"{file}:{line}: " if line else f"{file}: "
        if key:
            where += f"{key}: "
        super().__init__(where + message)


class ConfigErrors(ConfigError):
    """Every problem of a config at once, one ``file:line: key: reason`` per line (in file order).

    ``file``, ``line``, ``key`` and ``bare`` are those of the first problem.
    """

    def __init__(self, errors: list[ConfigError]):
        self.errors = sorted(errors, key=lambda e: (e.file or "", e.line or 0))
        first = self.errors[0]
        super().__init__(first.bare, first.file, first.line, first.key)
        self.args = ("\n".join(str(e) for e in self.errors),)

    def __str__(self) -> str:
        return self.args[0]


class UsageError(AbusoError):
    """The command line asks for something that cannot be done (EX_USAGE)."""

    status = 64


class TransientError(AbusoError):
    """Worth a retry: the MTA should try again later (procmail: exit 75)."""

    status = EX_TEMPFAIL


class MessageError(AbusoError):
    """This message cannot be handled: quarantine it and go on."""

    status = EX_DATAERR


class InternalError(TransientError):
    """abuso itself cannot work: a module missing from the install, or a bug any message would hit.

    Not a verdict on the message (it is not quarantined): the run says so in one line and exits 75,
    so the MTA keeps the mail until the install is fixed.
    """


#: Failures that say nothing about the message at hand: the install is broken (a module missing or
#: unreadable) or the code has a bug that does not depend on the input (a misspelt name). Taking them
#: for bad mail would quarantine every message behind a one-line install problem.
BROKEN = (ImportError, NameError, SyntaxError)

#: What the stdlib's parsers (``email``, ``html.parser``) may raise on hostile headers, markup and MIME, their
#: own bugs included (IndexError, AttributeError, AssertionError are seen in the wild). Catch this,
#: not ``Exception``, around header, part and markup accessors, so that anything else (ImportError,
#: NameError, MemoryError) reaches the pipeline, which tells a broken install from a bad message.
INPUT_ERRORS = (_EmailError, ValueError, TypeError, LookupError, AttributeError, AssertionError, RecursionError)

#: The distribution to install for a module abuso imports (pip names), for the one-line hint.
_DISTRIBUTIONS = {"yaml": "PyYAML", "psycopg": "psycopg[binary]"}


def internal_error(where: str, e: BaseException) -> InternalError:
    """A one-line InternalError for ``e`` raised in ``where`` (a stage, "the normalizer")."""
    if isinstance(e, ImportError):
        module = (e.name or "").partition(".")[0] or "?"
        dist = _DISTRIBUTIONS.get(module, module)
        return InternalError(f"broken installation: {where} cannot import {module!r} ({_one_line(e)}); "
                             f"install it (pip install '{dist}') or reinstall abuso with its dependencies")
    frame = ""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        frame = f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
    return InternalError(f"internal error in {where}: {type(e).__name__}: {_one_line(e)}{frame} "
                         "(a bug in the code, not in the message; please report this)")


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300]
