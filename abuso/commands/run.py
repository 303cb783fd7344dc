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
@_options
def run(fmt: str, **kw: Any) -> None:
    """Process one message from stdin (no PATH), or messages in files, folders, Maildirs and mboxes.

    Exit status: 0 done; 64 usage error; 65 some messages quarantined or unreadable; 75 temporary
    failure (the MTA retries); 78 bad config.
    """
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
