"""Reaching a path without following a link that someone else planted.

rconfd-py runs as root and works in directories that service users own. Every path it writes
(output.py) or reads as a secret (backends/file.py) is walked one component at a time with
O_NOFOLLOW from a directory file descriptor. A symbolic link on the way is followed only when

- root or the running user owns the link (links made in the image, by an admin, or by Kubernetes
  for a mounted secret), and
- every directory walked so far, the link's own included, is *safe*: owned by root or the running
  user and writable by nobody else (or sticky, like /tmp), or on a read-only mount (a Kubernetes
  Secret volume, whatever its fsGroup). In a directory another user can write,
  that user could rename a link of root's (or hard-link one, where fs.protected_hardlinks is 0)
  to the name being walked: there, no link is followed at all.

Anything else is an UnsafePath naming the component. The link's target is read through an O_PATH
descriptor of the link itself, so a link swapped in between the check and the read is never the
one followed.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import PurePosixPath

MAX_LINKS = 40  # symbolic links followed while resolving one path (the kernel's own limit)
MAX_TURNS = 1000  # a directory made and removed under us again and again

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


def read_capped(fd: int, limit: int) -> bytes | None:
    """The rest of the open file, or None when it holds more than `limit` bytes: never more
    than one byte past the limit is read (a file its owner grows meanwhile costs nothing)."""
    chunks, size = [], 0
    while chunk := os.read(fd, min(1 << 16, limit + 1 - size)):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def read_file(path: str, limit: int) -> bytes | None:
    """The whole regular file `path`, reached as `open_file` does, or None when it holds more
    than `limit` bytes. Raises UnsafePath, or OSError from the read."""
    fd, st = open_file(path)
    try:
        return read_capped(fd, limit) if st.st_size <= limit else None
    finally:
        os.close(fd)


class UnsafePath(Exception):
    """The path cannot be reached safely (or at all); the message names the component."""


def open_dir(directory: str, create: bool = False) -> int:
    """An fd of `directory` (absolute, or relative to the working directory), creating missing
    components (0755) when `create`. The caller closes it."""
    w = _Walk(directory)
    w.descend(w.parts, create)
    return w.release()


def open_file(path: str) -> tuple[int, os.stat_result]:
    """A read-only fd of the regular file `path` and its stat, reached as `open_dir` does; the
    last component may be a trusted link too. A FIFO, device, socket, directory or a file with
    several hard links is refused without being read (O_NONBLOCK: opening a FIFO never
    blocks)."""
    w = _Walk(path)
    try:
        parts = w.parts
        while True:
            if not parts:
                raise UnsafePath(f"{path} is a directory")
            w.descend(parts[:-1], False)
            name = parts[-1]
            try:
                ffd = os.open(name, FILE_FLAGS, dir_fd=w.fd)
            except OSError as e:
                if e.errno != errno.ELOOP:
                    raise UnsafePath(f"{e.strerror} ({w.here(name)})") from None
                parts = w.follow(name)
                continue
            break
        st = os.fstat(ffd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(ffd)
            kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
                    if not stat.S_ISREG(st.st_mode) else "a file with several hard links")
            raise UnsafePath(f"{w.here(name)} is {kind}")
        return ffd, st
    finally:
        w.close()


class _Walk:
    """Where a walk stands: the directory fd, its path (for messages), whether every directory
    so far is safe, and how many links were followed."""

    __slots__ = ("fd", "links", "parts", "safe", "walked")

    def __init__(self, path: str) -> None:
        self.fd = -1
        self.links = 0
        self.parts = self._start(path)

    def _start(self, path: str) -> list[str]:
        """(Re)start at / or at the working directory; the parts left to walk."""
        p = PurePosixPath(path)
        self.close()
        self.fd = os.open("/" if p.is_absolute() else ".", DIR_FLAGS)
        self.walked = "/" if p.is_absolute() else "."
        self.safe = _safe(self.fd)
        return list(p.parts[1:] if p.is_absolute() else p.parts)

    def here(self, name: str) -> str:
        return os.path.normpath(os.path.join(self.walked, name))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def release(self) -> int:
        fd, self.fd = self.fd, -1
        return fd

    def descend(self, parts: list[str], create: bool) -> None:
        """Walk down through `parts`, following the links the rules allow."""
        todo = list(reversed(parts))
        turns = 0
        name = ""
        try:
            while todo:
                turns += 1
                if turns > MAX_TURNS:
                    raise UnsafePath(f"{self.walked} keeps changing")
                name = todo.pop()
                try:
                    nfd = os.open(name, DIR_FLAGS, dir_fd=self.fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(name, 0o755, dir_fd=self.fd)
                    except FileExistsError:
                        pass  # made meanwhile: opened (and checked) on the next turn
                    todo.append(name)
                    continue
                except OSError as e:
                    if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                        raise
                    todo.extend(reversed(self.follow(name)))
                    continue
                os.close(self.fd)
                self.fd = nfd
                self.walked = self.here(name)
                self.safe = self.safe and _safe(nfd)
        except UnsafePath:
            self.close()
            raise
        except OSError as e:
            self.close()
            raise UnsafePath(f"{e.strerror} ({self.here(name)})") from None

    def follow(self, name: str) -> list[str]:
        """The parts to walk instead of the link `name`, if the rules allow following it (an
        absolute target restarts the walk at /)."""
        where = self.here(name)
        self.links += 1
        if self.links > MAX_LINKS:
            raise UnsafePath(f"too many levels of symbolic links at {where}")
        lfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        try:
            st = os.fstat(lfd)
            if not stat.S_ISLNK(st.st_mode):
                raise UnsafePath(f"{where} is not a directory")
            if st.st_uid not in (0, os.geteuid()):
                raise UnsafePath(f"{where} is a symbolic link owned by uid {st.st_uid}; only "
                                 f"links of root or of rconfd-py's own user are followed")
            if not self.safe:
                raise UnsafePath(f"{where} is a symbolic link in a directory that another user "
                                 f"can change; links are not followed there")
            target = os.readlink("", dir_fd=lfd)
        finally:
            os.close(lfd)
        if target.startswith("/"):
            return self._start(target)
        return list(PurePosixPath(target).parts)


def _safe(fd: int) -> bool:
    """Nobody else can rename what is in the directory: it is owned by root or us and writable
    by nobody else (or sticky), or it is on a read-only mount (a Kubernetes Secret volume)."""
    st = os.fstat(fd)
    if st.st_uid in (0, os.geteuid()) and (
            not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or st.st_mode & stat.S_ISVTX):
        return True
    return bool(os.fstatvfs(fd).f_flag & os.ST_RDONLY)
