"""The ``abuso`` command. Sub-commands are imported only when called (start-up is per message)."""

from __future__ import annotations

import importlib
import sys

import click

from . import __version__

COMMANDS = {
    "run": "abuso.commands.run:run",
    "explain": "abuso.commands.run:explain",
    "check-config": "abuso.commands.check_config:check_config",
    "query": "abuso.commands.query:query",
    "radius": "abuso.commands.radius:radius",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        spec = COMMANDS.get(name)
        if spec is None:
            return None
        module, _, attr = spec.partition(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, message="abuso %(version)s")
def cli() -> None:
    """Turn the mail arriving at an abuse@ mailbox into incidents."""


def main() -> None:
    """Console entry point: no traceback ever reaches the user."""
    from .errors import AbusoError

    try:
        # With standalone_mode=False click returns the status of click.exceptions.Exit.
        status = cli.main(standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(64 if isinstance(e, click.UsageError) else e.exit_code)
    except click.exceptions.Abort:
        click.echo("abuso: interrupted", err=True)
        sys.exit(75)
    except AbusoError as e:
        click.echo(f"abuso: {e}", err=True)
        sys.exit(e.status)
    except KeyboardInterrupt:
        click.echo("abuso: interrupted", err=True)
        sys.exit(75)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as e:  # a bug: say so in one line, ask for a report, and let the MTA retry
        click.echo(f"abuso: internal error: {type(e).__name__}: {e} (please report this)", err=True)
        sys.exit(75)
    sys.exit(status if isinstance(status, int) else 0)
