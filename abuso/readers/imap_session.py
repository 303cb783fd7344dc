"""One logged-in IMAP session and the folder operations the reader, its claims and its moves share.

Login (LOGIN, or SASL PLAIN for non-ASCII), capabilities, the hierarchy separator; SELECT that notices a changed
UIDVALIDITY (remembered in the state file); SEARCH, sizes, FETCH that never sets ``\\Seen``; MOVE (or COPY,
STORE ``\\Deleted``, EXPUNGE on servers without it) that says whether anything was there to move; flags; the
conditional STORE (CONDSTORE ``UNCHANGEDSINCE``) that claims are made of. A broken connection is :class:`Lost`.
"""

from __future__ import annotations

import base64
import hashlib
import imaplib
import logging
import re
import ssl
from typing import Any

from ..errors import ConfigError, TransientError
from .imap_wire import Connection, Lost, open_connection
from .mailbox_state import MailboxState, password_key, read_password, redact, tls_context

log = logging.getLogger("abuso.reader.imap")


def is_flag(target: str) -> bool:
    """``\\Seen`` (a system flag) or ``$AbusoDone`` (a keyword) mean flag in place; anything else is a folder."""
    return target.startswith("\\") or target.startswith("$")


def mutf7(name: str) -> str:
    """A folder name as IMAP spells it on the wire: modified UTF-7 (RFC 3501 5.1.3), ``Prüfung`` -> ``Pr&APw-fung``."""
    out: list[str] = []
    wide: list[str] = []

    def shift() -> None:
        if wide:
            b64 = base64.b64encode("".join(wide).encode("utf-16-be")).decode().rstrip("=").replace("/", ",")
            out.append(f"&{b64}-")
            wide.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            shift()
            out.append("&-" if ch == "&" else ch)
        else:
            wide.append(ch)
    shift()
    return "".join(out)


