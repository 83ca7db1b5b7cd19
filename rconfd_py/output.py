"""Writing rendered files: atomic, with their final mode and owner from the first byte, and
only when the content changed.

All files of one template are staged first (temp file in the destination dir, fchmod, fchown,
write, fsync) and renamed into place only once every one of them is staged, then each directory
is fsynced. A failure while staging removes the temp files and leaves what is on disk untouched.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
from collections import namedtuple
from collections.abc import Mapping
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
            existed = path.exists() or path.is_symlink()
            if known is None and existed:
                known = _file_digest(path)
            if known == digest and existed:
                _fix_metadata(path, mode, owner)
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
        for d in {p.parent for p in result.changed}:
            _fsync_dir(d)
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
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except FileExistsError:  # a file stands where a directory is needed
                    raise OutputError(f"cannot write {path}: {path.parent} is not a directory"
                                      ) from None
                tmp = str(path.parent / f".{path.name}.{os.urandom(4).hex()}{TMP_SUFFIX}")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
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


def _fix_metadata(path: Path, mode: int, owner: Owner | None) -> None:
    try:
        st = path.stat()
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


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EROFS):
            log.warning("cannot fsync %s: %s", directory, e.strerror)
    finally:
        os.close(fd)
