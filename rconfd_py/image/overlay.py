"""s6-overlay from tarballs instead of Alpine's package (`image build --s6-overlay-from FILE`).

For bases without an s6-overlay package (Debian, a distroless-like base) or a self-built one:
the tarballs (s6-overlay's own release tarballs, noarch + arch, or one all-in-one tree) are
copied into the context's s6-overlay/ and ADDed to / in order. Together they must hold s6-overlay's
layout: ./init and ./package/admin/s6-overlay-VERSION/ (the version the layer is labelled and
tagged with). Only member names are read here; nothing is extracted on the host.
"""

from __future__ import annotations

import re
import shutil
import tarfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError, OutputError

DIR = "s6-overlay"  # in a context
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_VERSION_DIR = re.compile(r"package/admin/s6-overlay-(\d+(?:\.\d+){1,3})")

ADD = """\
# s6-overlay from --s6-overlay-from (its own layout: /init, /command, /package/admin/...).
# /command first in PATH for `podman exec CTR s6-svc ...` too (/init puts it there for itself).
@ADDS@
ENV PATH="/command:${PATH}"
"""


def _members(path: Path) -> list[str]:
    try:
        with tarfile.open(path) as t:
            return [m.name.removeprefix("./").rstrip("/") for m in t]
    except (tarfile.TarError, OSError, EOFError):
        raise ConfigError(f"--s6-overlay-from {path}: not a tar archive (plain, gz, bz2 or xz) "
                          "or unreadable") from None


def inspect(paths: Sequence[str | Path], version: str | None = None) -> str:
    """The s6-overlay version the tarballs ``paths`` install; ConfigError if they are not
    s6-overlay (no ./init, no package/admin/s6-overlay-VERSION/), if two of them share a file
    name, or if ``version`` (--s6-overlay) is given and differs."""
    names = [Path(p).name for p in paths]
    if len(set(names)) != len(names):
        raise ConfigError("--s6-overlay-from: two tarballs with the same file name")
    members: set[str] = set()
    for path in map(Path, paths):
        if not _NAME.fullmatch(path.name):
            raise ConfigError(f"--s6-overlay-from {path}: bad file name {path.name!r}")
        if not path.is_file():
            raise ConfigError(f"--s6-overlay-from {path}: no such file")
        members.update(_members(path))
    found = sorted({m.group(1) for n in members if (m := _VERSION_DIR.fullmatch(n))})
    what = " + ".join(map(str, paths))
    if "init" not in members or len(found) != 1:
        raise ConfigError(f"--s6-overlay-from {what}: not s6-overlay (expected ./init and one "
                          f"package/admin/s6-overlay-VERSION/, found {found or 'none'})")
    if version is not None and version != found[0]:
        raise ConfigError(f"--s6-overlay {version}: --s6-overlay-from {what} is {found[0]}")
    return found[0]


def add_lines(paths: Sequence[str | Path]) -> str:
    """The Containerfile lines that unpack the tarballs (ADD extracts a local tar archive)."""
    adds = "\n".join(f"ADD {DIR}/{Path(p).name} /" for p in paths)
    return ADD.replace("@ADDS@", adds).rstrip("\n")


def copy_into(paths: Sequence[str | Path], ctx: Path) -> None:
    """Copy the tarballs into the context's s6-overlay/."""
    (ctx / DIR).mkdir()
    for path in map(Path, paths):
        try:
            shutil.copyfile(path, ctx / DIR / path.name)
        except OSError as e:
            raise OutputError(f"cannot copy {path} into the build context: {e}") from None
