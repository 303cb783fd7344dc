"""Errors with exit statuses (sysexits.h) and one-line messages."""

from __future__ import annotations

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


class UsageError(AbusoError):
    """The command line asks for something that cannot be done (EX_USAGE)."""

    status = 64


class TransientError(AbusoError):
    """Worth a retry: the MTA should try again later (procmail: exit 75)."""

    status = EX_TEMPFAIL


class MessageError(AbusoError):
    """This message cannot be handled: quarantine it and go on."""

    status = EX_DATAERR
