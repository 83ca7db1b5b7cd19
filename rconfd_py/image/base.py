"""The base layer: a pinned Alpine (or Debian) release, optionally trusting the organisation's apk
repository and running every process on mimalloc. `rconfd-py image base`."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from .. import __version__
from ..errors import ConfigError, OutputError
from .layers import (
    ALPINE,
    DEFAULT_ALPINE,
    Distro,
    alpine_release,
    base_tag,
    debian_release,
    fill,
    image_ref,
    write_context,
)

TEMPLATE = """\
# rconfd-py golden image, the base layer: the s6 layer is built FROM it.
# Written by `rconfd-py image base` (rconfd-py @VERSION@).
ARG BASE=@BASE@
FROM ${BASE}
@REPOSITORY@
@MIMALLOC@
"""

REPOSITORY = """\
# The organisation's apk repository, first in /etc/apk/repositories, signed with this key:
# derived images `apk add` its packages like Alpine's.
@RUN@"""

MIMALLOC = """\
# mimalloc for every dynamically linked process (LD_PRELOAD), python3 and rconfd-py included.
# s6-overlay starts services with a clean environment: a service's run script must go through
# `with-contenv` for LD_PRELOAD (and MIMALLOC_*) to reach it.
@INSTALL@
ENV @ENV@
# Sanity: the allocator is really preloaded (this RUN's own process maps it).
RUN grep -q libmimalloc /proc/self/maps \\
 || { echo "LD_PRELOAD=$LD_PRELOAD is not loaded" >&2; exit 1; }"""

KEYS_DIR = "apk-keys"
_URL = re.compile(r"(https?|ftp)://[^\s'\"\\]+|/[^\s'\"\\]*")
_KEY_NAME = re.compile(r"[A-Za-z0-9@_+-][A-Za-z0-9@._+-]*")


def default_tag(base: str, mimalloc: bool, distro: Distro = ALPINE) -> str:
    """localhost/rconfd-base:alpine-3.20[-mimalloc] (debian-12[-mimalloc]); ConfigError when
    ``base`` does not name a release of ``distro``."""
    image_ref("--base", base)
    if distro.name == "debian":
        release, like = debian_release(base), "a debian:N or debian:CODENAME"
    else:
        release, like = alpine_release(base), "an alpine:X.Y"
    if release is None:
        raise ConfigError(f"--base {base}: not {like} image, pass --tag")
    return base_tag(release, mimalloc, distro.name)


def generate(base: str = DEFAULT_ALPINE, *, repository: str | None = None, key: str | None = None,
           mimalloc: bool = False, large_pages: bool = False, distro: Distro = ALPINE) -> str:
    """The base layer's Containerfile. ``repository`` (a URL) and ``key`` (the key file's name in
    the context's apk-keys/) go together; ``large_pages`` needs ``mimalloc``."""
    base = image_ref("--base", base)
    if (repository is None) != (key is None):
        raise ConfigError("--apk-repository and --apk-key go together")
    if large_pages and not mimalloc:
        raise ConfigError("--large-pages needs --mimalloc")
    trust = ""
    if repository is not None and key is not None:
        if distro.repository is None:
            raise ConfigError(f"--apk-repository: --distro {distro.name} has no apk")
        if not _KEY_NAME.fullmatch(key):
            raise ConfigError(f"--apk-key: bad key file name {key!r}")
        if not _URL.fullmatch(repository):
            raise ConfigError(f"--apk-repository: bad URL {repository!r} "
                              "(http(s)://, ftp:// or an absolute path)")
        trust = REPOSITORY.replace("@RUN@", distro.repository.format(
            key=key, url=shlex.quote(repository)))
    allocator = ""
    if mimalloc:
        env = f"LD_PRELOAD={distro.mimalloc_library}"
        if large_pages:
            env += " \\\n    MIMALLOC_LARGE_OS_PAGES=1"
        allocator = MIMALLOC.replace("@INSTALL@", distro.install.format(
            packages=distro.mimalloc_package)).replace("@ENV@", env)
    return fill(TEMPLATE, {"@VERSION@": __version__, "@BASE@": base, "@REPOSITORY@": trust,
                           "@MIMALLOC@": allocator})


def write_base_context(dest: str | Path, base: str = DEFAULT_ALPINE, *,
                       repository: str | None = None, key: str | Path | None = None,
                       mimalloc: bool = False, large_pages: bool = False,
                       distro: Distro = ALPINE) -> Path:
    """The base layer's build context in ``dest``: Containerfile and apk-keys/ (the key)."""
    key_data = b""
    if key is not None:
        key = Path(key)
        if not key.is_file():
            raise ConfigError(f"--apk-key {key}: no such file")
        try:
            key_data = key.read_bytes()
        except OSError as e:
            raise OutputError(f"cannot read {key}: {e}") from None
    text = generate(base, repository=repository, key=key.name if key is not None else None,
                  mimalloc=mimalloc, large_pages=large_pages, distro=distro)

    def populate(ctx: Path) -> None:
        if key is not None:
            (ctx / KEYS_DIR).mkdir()
            (ctx / KEYS_DIR / key.name).write_bytes(key_data)

    return write_context(dest, text, (KEYS_DIR,), populate)
