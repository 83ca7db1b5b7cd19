"""Reaching a path without following a link that someone else planted.

rconfd-py runs as root and works in directories that service users own. Every path it writes
(output.py) or reads as a secret (backends/file.py) is walked one component at a time with
O_NOFOLLOW from a directory file descriptor. A symbolic link on the way is followed only when root
or the running user owns it — links made in the image, by an admin, or by Kubernetes for a
mounted secret — as sudoedit does. Anything else is an UnsafePath naming the component.

The link's target is read through an O_PATH descriptor of the link itself, so a link swapped in
between the ownership check and the read is never the one followed.
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


class UnsafePath(Exception):
    """The path cannot be reached safely (or at all); the message names the component."""


def open_dir(directory: str, create: bool = False) -> int:
    """An fd of `directory` (absolute, or relative to the working directory), creating missing
    components (0755) when `create`. The caller closes it."""
    fd, parts, walked = _start(directory)
    return _walk(fd, parts, walked, create, [0])[0]


def open_file(path: str) -> tuple[int, os.stat_result]:
    """A read-only fd of the regular file `path` and its stat, reached as `open_dir` does; the
    last component may be a trusted link too. A FIFO, device, socket or directory is refused
    without being read (O_NONBLOCK: opening a FIFO never blocks)."""
    links = [0]
    fd, parts, walked = _start(path)
    if not parts:
        os.close(fd)
        raise UnsafePath(f"{path} is a directory")
    while True:
        fd, walked = _walk(fd, parts[:-1], walked, False, links)
        name = parts[-1]
        try:
            ffd = os.open(name, FILE_FLAGS, dir_fd=fd)
        except OSError as e:
            if e.errno != errno.ELOOP:
                os.close(fd)
                raise UnsafePath(f"{e.strerror} ({_join(walked, [name])})") from None
            try:
                target = _trusted_link(fd, name, _join(walked, [name]), links)
            except BaseException:
                os.close(fd)
                raise
            if target.startswith("/"):
                os.close(fd)
                fd, parts, walked = _start(target)
            else:
                parts = list(PurePosixPath(target).parts)
            if not parts:
                os.close(fd)
                raise UnsafePath(f"{path} is a directory")
            continue
        os.close(fd)
        st = os.fstat(ffd)
        if not stat.S_ISREG(st.st_mode):
            os.close(ffd)
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise UnsafePath(f"{_join(walked, [name])} is {kind}")
        return ffd, st


def _start(path: str) -> tuple[int, list[str], str]:
    p = PurePosixPath(path)
    if p.is_absolute():
        return os.open("/", DIR_FLAGS), list(p.parts[1:]), "/"
    return os.open(".", DIR_FLAGS), list(p.parts), "."


def _join(walked: str, parts: list[str]) -> str:
    return os.path.normpath(os.path.join(walked, *parts))


def _walk(fd: int, parts: list[str], walked: str, create: bool, links: list[int]
          ) -> tuple[int, str]:
    """Descend from `fd` (consumed) through `parts`; return the fd reached and its path."""
    todo = list(reversed(parts))
    turns = 0
    name = ""
    try:
        while todo:
            turns += 1
            if turns > MAX_TURNS:
                raise UnsafePath(f"{walked} keeps changing")
            name = todo.pop()
            try:
                nfd = os.open(name, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass  # made meanwhile: opened (and checked) on the next turn
                todo.append(name)
                continue
            except OSError as e:
                if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
                here = _join(walked, [name])
                target = _trusted_link(fd, name, here, links)
                if target.startswith("/"):
                    os.close(fd)
                    fd = -1
                    fd, parts, walked = _start(target)
                    todo.extend(reversed(parts))
                else:
                    todo.extend(reversed(PurePosixPath(target).parts))
                continue
            os.close(fd)
            fd = nfd
            walked = _join(walked, [name])
        return fd, walked
    except UnsafePath:
        if fd >= 0:
            os.close(fd)
        raise
    except OSError as e:
        if fd >= 0:
            os.close(fd)
        raise UnsafePath(f"{e.strerror} ({_join(walked, [name])})") from None


def _trusted_link(fd: int, name: str, where: str, links: list[int]) -> str:
    """The target of the link `name` in `fd`, if root or the running user owns it."""
    links[0] += 1
    if links[0] > MAX_LINKS:
        raise UnsafePath(f"too many levels of symbolic links at {where}")
    lfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    try:
        st = os.fstat(lfd)
        if not stat.S_ISLNK(st.st_mode):
            raise UnsafePath(f"{where} is not a directory")
        if st.st_uid not in (0, os.geteuid()):
            raise UnsafePath(f"{where} is a symbolic link owned by uid {st.st_uid}; only links "
                             f"of root or of rconfd-py's own user are followed")
        return os.readlink("", dir_fd=lfd)
    finally:
        os.close(lfd)
