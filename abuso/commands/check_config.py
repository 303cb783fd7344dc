"""``abuso check-config``: validate a config and print the pipeline it resolves to."""

from __future__ import annotations

import click


@click.command("check-config")
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False), envvar="ABUSO_CONFIG")
def check_config(config_path: str) -> None:
    """Validate CONFIG; exit 78 with every problem, one ``file:line: key: reason`` a line.

    Creates nothing: no store folder, no index, no state file, no cache.
    """
    from ..config import load
    from ..pipeline import Pipeline

    config = load(config_path, cache=False)  # every problem at once, each with the line of its key
    # Then read what the options name (table contents, templates) the way a run would, building
    # no processor that has side effects: the store and the mailer open nothing here.
    Pipeline(config, preview=True).close()
    click.echo(config.describe())
    click.echo("config OK")
