"""``abuso notify``: per-customer digests of the incidents not yet notified (from cron)."""

from __future__ import annotations

import click

from .query import _load, customer_ids, parse_when


@click.command("notify")
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False), envvar="ABUSO_CONFIG",
              help="The abuso config: its store holds the incidents, its notify section says how to write.")
@click.option("--since", metavar="TIME", help="Only incidents at or after TIME (2026-11-01, 7d).")
@click.option("--customer", metavar="C", help="Only this customer (the table's id or name).")
@click.option("--dry-run", is_flag=True, help="Say what would be sent; send and record nothing.")
def notify(config_path: str, since: str | None, customer: str | None, dry_run: bool) -> None:
    """Send each customer one mail listing its incidents not yet notified (a CSV of them attached).

    A ledger in the store records what was sent: a second run sends nothing twice, a failed send is
    retried next run. Exit status: 0 done, 65 a server refused a digest, 75 a transient failure
    (retried next run), 78 bad config.
    """
    from ..notify.run import Notifier
    from ..processors.store import open_store

    cfg = _load(config_path)
    store = open_store(next(s for s in cfg.processors if s.name == "store").options, cfg.base, create=False)
    try:
        notifier = Notifier(cfg, store, dry_run=dry_run)
        try:
            result = notifier.run(since=parse_when(since, "--since") if since else None,
                                  customers=customer_ids(cfg, customer) if customer else None)
        finally:
            notifier.close()
    finally:
        store.close()
    for line in result.lines:
        click.echo(f"notify: {line}")
    click.echo(f"notify: {result.sent} digests sent ({result.incidents} incidents), {result.waiting} waiting, "
               f"{result.skipped} skipped, {result.transient + result.refused} to retry", err=True)
    raise click.exceptions.Exit(result.status)
