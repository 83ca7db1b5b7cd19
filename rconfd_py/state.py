"""The ledger on disk (--state-dir): what a restarted rconfd-py needs to mint nothing anew.

One file, DIR/state.json, holds the tokens (with accessor, expiry and the TTL to ask) and the
leased Vault secrets (value, lease, expiry, renew-or-refetch, mint history) of the ledger
(ledger.py). Static secrets are not kept: they are re-read at every start.

    StateDir.open(path, vault)  -> the directory, created 0700 if missing, locked (flock on
                                   DIR/lock) for this process; None, after one warning, when it
                                   cannot be used
    StateDir.load()             -> Saved (tokens, secrets) or None, after one warning naming the
                                   file and the reason, when the file cannot be trusted
    StateDir.save(ledger, now)  -> written atomically (temp file O_EXCL|O_NOFOLLOW 0600, fsync,
                                   rename, fsync the directory); a failure is one warning
    StateDir.clear()            -> the file removed (--revoke-on-exit)

It writes files and never talks to Vault (resume.py checks what was loaded). Nothing here is
fatal, and no value is ever part of a message.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import stat
from collections import namedtuple

from . import fs
from .ledger import SecretEntry, TokenEntry
from .refs import SecretRef
from .secret import Lease, Secret
from .vault.auth import Token

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .ledger import Ledger

log = logging.getLogger(__name__)
FORMAT = 1
NAME = "state.json"
LOCK = "lock"
TEMP = ".state.json."  # prefix of the temporary files (a killed process's are swept)
MAX_SIZE = 8 << 20  # a state file larger than this is not ours

Saved = namedtuple("Saved", "tokens secrets saved_at supplied", defaults=(False,))
Saved.__doc__ = ("A loaded state: role -> TokenEntry, ref -> SecretEntry, when it was written, "
                 "whether its tokens were supplied (VAULT_TOKEN, --vault-token-file), not ours.")


class Refused(Exception):
    """The state file cannot be trusted; the message says why (never a value)."""


class StateDir:
    """An open, locked state directory (held until the process exits)."""

    def __init__(self, path: str, dfd: int, lock_fd: int, vault: str):
        self.path = path
        self.file = os.path.join(path, NAME)
        self.vault = vault
        self._dfd = dfd
        self._lock_fd = lock_fd
        self.saved = -1  # the ledger's change counter at the last save (-1: never saved)
        self._error = ""
        self._failed_at = -1  # the ledger's change counter at the last failed save

    @classmethod
    def open(cls, path: str, vault: str) -> StateDir | None:
        """The state directory `path`, created 0700 if missing (its parent must exist), ours
        and writable by nobody else, locked against another rconfd-py; None (one warning)
        otherwise."""
        try:
            parent, _, name = path.rstrip("/").rpartition("/")
            pfd = fs.open_dir(parent or ("/" if path.startswith("/") else "."))
            try:  # made in the parent reached without following a planted link
                os.mkdir(name, 0o700, dir_fd=pfd)
            except FileExistsError:
                pass
            finally:
                os.close(pfd)
            dfd = fs.open_dir(path)
        except (OSError, fs.UnsafePath) as e:
            reason = e.strerror if isinstance(e, OSError) else str(e)
            log.warning("state dir %s cannot be used (%s): running without state", path, reason)
            return None
        try:
            st = os.fstat(dfd)
            if st.st_uid != os.geteuid():
                raise Refused(f"owned by uid {st.st_uid}, not {os.geteuid()}")
            if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                raise Refused(f"writable by group or others (mode {st.st_mode & 0o7777:04o})")
            lock_fd = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                              0o600, dir_fd=dfd)
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(lock_fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise Refused("in use by another rconfd-py process") from None
                raise
        except (OSError, Refused) as e:
            os.close(dfd)
            reason = e.strerror if isinstance(e, OSError) else str(e)
            log.warning("state dir %s cannot be used (%s): running without state", path, reason)
            return None
        state = cls(path, dfd, lock_fd, vault)
        state._sweep()
        return state

    def _sweep(self) -> None:
        """Temporary files a killed process left (only ours can be here: the dir is ours and
        locked)."""
        try:
            names = os.listdir(self._dfd)
        except OSError:
            return
        for name in names:
            if name.startswith(TEMP):
                try:
                    os.unlink(name, dir_fd=self._dfd)
                except OSError:
                    pass

    # -- load ------------------------------------------------------------------------------
    def load(self) -> Saved | None:
        """The saved state, or None: no file (silently), or one the checks refuse (one
        warning naming the file and why)."""
        try:
            doc = self._read()
            if doc is None:
                return None
            return self._parse(doc)
        except Refused as e:
            log.warning("state file %s ignored (%s): starting without it", self.file, e)
            return None

    def _read(self) -> dict | None:
        try:
            fd = os.open(NAME, fs.FILE_FLAGS, dir_fd=self._dfd)
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise Refused("it is a symbolic link") from None
            raise Refused(e.strerror) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise Refused("not a regular file")
            if st.st_nlink != 1:
                raise Refused("it has several hard links")
            if st.st_uid != os.geteuid():
                raise Refused(f"owned by uid {st.st_uid}, not {os.geteuid()}")
            if st.st_mode & 0o077:
                raise Refused(f"readable or writable by group or others (mode "
                              f"{st.st_mode & 0o7777:04o})")
            data = fs.read_capped(fd, MAX_SIZE)
        except OSError as e:
            raise Refused(e.strerror) from None
        finally:
            os.close(fd)
        if data is None:
            raise Refused(f"larger than {MAX_SIZE} bytes")
        try:
            doc = json.loads(data.decode())
        except UnicodeDecodeError:
            raise Refused("corrupt: not UTF-8") from None
        except RecursionError:
            raise Refused("corrupt: nested too deeply") from None
        except ValueError as e:  # the message carries a position, never the content
            raise Refused(f"corrupt: not JSON (line {getattr(e, 'lineno', '?')} column "
                          f"{getattr(e, 'colno', '?')})") from None
        if not isinstance(doc, dict):
            raise Refused("corrupt: not a JSON object")
        if doc.get("format") != FORMAT:
            raise Refused(f"unknown format {_shown(doc.get('format'))} (expected {FORMAT})")
        if doc.get("vault") != self.vault:
            raise Refused(f"written for another Vault address ({_shown(doc.get('vault'))})")
        if doc.get("uid") != os.geteuid():
            raise Refused(f"written by uid {_shown(doc.get('uid'))}")
        return doc

    def _parse(self, doc: dict) -> Saved:
        try:
            tokens = {}
            for t in doc["tokens"]:
                entry = TokenEntry(Token(
                    role=_str(t["role"]), client_token=_str(t["token"]),
                    accessor=_str(t["accessor"]), ttl=_num(t["ttl"]),
                    renewable=bool(t["renewable"]), issued_at=_num(t["issued_at"])))
                entry.asked = _num(t["asked"])
                entry.born = _num(t.get("born", entry.born))  # the login (max TTL's start)
                tokens[entry.role] = entry
            secrets = {}
            for s in doc["secrets"]:
                ref = _ref(s["ref"])
                lease = s["lease"]
                if lease is not None:
                    lease = Lease(_str(lease[0]), _num(lease[1]), bool(lease[2]))
                secret = Secret(ref=ref, value=s["value"], fetched_at=_num(s["fetched_at"]),
                                lease=lease, expires_at=_num(s["secret_expires_at"]),
                                role=ref.role, accessor=_str(s["accessor"]))
                entry = SecretEntry(ref, secret)
                entry.renew, entry.asked = bool(s["renew"]), _num(s["asked"])
                entry.expires_at = _num(s["expires_at"])
                entry.mints.extend(_num(m) for m in s["mints"])
                secrets[ref] = entry
            return Saved(tokens, secrets, _num(doc["saved_at"]), doc.get("supplied") is True)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError) as e:
            raise Refused(f"malformed ({type(e).__name__})") from None

    # -- save ------------------------------------------------------------------------------
    def save(self, ledger: Ledger, now: float, supplied: bool = False) -> bool:
        """Write the ledger's tokens and leased Vault secrets if it changed since the last
        save. A failure is one warning (once per distinct error) and is retried at the next
        change; it never stops the run."""
        if ledger.changes in (self.saved, self._failed_at):  # a full disk: not at every wake-up
            return False
        data = json.dumps(dump(ledger, self.vault, now, supplied),
                          separators=(",", ":")).encode()
        try:
            self._write(data)
        except OSError as e:
            text = f"cannot save the state file {self.file}: {e.strerror}"
            if text != self._error:
                log.warning("%s", text)
            self._error, self._failed_at = text, ledger.changes
            return False
        self.saved, self._error = ledger.changes, ""
        return True

    def _write(self, data: bytes) -> None:
        tmp = f"{TEMP}{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=self._dfd)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, NAME, src_dir_fd=self._dfd, dst_dir_fd=self._dfd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=self._dfd)
            except OSError:
                pass
            raise
        os.fsync(self._dfd)

    def clear(self) -> None:
        """Nothing held any more (--revoke-on-exit): the file goes."""
        try:
            os.unlink(NAME, dir_fd=self._dfd)
            os.fsync(self._dfd)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("cannot remove the state file %s: %s", self.file, e.strerror)

    def close(self) -> None:
        for fd in (self._lock_fd, self._dfd):
            if fd >= 0:
                os.close(fd)
        self._lock_fd = self._dfd = -1


def dump(ledger: Ledger, vault: str, now: float, supplied: bool = False) -> dict:
    """The document saved: tokens and leased Vault secrets (values included: the file is
    0600 in a 0700 directory). `supplied`: the tokens came from outside (never ours to reuse
    after a login or to revoke)."""
    return {
        "format": FORMAT, "vault": vault, "uid": os.geteuid(), "saved_at": now,
        "supplied": supplied,
        "tokens": [{"role": e.role, "token": e.token.client_token,
                    "accessor": e.token.accessor, "ttl": e.token.ttl,
                    "renewable": e.token.renewable, "issued_at": e.token.issued_at,
                    "asked": e.asked, "born": e.born} for e in ledger.tokens.values()],
        "secrets": [{"ref": [*e.ref[:5], [list(kv) for kv in e.ref.kwargs], *e.ref[6:]],
                     "value": e.secret.value, "fetched_at": e.secret.fetched_at,
                     "lease": list(e.secret.lease) if e.secret.lease else None,
                     "secret_expires_at": e.secret.expires_at, "accessor": e.secret.accessor,
                     "expires_at": e.expires_at, "renew": e.renew, "asked": e.asked,
                     "mints": list(e.mints)}
                    for e in ledger.secrets.values()
                    if e.secret is not None and e.leased and e.ref.backend == "vault"],
    }


def _ref(fields: list) -> SecretRef:
    text, backend, path, role, method, kwargs, fmt, dynamic = fields
    if backend != "vault":
        raise ValueError("not a vault ref")
    return SecretRef(_str(text), backend, _str(path), _str(role), _str(method),
                     tuple((_str(k), _str(v)) for k, v in kwargs), _str(fmt), bool(dynamic))


def _str(v: object) -> str:
    if not isinstance(v, str):
        raise TypeError("expected a string")
    return v


def _num(v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise TypeError("expected a finite number")
    return float(v)


def _shown(v: object) -> str:
    """A header field in a warning: a short number or address, never anything long."""
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."
