"""A throwaway Dovecot (IMAP + POP3, plain, STARTTLS and implicit TLS) for the reader tests.

One server per test session, on free 127.0.0.1 ports, with its own config, passwd-file, Maildirs and a test CA
made with ``openssl``. Each test gets a fresh user (a fresh mailbox), so tests never see each other's mail.
The system dovecot service is neither used nor touched.
"""

from __future__ import annotations

import atexit
import grp
import imaplib
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

DOVECOT = shutil.which("dovecot") or next(
    (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.path.exists(p)), None)


@dataclass
class User:
    name: str
    password: str
    server: Dovecot

    def imap(self) -> imaplib.IMAP4:
        """A plain-text session for seeding and inspecting the mailbox (the reader under test uses its own)."""
        conn = imaplib.IMAP4("127.0.0.1", self.server.ports["imap"], timeout=10)
        conn.login(self.name, self.password)
        return conn

    def append(self, *messages: bytes, folder: str = "INBOX") -> None:
        conn = self.imap()
        try:
            for raw in messages:
                typ, data = conn.append(folder, None, None, raw)
                assert typ == "OK", data
        finally:
            conn.logout()

    def folder(self, name: str) -> list[bytes]:
        """The raw messages in a folder, in UID order ([] when the folder does not exist)."""
        conn = self.imap()
        try:
            typ, _ = conn.select(_quote(name), readonly=True)
            if typ != "OK":
                return []
            typ, data = conn.uid("SEARCH", "ALL")
            uids = data[0].split()
            out = []
            for uid in uids:
                typ, data = conn.uid("FETCH", uid, "(BODY.PEEK[])")
                # a worker may move it away between SEARCH and FETCH: then it is not in the folder any more
                out.extend(part[1] for part in data if isinstance(part, tuple))
            return out
        finally:
            conn.logout()

    def logins(self, protocol: str) -> int:
        """How many ``protocol`` ("imap", "pop3") sessions the server has logged in for this user (its log):
        a readiness signal, so that tests wait for a reader to be connected instead of sleeping."""
        return self.server.log().count(f"{protocol}-login: Info: Login: user=<{self.name}>,")

    def logouts(self, protocol: str) -> int:
        """How many ``protocol`` sessions of this user have ended (a POP3 poll is one session)."""
        return len(re.findall(rf"{protocol}\({re.escape(self.name)}\)<[^>]*><[^>]*>: Info: Disconnected",
                              self.server.log()))

    def folders(self) -> list[str]:
        conn = self.imap()
        try:
            typ, data = conn.list()
            names = []
            for line in data:
                m = re.match(r'\(.*?\) (?:"(?:[^"\\]|\\.)*"|NIL) (.*)$', line.decode())
                assert m, line
                names.append(m.group(1)[1:-1] if m.group(1).startswith('"') else m.group(1))
            return sorted(names)
        finally:
            conn.logout()

    def flags(self, folder: str = "INBOX") -> list[str]:
        conn = self.imap()
        try:
            conn.select(_quote(folder), readonly=True)
            typ, data = conn.uid("FETCH", "1:*", "(FLAGS)")
            return [d.decode() for d in data if d]
        finally:
            conn.logout()

    def options(self, **extra: object) -> dict:
        """Reader options for this user over implicit TLS, trusting the test CA."""
        env = f"ABUSO_TEST_PW_{self.name.upper()}"
        os.environ[env] = self.password
        opts = {"host": "127.0.0.1", "port": self.server.ports["imaps"], "ssl": True,
                "ca_file": str(self.server.ca), "user": self.name, "password_env": env}
        opts.update(extra)
        return opts


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(cwd: Path, name: str) -> None:
    """A CA certificate and key: ``name.crt``, ``name.key``."""
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN=abuso test {name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=cwd)


def make_server_cert(cwd: Path, ca: str, name: str) -> None:
    """A server certificate for IP 127.0.0.1 only (so ``localhost`` is a name mismatch), signed by ``ca``."""
    (cwd / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                                     "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", "/CN=127.0.0.1", cwd=cwd)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=cwd)


