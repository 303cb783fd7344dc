"""``abuso serve``: a long-running LMTP server the MTA delivers abuse@ mail to."""

from __future__ import annotations

from typing import Any

import click


@click.command("serve")
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False), envvar="ABUSO_CONFIG",
              help="The abuso config (SIGHUP reloads it).")
@click.option("--lmtp", "listen", required=True, metavar="unix:PATH|HOST:PORT|systemd",
              help="Where to listen: a Unix socket, a TCP address, or the socket systemd passes.")
@click.option("-j", "--jobs", type=int, default=0, show_default=True,
              help="Worker processes (0 = one per core).")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json", "intelmq"]), default="json",
              show_default=True, help="What is written to stdout for each message.")
@click.option("--socket-mode", default="0660", show_default=True, metavar="MODE",
              help="Permissions of a unix: socket (octal); the MTA's user must be able to connect.")
@click.option("-v", "--verbose", count=True, help="Log a line per message (-vv: debug).")
@click.option("-q", "--quiet", is_flag=True, help="Log only errors.")
@click.option("--log", metavar="stderr|syslog|journald|FILE", help="Where the log goes (default: stderr).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]))
def serve(config_path: str, listen: str, jobs: int, fmt: str, socket_mode: str, verbose: int, quiet: bool,
          log: str | None, log_level: str | None, **_: Any) -> None:
    """Serve LMTP (RFC 2033): each message is answered after its processors finished (250), or 451 on a
    transient failure so the MTA retries, or 552 when it is over defaults.max_bytes.

    SIGTERM finishes what is in flight and exits 0; SIGHUP reloads the config (a broken one is refused and
    the old one kept). Exit 78 on a bad config at start.
    """
    from ..logs import setup
    from ..runner import cpu_count
    from ..serve import serve as run

    try:
        mode = int(socket_mode, 8)
    except ValueError:
        raise click.UsageError(f"--socket-mode {socket_mode!r} is not an octal mode such as 0660")
    setup(log or "stderr", verbose, quiet, log_level)
    raise click.exceptions.Exit(run(config_path, listen, jobs if jobs > 0 else cpu_count(), fmt,
                                    socket_mode=mode))
