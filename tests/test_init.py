"""``abuso init``: a pip user gets a working config, templates and a systemd unit for this installation."""

from __future__ import annotations

import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ABUSO = [sys.executable, "-m", "abuso"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*ABUSO, *args], capture_output=True, text=True, timeout=120)


def test_init_writes_a_config_that_checks_and_a_unit_that_runs_this_abuso(tmp_path: Path) -> None:
    target, state = tmp_path / "etc-abuso", tmp_path / "state"
    r = run("init", str(target), "--state", str(state))
    assert r.returncode == 0, r.stderr
    config = target / "abuso.yaml"
    assert {p.name for p in target.iterdir()} == {"abuso.yaml", "good-response.txt", "bad-response.txt",
                                                  "networks.txt", "radius.yaml", "abuso-watch.service",
                                                  "abuso-lmtp.service", "abuso-lmtp.socket"}
    assert "../var/" not in config.read_text()
    assert f"quarantine: {state}/quarantine" in config.read_text()
    check = run("check-config", "-c", str(config))
    assert check.returncode == 0, check.stderr
    assert not state.exists()                       # check-config creates nothing
    unit = (target / "abuso-watch.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    words = shlex.split(exec_start.removeprefix("ExecStart="))
    assert words[0].startswith("/") and "/usr/bin/env" not in exec_start
    assert words[words.index("-c") + 1] == str(config)
    version = subprocess.run([*words[:words.index("run")], "-V"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("abuso ")
    assert f"ReadWritePaths={state} " in unit
    assert "Environment=HOME=/var/lib/abuso" in unit


def test_init_never_overwrites_without_force(tmp_path: Path) -> None:
    assert run("init", str(tmp_path)).returncode == 0
    (tmp_path / "abuso.yaml").write_text("# mine\n")
    again = run("init", str(tmp_path))
    assert again.returncode == 1
    assert "abuso.yaml" in again.stderr and "--force" in again.stderr
    assert (tmp_path / "abuso.yaml").read_text() == "# mine\n"
    assert run("init", str(tmp_path), "--force").returncode == 0
    assert (tmp_path / "abuso.yaml").read_text() != "# mine\n"


def test_the_wheel_ships_what_init_copies(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (wheel,) = tmp_path.glob("abuso-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    from abuso.commands.init import FILES

    for name in FILES:
        assert any(n.endswith(f".data/data/share/abuso/etc/{name}") for n in names), name
    assert any(n.endswith("/LICENSE") for n in names)