class Dovecot:
    """``dovecot -F`` with a config in a temp dir; ``stop()`` kills it and removes the dir."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="abuso-dovecot-"))
        os.chmod(self.root, 0o755)  # mail processes run as an unprivileged user when we are root
        self.ports = dict(zip(("imap", "imaps", "pop3", "pop3s"), _free_ports(4), strict=True))
        self.proc: subprocess.Popen | None = None
        self.users = 0
        self.ca = self.root / "ca.crt"
        self.other_ca = self.root / "other.crt"

    def start(self) -> Dovecot:
        root = self.root
        make_ca(root, "ca")
        make_ca(root, "other")
        make_server_cert(root, "ca", "server")
        if os.geteuid() == 0:
            mail = pwd.getpwnam("dovecot") if _has_user("dovecot") else pwd.getpwnam("nobody")
            login = "dovenull" if _has_user("dovenull") else mail.pw_name
            internal = "dovecot" if _has_user("dovecot") else mail.pw_name
        else:  # everything runs as us
            mail = pwd.getpwuid(os.getuid())
            login = internal = mail.pw_name
        group = grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name
        self.uid, self.gid = mail.pw_uid, mail.pw_gid
        for sub in ("run", "state", "mail", "home"):
            (root / sub).mkdir()
        for sub in ("mail", "home"):
            os.chown(root / sub, self.uid, self.gid) if os.geteuid() == 0 else None
        self._pool = [User(f"u{i}x{secrets.token_hex(3)}", secrets.token_urlsafe(12), self) for i in range(1, 201)]
        self._pool[-1].password = "pässwört-" + secrets.token_hex(4)  # for new_user(unicode=True)
        (root / "passwd").write_text(encoding="utf-8", data="".join(
            f"{u.name}:{{PLAIN}}{u.password}:{self.uid}:{self.gid}::{root}/home/{u.name}::\n" for u in self._pool))
        p = self.ports
        (root / "dovecot.conf").write_text(f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/server.crt
ssl_key = <{root}/server.key
auth_mechanisms = plain login
disable_plaintext_auth = no
auth_failure_delay = 0
default_login_user = {login}
default_internal_user = {internal}
default_internal_group = {group}
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
mail_max_userip_connections = 50
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {p['imap']}
  }}
  inet_listener imaps {{
    port = {p['imaps']}
    ssl = yes
  }}
}}
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    port = {p['pop3']}
  }}
  inet_listener pop3s {{
    port = {p['pop3s']}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
""")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(root / "dovecot.conf")],
                                     stdout=subprocess.DEVNULL, stderr=open(root / "stderr", "wb"))
        deadline = time.monotonic() + 20
        while True:
            try:
                for port in self.ports.values():
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop(keep=True)
                    raise RuntimeError(f"dovecot did not start:\n{self.log()}\n{(root / 'stderr').read_text()}")
                time.sleep(0.05)
        return self

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def new_user(self, unicode: bool = False) -> User:
        """A user with an empty mailbox and a random password (from a pool written before start: Dovecot
        notices a changed passwd-file by its mtime, which a fast test suite changes twice in one second)."""
        if unicode:
            return self._pool[-1]
        self.users += 1
        return self._pool[self.users - 1]

    def maildir(self, user: User) -> Path:
        return self.root / "mail" / user.name

    def stop(self, keep: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


_server: Dovecot | None = None


def server() -> Dovecot:
    """The session's Dovecot, started on first use and stopped when the test process exits."""
    global _server
    if DOVECOT is None:
        pytest.skip("dovecot binary not found (Debian: apt-get install dovecot-imapd dovecot-pop3d; "
                    "see .ci/install-dovecot.sh)")
    if shutil.which("openssl") is None:
        pytest.skip("openssl not found: needed to make the test server's certificate")
    if _server is None:
        _server = Dovecot().start()
        atexit.register(_server.stop)
    return _server


# -- a worker in a subprocess: the real runner and reader, a processor that records (and can be slow or die) --


class Record:
    """Test processor: appends ``sha256 pid message-id`` to ``log`` (fsync'd: it plays the store), after ``delay``
    seconds; SIGKILLs its own process on a message containing ``die_on``."""

    name = "record"

    def __init__(self, options: dict | None = None, base: Path | None = None) -> None:
        self.options = dict(options or {})

    def process(self, report) -> None:  # type: ignore[no-untyped-def]
        import hashlib
        import signal

        die_on = self.options.get("die_on")
        if die_on and die_on.encode() in report.raw:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(float(self.options.get("delay", 0)))
        fd = os.open(self.options["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{hashlib.sha256(report.raw).hexdigest()} {os.getpid()} {report.message_id}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        pass


def run_worker(spec: dict) -> int:
    """``python -m tests.dovecot SPEC.json``: {reader: {imap|pop3: options}, record: {...}, quarantine, jobs,
    store: path or null (then the real store processor runs first, deduplicating by sha256)}."""
    import io

    from abuso import registry
    from abuso.config import load
    from abuso.runner import Runner

    registry.BUILTINS["processors"]["record"] = "tests.dovecot:Record"
    processors = [{"store": {"path": spec["store"]}}] if spec.get("store") else []
    config = load({"parsers": [], "processors": processors + [{"record": spec["record"]}],
                   "reader": spec["reader"], "quarantine": spec["quarantine"]})
    assert config.reader is not None
    reader = registry.load("readers", config.reader.name)(config.reader.options)
    summary = Runner(config, reader, jobs=spec.get("jobs", 1), out=io.StringIO(), progress=False).run()
    return summary.status


def worker(tmp: Path, reader: dict, record: dict, jobs: int = 1, store: Path | None = None) -> subprocess.Popen:
    """Start ``run_worker`` in a new Python process (stderr kept in ``tmp/worker-<pid>.err``)."""
    import json

    spec = tmp / f"spec-{secrets.token_hex(4)}.json"
    spec.write_text(json.dumps({"reader": reader, "record": record, "jobs": jobs,
                                "quarantine": str(tmp / "quarantine"), "store": str(store) if store else None}))
    err = open(tmp / f"{spec.stem}.err", "wb")
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.Popen([__import__("sys").executable, "-m", "tests.dovecot", str(spec)], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=err)


def stored(store: Path) -> list[str]:
    """The sha256 of every raw message the store kept (one .eml per stored report, duplicates would show)."""
    import hashlib

    return sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in store.rglob("*.eml"))


def recorders(log: Path) -> set[str]:
    """The pids of the processes that recorded messages."""
    return {line.split()[1] for line in log.read_text().splitlines()} if log.exists() else set()


def recorded(log: Path) -> list[str]:
    """The sha256 of every message the Record processor finished, in order (duplicates kept)."""
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []


if __name__ == "__main__":
    import json
    import sys

    raise SystemExit(run_worker(json.loads(Path(sys.argv[1]).read_text())))
