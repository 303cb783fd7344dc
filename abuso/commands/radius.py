"""``abuso radius``: refresh the RADIUS session index from cron, or ask who held an address.

    abuso radius -c ~/.abuso.yaml                          # refresh (cron: procmail runs then find it warm)
    abuso radius -c ~/.abuso.yaml 192.0.2.17 2026-11-24T13:05:00+01:00
"""

from __future__ import annotations

import json

import click


@click.command("radius")
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False), envvar="ABUSO_CONFIG")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Text for people, or one JSON object.")
@click.option("--json", "as_json", is_flag=True, hidden=True, help="Same as -f json (kept for old scripts).")
@click.argument("ip", required=False)
@click.argument("when", required=False)
def radius(config_path: str, fmt: str, as_json: bool, ip: str | None, when: str | None) -> None:
    """Refresh the index of the config's radius processor; with IP and WHEN (ISO 8601, UTC if no
    offset), say which user held IP then."""
    import ipaddress

    from ..config import load
    from .query import parse_when

    as_json = as_json or fmt == "json"
    from ..processors.radius import RadiusProcessor

    if (ip is None) != (when is None):
        raise click.UsageError("give both IP and WHEN, or neither")
    proc = RadiusProcessor.for_config(load(config_path))
    try:
        out: dict = proc.refresh()
        if ip is not None and when is not None:
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                raise click.UsageError(f"{ip!r} is not an IP address")
            out.update(proc.who(addr, parse_when(when, "WHEN")))
        if as_json:
            click.echo(json.dumps(out))
            return
        if out["refresh"]:
            r = out["refresh"]
            click.echo(f"index {out['index']}: {r.get('files_read', 0)} of {r.get('files', 0)} files read, "
                       f"{r.get('events', 0)} events, {r.get('corrupt', 0)} corrupt records"
                       + (f", unreadable: {'; '.join(r['unreadable'])}" if r.get("unreadable") else "")
                       + (f" ({r['stale']})" if r.get("stale") else ""))
        if "result" in out:
            click.echo(f"{out['ip']} at {out['time']}: {out['result']}: {', '.join(map(str, out['users'])) or '-'}")
            click.echo(f"  {out['reason']}")
            for s in out["sessions"]:
                click.echo(f"  {s['user']}: session {s['session']} on {s['nas'] or '?'}, {s['start']} .. "
                           f"{s['stop'] or 'no Stop, last seen ' + s['last_seen']}"
                           f" [{', '.join(s['networks'])}]")
    finally:
        proc.close()
