"""``abuso run`` and ``abuso explain``: process one piped message or a batch."""

from __future__ import annotations

from typing import Any

import click

_FORMATS = ["text", "json", "intelmq"]


def _options(f: Any) -> Any:
    for deco in reversed([
        click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), envvar="ABUSO_CONFIG",
                     help="YAML config (default: $ABUSO_CONFIG, else built-in defaults)."),
        click.option("-j", "--jobs", type=int, default=1, show_default=True,
                     help="Worker processes for a batch (0 = one per core)."),
        click.option("--files-from", type=click.Path(allow_dash=True),
                     help="Read message paths from FILE (- = stdin)."),
        click.option("--mark", is_flag=True,
                     help="Only unfinished mail, marked once its processors finished: Maildir messages move to "
                          "cur/ with the S flag; mbox messages are recorded in <mbox>.abuso-done."),
        click.option("--watch", is_flag=True, help="Mailbox reader: keep running and wait for new mail."),
        click.option("--progress/--no-progress", default=None, help="Progress line on stderr (default: if a tty)."),
        click.option("-v", "--verbose", count=True, help="Log a line per message (-vv: debug)."),
        click.option("-q", "--quiet", is_flag=True, help="Say only errors: no summary, no progress."),
        click.option("--log", metavar="stderr|syslog|journald|FILE",
                     help="Where the log goes (default: stderr with -v). syslog: facility mail; journald: "
                          "stderr with priority prefixes; FILE: appended, reopened after logrotate."),
        click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
                     help="Log exactly this level (default: info with --log or -v, else warning)."),
        click.argument("paths", nargs=-1, type=click.Path()),
    ]):
        f = deco(f)
    return f


@click.command()
@click.option("-f", "--format", "fmt", type=click.Choice(_FORMATS), default="text", show_default=True,
              help="Output: human text, JSON lines (one report per line) or IntelMQ events.")
@click.option("--dry-run", is_flag=True,
              help="Change nothing: processors with side effects (store, mailer) only say what they would do; "
                   "nothing is quarantined or marked done.")
@click.option("--lmtp", metavar="unix:PATH|HOST:PORT",
              help="Hand the message on stdin to a running 'abuso serve --lmtp' (no start-up per message); "
                   "processed here when no server takes it.")
@click.option("--lmtp-timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="With --lmtp: the whole exchange (default 300); no reply after the message was sent "
                   "exits 75.")
@_options
def run(fmt: str, lmtp: str | None, lmtp_timeout: float | None, **kw: Any) -> None:
    """Process one message from stdin (no PATH), or messages in files, folders, Maildirs and mboxes.

    Exit status: 0 done; 64 usage error; 65 some messages quarantined or unreadable; 75 temporary
    failure (the MTA retries); 78 bad config.
    """
    if lmtp is None and lmtp_timeout is not None:
        raise click.UsageError("--lmtp-timeout is for --lmtp")
    if lmtp is not None:
        given = [name for name, set_ in (("PATH", kw["paths"]), ("--files-from", kw["files_from"]),
                                         ("--mark", kw["mark"]), ("--watch", kw["watch"]),
                                         ("--dry-run", kw["dry_run"]), ("-j", kw["jobs"] != 1),
                                         ("--progress", kw["progress"] is not None)) if set_]
        if given:
            raise click.UsageError(f"--lmtp hands one message from stdin to abuso serve: not with {', '.join(given)}")
        from ..cli import run_piped

        raise click.exceptions.Exit(run_piped(
            lmtp=lmtp, lmtp_timeout=lmtp_timeout, fmt=fmt, config_path=kw["config_path"], verbose=kw["verbose"],
            quiet=kw["quiet"], log=kw["log"], log_level=kw["log_level"]))
    _run(fmt=fmt, explain=False, **kw)


@click.command()
@_options
def explain(**kw: Any) -> None:
    """Like run, but tell for every report what each parser found or why not, and what the filters dropped.

    Changes nothing: processors with side effects (store, mailer) only say what they would do.
    """
    _run(fmt="text", explain=True, **kw)


def _run(**kw: Any) -> None:
    from ..runner import execute

    files_from = kw.get("files_from")
    if files_from and files_from != "-":
        _check_readable(files_from)
    raise click.exceptions.Exit(execute(**kw))


def _check_readable(path: str) -> None:
    """``--files-from FILE`` must be a readable file: a usage error (64) now, not a crash mid-run."""
    from ..errors import UsageError

    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise UsageError(f"--files-from {path}: {e.strerror or e}")
