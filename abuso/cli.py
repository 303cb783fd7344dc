"""The ``abuso`` command. Sub-commands are imported only when called (start-up is per message).

The procmail form, ``abuso run -c CONFIG [-f FORMAT]`` with the message on
stdin, is recognised before click is imported: every piped message pays for
start-up, and click alone costs ~17 ms of it. With ``--lmtp WHERE`` the message goes
to a running ``abuso serve`` (abuso.lmtpclient), and then nothing else is imported: no
``from __future__ import annotations`` here (annotations naming typing's names are strings).
"""

import sys

from . import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any

COMMANDS = {
    "run": "abuso.commands.run:run",
    "explain": "abuso.commands.run:explain",
    "check-config": "abuso.commands.check_config:check_config",
    "query": "abuso.commands.query:query",
    "radius": "abuso.commands.radius:radius",
    "init": "abuso.commands.init:init",
    "stats": "abuso.commands.stats:stats",
    "notify": "abuso.commands.notify:notify",
    "serve": "abuso.commands.serve:serve",
}

_FORMATS = ("text", "json", "intelmq")

#: What the procmail path imports only when it is used (abuso.lazy.import_deferring): dataclasses'
#: inspect (a docstring for a class without one, ~15 ms), email.utils' socket and random (make_msgid only,
#: ~5 ms), email._parseaddr's calendar (with locale; mktime_tz only, ~3 ms). logging is not imported unless
#: something is to be logged (abuso.logs), and then without its traceback.
_DEFERRED = (("dataclasses", ("inspect",)), ("email._parseaddr", ("calendar",)), ("email.utils", ("socket", "random")))


def _group() -> "Any":
    import click

    class LazyGroup(click.Group):
        def list_commands(self, ctx: click.Context) -> list[str]:
            return sorted(COMMANDS)

        def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
            spec = COMMANDS.get(name)
            if spec is None:
                return None
            import importlib

            module, _, attr = spec.partition(":")
            return getattr(importlib.import_module(module), attr)

    @click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, "-V", "--version", message="abuso %(version)s")
    def cli() -> None:
        """Turn the mail arriving at an abuse@ mailbox into incidents."""

    return cli


def piped_args(argv: list[str]) -> "dict[str, Any] | None":
    """The options of ``run -c CONFIG [-f FORMAT] [-v|-q] [--log T] [--log-level L] [--lmtp WHERE
    [--lmtp-timeout S]]`` (nothing else), or None for the full parser."""
    if not argv or argv[0] != "run":
        return None
    found: dict[str, Any] = {}
    rest = argv[1:]
    while rest:
        opt = rest[0]
        if opt in ("-v", "-vv", "--verbose"):
            found["verbose"] = found.get("verbose", 0) + (2 if opt == "-vv" else 1)
            rest = rest[1:]
            continue
        if opt in ("-q", "--quiet"):
            found["quiet"] = True
            rest = rest[1:]
            continue
        name, eq, value = opt.partition("=")
        key = {"-c": "config_path", "--config": "config_path", "-f": "fmt", "--format": "fmt",
               "--log": "log", "--log-level": "log_level", "--lmtp": "lmtp", "--lmtp-timeout": "lmtp_timeout"}.get(name)
        if key is None or key in found:
            return None
        if not eq:
            if len(rest) < 2:
                return None
            value, rest = rest[1], rest[2:]
        else:
            rest = rest[1:]
        found[key] = value
    if "config_path" not in found or found.get("fmt", "text") not in _FORMATS or found["config_path"].startswith("-"):
        return None
    if "lmtp_timeout" in found:     # a bad one, or one without --lmtp: click says what is wrong
        try:
            found["lmtp_timeout"] = float(found["lmtp_timeout"])
        except ValueError:
            return None
        if "lmtp" not in found or not found["lmtp_timeout"] > 0:
            return None
    return found


def main() -> None:
    """Console entry point: no traceback ever reaches the user."""
    status: Any = 0
    try:
        fast = piped_args(sys.argv[1:])
        status = run_piped(**fast) if fast is not None else _click_main()
    except KeyboardInterrupt:
        sys.stderr.write("abuso: interrupted\n")
        sys.exit(75)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as e:  # kept broad: the last resort; a bug or broken install in one line, the MTA retries
        # Imported here: the LMTP client's path (abuso.lmtpclient) imports no email package (errors does).
        from .errors import AbusoError, internal_error

        if isinstance(e, AbusoError):  # one line per problem (a config may have several, each file:line: key: reason)
            sys.stderr.write("".join(f"abuso: {line}\n" for line in str(e).splitlines() or [""]))
            sys.exit(e.status)
        sys.stderr.write(f"abuso: {internal_error('abuso', e)}\n")
        sys.exit(75)
    sys.exit(status if isinstance(status, int) else 0)


def run_piped(lmtp: str | None = None, lmtp_timeout: float | None = None, **options: "Any") -> int:
    """One message on stdin: handed to ``abuso serve`` with ``lmtp`` (see abuso.lmtpclient), else, or when
    no server takes it, processed here (:func:`abuso.runner.execute` with ``options``)."""
    stream = None
    if lmtp is not None:
        from .lmtpclient import Prefixed, UsageError, deliver

        try:
            status, head = deliver(lmtp, lmtp_timeout, verbose=options.get("verbose", 0),
                                   quiet=bool(options.get("quiet")))
        except UsageError as e:
            sys.stderr.write(f"abuso: {e}\n")
            return 64
        if status is not None:
            return status
        if head is not None:
            stream = Prefixed(head, sys.stdin.buffer)
    from .lazy import import_deferring
    from .startcache import install

    # Before the runner's imports (see import_deferring). install() keeps compiled regexes and
    # dataclass methods between piped messages: after dataclasses (it uses it), before the
    # email package (whose patterns it keeps).
    import_deferring(*_DEFERRED[0])
    install()
    for module, deferred in _DEFERRED[1:]:
        import_deferring(module, deferred)
    from .runner import execute

    return execute(**options, stream=stream)


def _click_main() -> "Any":
    import click

    try:
        # With standalone_mode=False click returns the status of click.exceptions.Exit.
        return _group().main(standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.UsageError as e:  # one line, as every other error: what is wrong and where to look
        command = e.ctx.command_path if e.ctx is not None else "abuso"
        click.echo(f"abuso: {e.format_message()} (see '{command} --help')", err=True)
        return 64
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("abuso: interrupted", err=True)
        return 75


# ``cli`` for tests and tools that want the click group itself (e.g. click.testing.CliRunner).
def __getattr__(name: str) -> "Any":
    if name == "cli":
        return _group()
    raise AttributeError(name)
