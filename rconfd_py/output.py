"""Writing rendered files: atomic, with their final mode and owner from the first byte, and
only when the content changed.

All files of one template are staged first (temp file in the destination dir, fchmod, fchown,
write, fsync) and renamed into place only once every one of them is staged. A failure while
staging removes the temp files and leaves what is on disk untouched.

The directory is not fsynced after the rename: that would make the *new name* survive a host
crash, and nothing needs it to — every start of rconfd-py re-renders and rewrites any file that
differs before it signals readiness. What a crash must never leave is a torn file under the
final name; the data fsync before the rename guarantees that (as consul-template does).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
from collections import namedtuple
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from .errors import OutputError

log = logging.getLogger(__name__)
TMP_SUFFIX = ".rconfd-tmp"


Owner = namedtuple("Owner", "uid gid")


def resolve_owner(user: str | None) -> Owner | None:
    """The uid/gid to chown to, or None when no user is set or we cannot chown (not root)."""
    if not user:
        return None
    import pwd

    pw = pwd.getpwnam(user)  # validated at config load
    if os.geteuid() != 0:
        if pw.pw_uid != os.geteuid():
            log.warning("not running as root: files for user %s keep the owner %d", user,
                        os.geteuid())
        return None
    return Owner(pw.pw_uid, pw.pw_gid)


@lru_cache(maxsize=4096)  # the daemon renders the same names again and again
def output_path(base: Path, name: str) -> Path:
    """An output key of a template: absolute, or relative to the template's `dir`."""
    return Path(os.path.normpath(name if name.startswith("/") else base / name))


class WriteResult:
    """`changed`: files written because their content differed; `replaced`: of those, the ones
    that existed before."""

    __slots__ = ("changed", "replaced")

    def __init__(self) -> None:
        self.changed: list[Path] = []
        self.replaced: list[Path] = []


class Writer:
    """Remembers the checksum of what it wrote, so an unchanged file is not even re-read."""

    def __init__(self) -> None:
        self._sums: dict[Path, bytes] = {}

    def write(self, files: Mapping[Path, bytes], mode: int, owner: Owner | None) -> WriteResult:
        result = WriteResult()
        todo: list[tuple[Path, bytes, bytes]] = []
        for path, data in files.items():
            digest = hashlib.sha256(data).digest()
            known = self._sums.get(path)
            if known is not None and known != digest:  # ours, and changed: no need to look
                todo.append((path, data, digest))
                result.replaced.append(path)
                continue
            try:
                st = os.stat(path)
            except OSError as e:  # absent, or a symlink to nowhere (replaced, not followed)
                if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    raise OutputError(f"cannot write {path}: {e.strerror}") from None
                st = None
            existed = st is not None or os.path.islink(path)
            if known is None and existed:
                known = _file_digest(path)
            if known == digest and st is not None:
                _fix_metadata(path, st, mode, owner)
                self._sums[path] = digest
                continue
            todo.append((path, data, digest))
            if existed:
                result.replaced.append(path)
        staged = self._stage(todo, mode, owner)
        try:
            for (path, _, digest), tmp in zip(todo, staged):
                os.rename(tmp, path)
                self._sums[path] = digest
                result.changed.append(path)
        except OSError as e:
            _cleanup(staged)
            raise OutputError(f"cannot replace {path}: {e.strerror}") from None
        return result

    def forget(self, path: Path) -> None:
        self._sums.pop(path, None)

    @staticmethod
    def _stage(todo: list[tuple[Path, bytes, bytes]], mode: int, owner: Owner | None
               ) -> list[str]:
        staged: list[str] = []
        path = None
        try:
            for path, data, _ in todo:
                tmp = os.path.join(os.path.dirname(path),
                                   f".{path.name}.{os.urandom(4).hex()}{TMP_SUFFIX}")
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
                try:
                    fd = os.open(tmp, flags, mode)
                except (FileNotFoundError, NotADirectoryError):  # no directory yet
                    try:
                        path.parent.mkdir(parents=True, exist_ok=True)
                    except (FileExistsError, NotADirectoryError):  # a file stands there
                        raise OutputError(f"cannot write {path}: {path.parent} is not a "
                                          f"directory") from None
                    fd = os.open(tmp, flags, mode)
                staged.append(tmp)
                try:
                    os.fchmod(fd, mode)  # the umask narrowed what open() applied
                    if owner is not None:
                        os.fchown(fd, owner.uid, owner.gid)
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OutputError:
            _cleanup(staged)
            raise
        except OSError as e:
            _cleanup(staged)
            target = path if path is not None else "output"
            raise OutputError(f"cannot write {target}: {e.strerror}") from None
        return staged


def _file_digest(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").digest()
    except OSError:
        return None


def _fix_metadata(path: Path, st: os.stat_result, mode: int, owner: Owner | None) -> None:
    try:
        if st.st_mode & 0o7777 != mode:
            os.chmod(path, mode)
        if owner is not None and (st.st_uid, st.st_gid) != (owner.uid, owner.gid):
            os.chown(path, owner.uid, owner.gid)
    except OSError as e:
        log.warning("cannot set mode/owner of %s: %s", path, e.strerror)


def _cleanup(paths: list[str]) -> None:
    for p in paths:
        try:
            os.unlink(p)
        except OSError:
            pass
