"""``abuso check-config``: validate a config and print the pipeline it resolves to."""

from __future__ import annotations

import click


@click.command("check-config")
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False), envvar="ABUSO_CONFIG")
def check_config(config_path: str) -> None:
    """Validate CONFIG; exit 78 with file:line: key: reason when it is wrong."""
    from ..config import load
    from ..pipeline import Pipeline

    config = load(config_path)
    Pipeline(config).close()  # builds every stage: table files, networks, templates are checked too
    click.echo(config.describe())
    click.echo("config OK")
