"""A throwaway PostgreSQL server for the tests: initdb + pg_ctl in a temp dir, 127.0.0.1, a free port.

Import the fixtures into a test module (``from tests.pg import pg_server, pg_url``).
PostgreSQL refuses to run as root, so as root the cluster belongs to the
``postgres`` system user and its commands go through ``runuser``. The tests skip,
saying why, only when no PostgreSQL binaries can be found.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

import pytest

PASSWORD = "t3st-only-" + uuid.uuid4().hex[:8]


def find_bindir() -> Path | None:
    """Where initdb/pg_ctl/postgres live: PATH first, then Debian's versioned folders (newest first).

    Debian's pg_wrapper may stand for initdb on PATH: a folder counts only if it holds all three.
    """
    def complete(folder: Path) -> bool:
        return all(os.access(folder / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres"))

    found = shutil.which("initdb")
    if found and complete(Path(os.path.realpath(found)).parent):
        return Path(os.path.realpath(found)).parent

    def version(folder: str) -> tuple[int, ...]:
        digits = Path(folder).parent.name.split(".")
        return tuple(int(d) for d in digits if d.isdigit())

    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if complete(Path(candidate)):
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="abuso-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no 'postgres' user to run PostgreSQL as")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        cmd = self.as_user + [str(self.bindir / args[0]), *args[1:]]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.as_user:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        # TCP needs the password (as in production); the socket in our temp dir is trusted.
        self._run("initdb", "-D", str(self.data), "-U", "abuso", "--auth-local=trust", "--auth-host=scram-sha-256",
                  f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C", "--no-sync")
        for attempt in range(3):  # the free port may be taken by someone else before we bind it
            opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off -c shared_buffers=16MB -c max_connections=20")
            try:
                self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.root / "log"), "-w", "-t", "60",
                          "start")
                return
            except RuntimeError:
                if attempt == 2:
                    logfile = self.root / "log"
                    log = logfile.read_text(errors="replace")[-2000:] if logfile.exists() else ""
                    raise RuntimeError(f"PostgreSQL did not start; its log ends:\n{log}")
                self.port = _free_port()

    def url(self, db: str = "postgres", password: bool = True) -> str:
        return f"postgresql://abuso{':' + PASSWORD if password else ''}@127.0.0.1:{self.port}/{db}"

    def create_database(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except Exception:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary]')")
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; run .ci/install-postgres.sh")
    server = PgServer(bindir)
    try:
        server.start()
    except Exception:
        server.stop()
        raise
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh, empty database on the throwaway server, for one test."""
    return pg_server.create_database()
