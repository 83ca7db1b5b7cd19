"""Writing rendered files: atomic, with their final mode and owner from the first byte, only when
the content changed, and without ever following a link that someone else planted.

rconfd-py runs as root and writes into directories that service users own. So every operation
on an output works relative to a directory file descriptor reached by walking the path one
component at a time with O_NOFOLLOW (fs.py: a symbolic link among the directories is followed only
when root or the running user owns it; a link of anybody else's is an error naming it), and:

- an existing output is opened with O_NOFOLLOW | O_NONBLOCK and fstat'ed: anything but a regular
  file with one link (a symlink, a FIFO, a device, a hard link to another file) is never read
  nor touched: the rename simply replaces the name;
- mode and owner are set with fchmod/fchown on a file descriptor, never on a path.

Files are staged first (temp file in the destination dir, fchown, fchmod, write, fsync) and
renamed into place only once every file of the batch is staged: a batch is one template in the
daemon, every template in a one-shot run (`Writer.stage` + `Writer.commit`). A failure while
staging removes the temp files and leaves what is on disk untouched.

The directory is not fsynced after the rename: that would make the *new name* survive a host
crash, and nothing needs it to — every start of rconfd-py re-renders and rewrites any file that
differs before it signals readiness. What a crash must never leave is a torn file under the
final name; the data fsync before the rename guarantees that (as consul-template does).
Temp files a killed predecessor left behind are removed at the first write of each output.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
from collections import namedtuple
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from .errors import OutputError
from .fs import FILE_FLAGS, UnsafePath, open_dir

log = logging.getLogger(__name__)
TMP_SUFFIX = ".rconfd-tmp"
MAX_OPEN_DIRS = 64  # directory fds kept open during one batch

_HEX = frozenset("0123456789abcdef")
_EXISTING_FLAGS = FILE_FLAGS
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


Owner = namedtuple("Owner", "uid gid")
# what this process last wrote at a path, to skip re-reading it when it is still that inode
_Known = namedtuple("_Known", "digest dev ino size mtime")


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


class _Entry:
    """One staged file: its temp name in its directory, waiting for the rename."""

    __slots__ = ("digest", "dir", "existed", "known", "name", "path", "renamed", "tmp")

    def __init__(self, path: Path, digest: bytes, existed: bool):
        self.path = path
        self.dir = str(path.parent)
        self.name = path.name
        self.digest = digest
        self.existed = existed
        self.tmp: str | None = None  # its temp name, once staged
        self.known: _Known | None = None  # the temp file's identity, once staged
        self.renamed = False


class Staged:
    """A batch of staged files (`Writer.stage`), one WriteResult per staged group."""

    __slots__ = ("dirs", "entries", "fixes", "groups")

    def __init__(self, dirs: _Dirs) -> None:
        self.dirs = dirs
        self.entries: list[_Entry] = []
        self.fixes: list[tuple[Path, _Known, int, Owner | None]] = []  # unchanged files
        self.groups: list[tuple[WriteResult, list[_Entry]]] = []


class Writer:
    """Remembers what it wrote, so an unchanged file of its own is not even re-read."""

    def __init__(self) -> None:
        self._known: dict[Path, _Known] = {}
        self._swept: set[Path] = set()  # outputs whose stale temp files were removed

    # -- the one-template path (daemon) ------------------------------------------------------
    def write(self, files: Mapping[Path, bytes], mode: int, owner: Owner | None) -> WriteResult:
        batch = self.batch()
        result = self.stage(batch, files, mode, owner)
        self.commit(batch)
        return result

    # -- batches: stage everything, then rename everything -----------------------------------
    def batch(self) -> Staged:
        return Staged(_Dirs())

    def stage(self, batch: Staged, files: Mapping[Path, bytes], mode: int,
              owner: Owner | None) -> WriteResult:
        """Stage the files that changed; fix mode and owner of those that did not. On failure,
        every temp file of the batch is removed (nothing was renamed yet) and OutputError
        raised."""
        result = WriteResult()
        group: list[_Entry] = []
        path = None
        try:
            for path, data in files.items():
                entry = self._check(batch, path, data, mode, owner)
                if entry is not None:
                    batch.entries.append(entry)
                    group.append(entry)
                    self._stage_one(batch.dirs, entry, data, mode, owner)
        except OutputError:
            self.abort(batch)
            raise
        except OSError as e:
            self.abort(batch)
            raise OutputError(f"cannot write {path}: {e.strerror}") from None
        batch.groups.append((result, group))
        return result

    def commit(self, batch: Staged) -> None:
        """Rename every staged file into place (then the batch is spent). When the batch holds
        several files, each file replaced is first hard-linked to a backup name, so that a
        rename failing halfway (a temp file removed by the directory's owner meanwhile) puts
        back the files already renamed: all or nothing."""
        entry = None
        done: list[tuple[_Entry, str | None]] = []
        several = len(batch.entries) > 1
        try:
            for entry in batch.entries:
                fd = batch.dirs.open(entry.dir, entry.path, create=False)
                backup = None
                if several and entry.existed:
                    backup = _tmp_name(entry.name)
                    try:  # the name itself, whatever it is: a link is linked, not followed
                        os.link(entry.name, backup, src_dir_fd=fd, dst_dir_fd=fd,
                                follow_symlinks=False)
                    except FileNotFoundError:
                        backup = None
                try:
                    os.rename(entry.tmp, entry.name, src_dir_fd=fd, dst_dir_fd=fd)
                except OSError:
                    if backup is not None:
                        _unlink(batch.dirs, entry, backup)
                    raise
                entry.tmp, entry.renamed = None, True
                done.append((entry, backup))
                self._known[entry.path] = entry.known
        except (OSError, OutputError) as e:
            self._rollback(batch, done)
            self.abort(batch)
            if isinstance(e, OutputError):
                raise
            raise OutputError(f"cannot replace {entry.path}: {e.strerror}") from None
        try:
            for entry, backup in done:
                if backup is not None:
                    _unlink(batch.dirs, entry, backup)
            for path, seen, mode, owner in batch.fixes:
                _fix_metadata(batch.dirs, path, seen, mode, owner)
        finally:
            batch.dirs.close()
            for result, group in batch.groups:
                for entry in group:
                    if entry.renamed:
                        result.changed.append(entry.path)
                        if entry.existed:
                            result.replaced.append(entry.path)

    def _rollback(self, batch: Staged, done: list[tuple[_Entry, str | None]]) -> None:
        """Put back what the renames of a failed commit replaced."""
        for entry, backup in reversed(done):
            self._known.pop(entry.path, None)
            entry.renamed = False
            try:
                fd = batch.dirs.open(entry.dir, entry.path, create=False)
                if backup is not None:
                    os.rename(backup, entry.name, src_dir_fd=fd, dst_dir_fd=fd)
                else:
                    os.unlink(entry.name, dir_fd=fd)  # it was not there before
            except (OSError, OutputError) as e:
                log.error("cannot put back %s: %s", entry.path, getattr(e, "strerror", e))

    def abort(self, batch: Staged) -> None:
        """Remove the temp files of the batch that were not renamed (then the batch is
        spent)."""
        for entry in batch.entries:
            if entry.tmp is not None and not entry.renamed:
                try:
                    os.unlink(entry.tmp, dir_fd=batch.dirs.open(entry.dir, entry.path, False))
                except (OSError, OutputError):
                    pass
        batch.dirs.close()

    @staticmethod
    def staged(batch: Staged, result: WriteResult) -> list[tuple[Path, str]]:
        """The files staged for the group `result`: (final path, the temp file's path)."""
        for r, group in batch.groups:
            if r is result:
                return [(e.path, os.path.join(e.dir, e.tmp)) for e in group if e.tmp]
        return []

    def forget(self, path: Path) -> None:
        self._known.pop(path, None)

    # -- one file ----------------------------------------------------------------------------
    def _check(self, batch: Staged, path: Path, data: bytes, mode: int, owner: Owner | None
               ) -> _Entry | None:
        """Whether `path` must be written: None when its content is already `data` (its mode
        and owner are then fixed at the commit, if they differ); else the entry to stage."""
        dirs = batch.dirs
        digest = hashlib.sha256(data).digest()
        known = self._known.get(path)
        if known is not None and known.digest != digest:  # ours, and changed: no need to look
            return _Entry(path, digest, existed=True)
        fd_dir = dirs.open(str(path.parent), path, create=True)
        if path not in self._swept:
            _sweep(fd_dir, path.name)
            self._swept.add(path)
        try:
            fd = os.open(path.name, _EXISTING_FLAGS, dir_fd=fd_dir)
        except FileNotFoundError:
            return _Entry(path, digest, existed=False)
        except OSError as e:
            # ELOOP: a symlink; EWOULDBLOCK: a lease someone holds; ENXIO: a socket: whatever
            # stands there is replaced by the rename, never read
            if e.errno == errno.EISDIR:
                raise OutputError(f"cannot write {path}: it is a directory") from None
            return _Entry(path, digest, existed=True)
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise OutputError(f"cannot write {path}: it is a directory")
            if (not stat.S_ISREG(st.st_mode) or st.st_nlink != 1
                    or st.st_size != len(data)):
                return _Entry(path, digest, existed=True)  # replaced, not read
            if not (known is not None and (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
                    == known[1:]):
                if not _fd_holds(fd, data):
                    return _Entry(path, digest, existed=True)
            self._known[path] = seen = _Known(digest, st.st_dev, st.st_ino, st.st_size,
                                              st.st_mtime_ns)
            if stat.S_IMODE(st.st_mode) != mode or (
                    owner is not None and (st.st_uid, st.st_gid) != (owner.uid, owner.gid)):
                batch.fixes.append((path, seen, mode, owner))
            return None
        finally:
            os.close(fd)

    @staticmethod
    def _stage_one(dirs: _Dirs, entry: _Entry, data: bytes, mode: int, owner: Owner | None
                   ) -> None:
        fd_dir = dirs.open(entry.dir, entry.path, create=True)
        tmp = _tmp_name(entry.name)
        fd = os.open(tmp, _TMP_FLAGS, 0o600, dir_fd=fd_dir)
        entry.tmp = tmp
        try:
            if owner is not None:
                os.fchown(fd, owner.uid, owner.gid)
            os.fchmod(fd, mode)  # after fchown, and whatever the umask narrowed
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            st = os.fstat(fd)  # the rename keeps the inode and its mtime
            entry.known = _Known(entry.digest, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        finally:
            os.close(fd)


class _Dirs:
    """Directory fds of one batch, by path, each reached without following untrusted links."""

    __slots__ = ("_fds",)

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}

    def open(self, directory: str, path: Path, create: bool) -> int:
        fd = self._fds.get(directory)
        if fd is None:
            if len(self._fds) >= MAX_OPEN_DIRS:
                self.close()
            try:
                fd = self._fds[directory] = open_dir(directory, create)
            except UnsafePath as e:
                raise OutputError(f"cannot write {path}: {e}") from None
        return fd

    def close(self) -> None:
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)


def _tmp_name(name: str) -> str:
    return f".{_tmp_stem(name)}.{os.urandom(4).hex()}{TMP_SUFFIX}"


def _unlink(dirs: _Dirs, entry: _Entry, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dirs.open(entry.dir, entry.path, create=False))
    except (OSError, OutputError):
        pass  # removed meanwhile; else swept at the next start


def _tmp_stem(name: str) -> str:
    """What a temp file of `name` is named after: the name itself, or for a name too long to
    take the temp suffix within NAME_MAX, its first 150 bytes and a hash of the whole."""
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= 200:
        return name
    short = raw[:150].decode("utf-8", "ignore")  # cut on a character boundary
    return f"{short}~{hashlib.sha256(raw).hexdigest()[:16]}"


def _sweep(fd_dir: int, name: str) -> None:
    """Remove the temp files of `name` that a killed rconfd-py left (they may hold secrets)."""
    prefix = f".{_tmp_stem(name)}."
    try:
        entries = os.listdir(fd_dir)
    except OSError:
        return
    for entry in entries:
        if (entry.startswith(prefix) and entry.endswith(TMP_SUFFIX)
                and len(entry) == len(prefix) + 8 + len(TMP_SUFFIX)
                and all(c in _HEX for c in entry[len(prefix):len(prefix) + 8])):
            try:
                os.unlink(entry, dir_fd=fd_dir)  # unlink never follows a link
                log.info("removed a stale temporary file %s", entry)
            except OSError:
                pass


def _fd_holds(fd: int, data: bytes) -> bool:
    """Whether the open file holds exactly `data`: reads at most one byte more than that, so a
    file its owner grows meanwhile (to a sparse terabyte) costs nothing."""
    view = memoryview(data)
    pos = 0
    while True:
        chunk = os.read(fd, min(1 << 16, len(data) - pos + 1))
        if not chunk:
            return pos == len(data)
        if view[pos:pos + len(chunk)] != chunk:
            return False
        pos += len(chunk)


def _fix_metadata(dirs: _Dirs, path: Path, seen: _Known, mode: int, owner: Owner | None
                  ) -> None:
    """Mode and owner of an unchanged file, on an fd of the very inode that was checked (never
    on a path)."""
    try:
        fd = os.open(path.name, _EXISTING_FLAGS, dir_fd=dirs.open(str(path.parent), path, False))
    except (OSError, OutputError):
        return  # gone or replaced meanwhile: not the file that was checked
    try:
        st = os.fstat(fd)
        if ((st.st_dev, st.st_ino) != (seen.dev, seen.ino) or not stat.S_ISREG(st.st_mode)
                or st.st_nlink != 1):
            return
        if owner is not None and (st.st_uid, st.st_gid) != (owner.uid, owner.gid):
            os.fchown(fd, owner.uid, owner.gid)
            st = os.fstat(fd)  # fchown may have cleared bits
        if stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
    except OSError as e:
        log.warning("cannot set mode/owner of %s: %s", path, e.strerror)
    finally:
        os.close(fd)