def quoted(name: str) -> str:
    """A quoted IMAP string (folder names may hold spaces)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _uids(typ: str, data: list[Any]) -> list[int]:
    return sorted(int(x) for x in (data[0] or b"").split()) if typ == "OK" and data else []


class ImapSession:
    """The account's connection (``conn`` is None while there is none) and the folder operations on it."""

    def __init__(self, options: dict[str, Any], host: str, port: int, tls: Any, user: str, timeout: float,
                 account: str, state: MailboxState) -> None:
        self.options, self.host, self.port, self.tls, self.user = options, host, port, tls, user
        self.timeout, self.account, self.state = timeout, account, state
        self.conn: Connection | None = None
        self.caps: set[str] = set()
        self.sep = "/"
        self.selected: str | None = None
        self.uidvalidity = 0
        self._password: str | None = None

    # -- connecting --------------------------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect and log in; a refused login or certificate is a ConfigError, the network a TransientError."""
        self._password = read_password(self.options)
        ctx = tls_context(self.options) if self.tls else None
        where = f"imap {self.host}:{self.port}"
        try:
            conn = open_connection(self.host, self.port, self.tls is True, ctx, self.timeout)
            if self.tls == "starttls":
                if "STARTTLS" not in conn.capabilities:
                    conn.shutdown()
                    raise ConfigError(f"{where}: the server offers no STARTTLS", key="ssl")
                conn.starttls(ctx)
        except ssl.SSLCertVerificationError as e:
            raise ConfigError(f"{where}: TLS certificate refused: {e.verify_message}; to trust a private CA set "
                              "ca_file", key="ca_file")
        except (OSError, imaplib.IMAP4.error) as e:
            raise TransientError(f"{where}: cannot connect: {e}")
        try:
            if self._password.isascii() and self.user.isascii():
                conn.login(self.user, self._password)
            else:  # LOGIN is ASCII-only; SASL PLAIN carries UTF-8 (RFC 4616)
                secret = f"\0{self.user}\0{self._password}".encode()
                conn.authenticate("PLAIN", lambda _: secret)
        except imaplib.IMAP4.abort as e:
            raise TransientError(f"{where}: connection lost at login: {redact(str(e), self._password)}")
        except imaplib.IMAP4.error as e:
            said = redact(str(e), self._password)
            conn.shutdown()
            if "UNAVAILABLE" in said or "INUSE" in said:
                raise TransientError(f"{where}: login of {self.user} failed for now: {said}")
            raise ConfigError(f"{where}: login of {self.user} refused: {said}", key=password_key(self.options))
        except OSError as e:
            raise TransientError(f"{where}: connection lost at login: {e}")
        self.conn = conn
        self.selected = None
        typ, data = conn.capability()
        self.caps = set(data[0].decode().upper().split()) if typ == "OK" and data and data[0] else set()
        typ, data = conn.list('""', '""')
        first = data[0] if typ == "OK" and data else None
        m = re.match(rb'\(.*?\) (?:"((?:[^"\\]|\\.)*)"|NIL)', first) if isinstance(first, bytes) else None
        self.sep = m.group(1).decode() if m and m.group(1) else "/"

    def drop(self) -> None:
        """Forget a broken connection: the next :meth:`connect` makes a new one."""
        self.conn = None

    def logout(self) -> None:
        if self.conn is not None:
            try:
                self.conn.logout()
            except (imaplib.IMAP4.error, OSError):
                pass
            self.conn = None

    # -- commands ----------------------------------------------------------------------------------------------

    def cmd(self, name: str, *args: Any) -> tuple[str, list[Any]]:
        """One imaplib call; a broken connection becomes Lost."""
        assert self.conn is not None
        try:
            return getattr(self.conn, name)(*args)
        except (imaplib.IMAP4.abort, OSError) as e:
            raise Lost(redact(str(e), self._password))

    def tagged(self, *words: str) -> tuple[str, list[Any]]:
        """A command whose tagged response text matters; a broken connection becomes Lost."""
        assert self.conn is not None
        try:
            return self.conn.tagged(*words)
        except (imaplib.IMAP4.abort, OSError) as e:
            raise Lost(redact(str(e), self._password))

    @property
    def untagged(self) -> dict[str, list[Any]]:
        """imaplib's untagged responses, which it keeps until asked for."""
        assert self.conn is not None
        return self.conn.untagged_responses

    def idle(self, seconds: float, stopped: Any) -> bool:
        assert self.conn is not None
        return self.conn.idle(seconds, stopped)

    # -- folders -----------------------------------------------------------------------------------------------

    def select(self, folder: str) -> int:
        """Select ``folder`` (if not selected) and return its UIDVALIDITY, noting any change."""
        if self.selected == folder:
            return self.uidvalidity
        self.selected = None
        typ, data = self.cmd("select", quoted(folder))
        if typ != "OK":
            raise TransientError(f"imap {self.account}: cannot select {folder!r}: {data[0]!r}")
        uv = int(self.untagged.get("UIDVALIDITY", [b"0"])[-1])
        before = self.state.uidvalidity(folder)
        if before is not None and before != uv:
            log.warning("imap %s: UIDVALIDITY of %s changed from %d to %d: the folder was recreated or its UIDs "
                        "reset; messages are matched by Message-ID and content from now on",
                        self.account, folder, before, uv)
        if before != uv:
            self.state.set_uidvalidity(folder, uv)
        self.selected, self.uidvalidity = folder, uv
        return uv

    def reselect(self, folder: str) -> int:
        """SELECT afresh: selected long ago, the folder may have been recreated by another session meanwhile
        (and Dovecot keeps answering for UIDs of the new one)."""
        self.selected = None
        return self.select(folder)

    def create(self, folder: str) -> None:
        typ, data = self.cmd("create", quoted(folder))
        if typ != "OK" and b"ALREADYEXISTS" not in (data[0] or b"").upper() and folder not in self.folders(folder):
            raise ConfigError(f"cannot create folder {folder!r}: {data[0]!r}")

    def folders(self, pattern: str) -> list[str]:
        """Selectable folders matching ``pattern`` (``%`` and ``*`` wildcards)."""
        typ, data = self.cmd("list", '""', quoted(pattern))
        names = []
        for line in data or []:
            if not line:
                continue
            if isinstance(line, tuple):  # name sent as a literal
                names.append(line[1].decode("utf-8", "replace"))
                continue
            m = re.match(rb'\((.*?)\) (?:"(?:[^"\\]|\\.)*"|NIL) (.*)$', line)
            if m and b"\\NOSELECT" not in m.group(1).upper():
                name = m.group(2).decode("utf-8", "replace")
                if name.startswith('"'):
                    name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
                names.append(name)
        return names

    def delete_if_empty(self, folder: str) -> None:
        """DELETE takes a folder's messages with it: only ever delete one that holds none."""
        if self.selected is not None:
            self.cmd("close")
            self.selected = None
        typ, data = self.cmd("status", quoted(folder), "(MESSAGES)")
        m = re.search(rb"MESSAGES (\d+)", data[0] or b"") if typ == "OK" and data else None
        if m and int(m.group(1)) == 0:
            self.cmd("delete", quoted(folder))

    # -- messages of the selected folder -----------------------------------------------------------------------

    def search(self, *criteria: str) -> list[int]:
        """UIDs matching ``criteria``, ascending."""
        return _uids(*self.cmd("uid", "SEARCH", *criteria))

    def sizes(self, criteria: list[str]) -> list[tuple[int, int]]:
        """(uid, size) of the messages matching ``criteria``, in UID order."""
        uids = self.search(*criteria)
        if not uids:
            return []
        sizes: dict[int, int] = {}
        for start in range(0, len(uids), 500):
            chunk = ",".join(str(u) for u in uids[start:start + 500])
            typ, data = self.cmd("uid", "FETCH", chunk, "(RFC822.SIZE)")
            for line in data or []:
                text = line[0] if isinstance(line, tuple) else line
                m = re.search(rb"UID (\d+)", text or b"")
                s = re.search(rb"RFC822\.SIZE (\d+)", text or b"")
                if m and s:
                    sizes[int(m.group(1))] = int(s.group(1))
        return [(u, sizes[u]) for u in uids if u in sizes]

    def fetch(self, uid: int) -> bytes | None:
        """The message's bytes (``BODY.PEEK[]``: ``\\Seen`` is not set), or None when it is gone."""
        typ, data = self.cmd("uid", "FETCH", str(uid), "(BODY.PEEK[])")
        for part in data or []:
            if isinstance(part, tuple) and b"BODY[]" in part[0].upper():
                return part[1]
        return None

    def find(self, msgkey: str, sha256: str, size: int) -> int | None:
        """The UID of the message with exactly these bytes (after a UIDVALIDITY change)."""
        criteria = ["LARGER", str(size - 1), "SMALLER", str(size + 1)]
        if msgkey.startswith("mid:"):
            criteria += ["HEADER", "Message-ID", quoted(msgkey[4:])]
        for uid in self.search(*criteria):
            raw = self.fetch(uid)
            if raw is not None and hashlib.sha256(raw).hexdigest() == sha256:
                return uid
        return None

    def flagsets(self, uids: list[int]) -> list[tuple[int, int, list[str]]]:
        """(uid, MODSEQ, flags) of these messages."""
        if not uids:
            return []
        typ, data = self.cmd("uid", "FETCH", ",".join(map(str, uids)), "(MODSEQ FLAGS)")
        out = []
        for line in data or []:
            text = line[0] if isinstance(line, tuple) else line
            u, m = re.search(rb"UID (\d+)", text or b""), re.search(rb"MODSEQ \((\d+)\)", text or b"")
            f = re.search(rb"FLAGS \(([^)]*)\)", text or b"")
            if u and m:
                out.append((int(u.group(1)), int(m.group(1)), f.group(1).decode("utf-8", "replace").split() if f
                            else []))
        return sorted(out)

    def modseqs(self, uids: list[int], flag: str) -> list[tuple[int, int, bool]]:
        """(uid, MODSEQ, has ``flag``) of these messages."""
        return [(uid, modseq, flag.lower() in (f.lower() for f in flags))
                for uid, modseq, flags in self.flagsets(uids)]

    def store_unchanged(self, uid: int, modseq: int, add: bool, flag: str, *more: str) -> bool:
        """Set (or clear) ``flag`` (and ``more`` flags) on condition nobody changed the message since ``modseq``
        (RFC 7162): of sessions racing with the same ``modseq``, exactly one gets True.

        True only for a STORE that changed the message, seen in its FETCH: that MODSEQ beyond ``modseq``, the
        flag as asked. Dovecot answers OK to a STORE that changes nothing (the flag already so, at exactly
        ``modseq``: a FETCH may be answered from the latest index before the session is told of another
        session's change), and the FETCH that comes with it is then the pending notice of that other change."""
        return self._store_if(uid, modseq, "+FLAGS" if add else "-FLAGS", [flag, *more], flag, add)

    def replace_unchanged(self, uid: int, modseq: int, flags: list[str], mark: str) -> bool:
        """Replace the message's flags by ``flags`` (which hold ``mark``) on condition nobody changed it since
        ``modseq``: True, as for :meth:`store_unchanged`, only when its FETCH shows this change (MODSEQ raised,
        ``mark`` set). ``\\Recent`` is the server's to set and is left out."""
        return self._store_if(uid, modseq, "FLAGS", [f for f in flags if f.lower() != "\\recent"], mark, True)

    def _store_if(self, uid: int, modseq: int, action: str, flags: list[str], flag: str, has: bool) -> bool:
        untagged = self.untagged
        untagged.pop("FETCH", None)
        typ, data = self.tagged("UID", "STORE", str(uid), f"(UNCHANGEDSINCE {modseq})", action,
                                f"({' '.join(flags)})")
        fetched = self.untagged.pop("FETCH", [])
        if typ != "OK" or b"MODIFIED" in (data[0] or b"").upper():
            return False
        for line in fetched:
            text = line[0] if isinstance(line, tuple) else line or b""
            changed = re.search(rb"MODSEQ \((\d+)\)", text)
            now = re.search(rb"FLAGS \(([^)]*)\)", text)
            if (re.search(rb"UID %d\b" % uid, text) and changed and int(changed.group(1)) > modseq and now
                    and (flag.lower().encode() in now.group(1).lower().split()) == has):
                return True
        return False

    def flag(self, uid: int | str, flag: str) -> None:
        self.cmd("uid", "STORE", str(uid), "+FLAGS.SILENT", f"({flag})")
        if flag.upper() == "\\DELETED":
            self.cmd("uid", "EXPUNGE", str(uid)) if "UIDPLUS" in self.caps else self.cmd("expunge")

    def unflag(self, uid: int | str, flag: str) -> None:
        self.cmd("uid", "STORE", str(uid), "-FLAGS.SILENT", f"({flag})")

    def move(self, uid: int | str, target: str) -> bool:
        """Move messages (a UID or a UID set); False when none was there any more."""
        untagged = self.untagged
        for code in ("COPYUID", "EXPUNGE"):
            untagged.pop(code, None)
        if "MOVE" in self.caps:
            typ, data = self.cmd("uid", "MOVE", str(uid), quoted(target))
            if typ == "NO" and b"EXPUNGEISSUED" in (data[0] or b"").upper():  # another session took it first
                return False
            if typ != "OK":
                raise TransientError(f"imap {self.account}: cannot move UID {uid} to {target!r}: {data[0]!r}")
            moved = bool(untagged.pop("COPYUID", None) or untagged.pop("EXPUNGE", None))
            untagged.pop("EXPUNGE", None)
            return moved
        typ, data = self.tagged("UID", "COPY", str(uid), quoted(target))  # COPYUID is in the tagged OK
        if typ == "NO" and b"EXPUNGEISSUED" in (data[0] or b"").upper():
            return False
        if typ != "OK":
            raise TransientError(f"imap {self.account}: cannot copy UID {uid} to {target!r}: {data[0]!r}")
        if "UIDPLUS" in self.caps and b"COPYUID" not in (data[0] or b"").upper():
            return False
        self.cmd("uid", "STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)")
        if "UIDPLUS" in self.caps:
            self.cmd("uid", "EXPUNGE", str(uid))
        else:  # no way to expunge just this one: removes every message flagged \Deleted in the folder
            self.cmd("expunge")
        untagged.pop("EXPUNGE", None)
        return True
