"""``abuso init DIR``: write a documented config, its templates and a systemd unit for this installation.

pip installs no ``etc/``: the files ship with the package (``share/abuso/etc`` in a wheel, ``etc/`` in a
source checkout) and ``init`` copies them, pointing the config's state paths at ``--state`` and the unit's
``ExecStart`` at this installation's own ``abuso`` (a virtualenv works; ``/usr/bin/env abuso`` would not).
"""

from __future__ import annotations

import shlex
import sys
import sysconfig
from pathlib import Path

import click

#: What ``init`` writes: the documented config becomes ``abuso.yaml``.
FILES = {"sample.yaml": "abuso.yaml", "good-response.txt": "good-response.txt",
         "bad-response.txt": "bad-response.txt", "networks.txt": "networks.txt", "radius.yaml": "radius.yaml",
         "abuso-watch.service": "abuso-watch.service", "abuso-lmtp.service": "abuso-lmtp.service",
         "abuso-lmtp.socket": "abuso-lmtp.socket"}


def skeleton() -> Path:
    """The folder holding the shipped files: a source checkout's ``etc/``, else the wheel's data files."""
    checkout = Path(__file__).resolve().parents[2] / "etc"
    for folder in (checkout, Path(sysconfig.get_path("data")) / "share" / "abuso" / "etc",
                   Path(sys.prefix) / "share" / "abuso" / "etc"):
        if (folder / "sample.yaml").is_file():
            return folder
    raise click.ClickException("the sample config is not installed with this abuso (share/abuso/etc is missing)")


def program() -> str:
    """The command that runs this installation's abuso, as an absolute path."""
    script = Path(sys.argv[0])
    if script.name == "abuso" and script.is_file():
        return str(script.resolve().parent / script.name) if not script.is_absolute() else str(script)
    return f"{shlex.quote(sys.executable)} -m abuso"


@click.command("init")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--state", metavar="DIR", help="Where the store, quarantine and indexes go (default: FOLDER/var).")
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
def init(folder: str, state: str | None, force: bool) -> None:
    """Write abuso.yaml (every key documented), its templates, a network table and a systemd unit to FOLDER."""
    target = Path(folder).expanduser().absolute()
    state_dir = Path(state).expanduser().absolute() if state else target / "var"
    source = skeleton()
    existing = [n for n in FILES.values() if (target / n).exists()]
    if existing and not force:
        raise click.ClickException(f"{target}: {', '.join(existing)} exist (--force overwrites)")
    target.mkdir(parents=True, exist_ok=True)
    config = target / "abuso.yaml"
    for name, out in FILES.items():
        text = (source / name).read_text(encoding="utf-8")
        text = text.replace("../var/", f"{state_dir}/")
        if name.endswith(".service"):
            text = text.replace("/usr/bin/env abuso", program()).replace("/etc/abuso/abuso.yaml", str(config))
            if not state_dir.is_relative_to("/var/lib/abuso"):   # ProtectSystem=strict: say where it writes
                text = text.replace("ReadWritePaths=/var/lib/abuso", f"ReadWritePaths={state_dir} /var/lib/abuso")
        (target / out).write_text(text, encoding="utf-8")
        click.echo(f"wrote {target / out}")
    click.echo(f"check it with: abuso check-config -c {config}")
