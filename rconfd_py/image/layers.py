"""What the three image levels share: base layer -> s6 layer -> service images.

Image references and the Alpine release they carry, the s6-overlay each Alpine release ships,
the default tags that chain the levels, the distribution's package commands, template filling
and writing a build context.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

from ..errors import ConfigError, OutputError

DEFAULT_ALPINE = "alpine:3.20"  # a pinned minor release: its python3, s6-overlay, mimalloc2

# Alpine ships one s6-overlay per release (community/s6-overlay, pkgs.alpinelinux.org): the s6
# layer pins the one of its base's release. Add a line when moving to a newer Alpine.
S6_OVERLAY = {"3.20": "3.1.6.2", "3.21": "3.2.0.2", "3.22": "3.2.0.3", "3.23": "3.2.0.3"}

_ALPINE_RELEASE = re.compile(r"(?:^|[/:@-])alpine[:-]v?(\d+\.\d+)(?:$|[.-])")
_VERSION = re.compile(r"\d+(\.\d+){1,3}")


def image_ref(flag: str, ref: str) -> str:
    """``ref`` if it can be a FROM line's image, else ConfigError naming ``flag``."""
    if not ref or any(c.isspace() or c in "\"'\\$" for c in ref):
        raise ConfigError(f"{flag}: bad base image {ref!r}")
    return ref


def alpine_release(ref: str) -> str | None:
    """"3.20" for alpine:3.20, registry.example.com/alpine:3.20.3 or rconfd-base:alpine-3.20;
    None when ``ref`` does not say."""
    m = _ALPINE_RELEASE.search(ref)
    return m.group(1) if m else None


def s6_overlay_version(ref: str, given: str | None = None) -> str:
    """The s6-overlay to pin on ``ref``: ``given``, else the one its Alpine release ships."""
    if given is not None:
        if not _VERSION.fullmatch(given):
            raise ConfigError(f"--s6-overlay: bad version {given!r} (expected e.g. 3.2.0.2)")
        return given
    release = alpine_release(image_ref("--from", ref))
    if release in S6_OVERLAY:
        return S6_OVERLAY[release]
    known = ", ".join(f"Alpine {r}: {v}" for r, v in S6_OVERLAY.items())
    what = f"Alpine {release}" if release else f"which Alpine release {ref} is"
    raise ConfigError(f"cannot tell the s6-overlay version for {what} ({known}): "
                      "pass --s6-overlay VERSION")


def base_tag(release: str, mimalloc: bool = False) -> str:
    return f"localhost/rconfd-base:alpine-{release}" + ("-mimalloc" if mimalloc else "")


def s6_tag(version: str) -> str:
    return f"localhost/s6-overlay:{version}"


def service_tag(name: str) -> str:
    return f"localhost/{name}:latest"


_DEFAULT_RELEASE = alpine_release(DEFAULT_ALPINE) or ""
DEFAULT_BASE_TAG = base_tag(_DEFAULT_RELEASE)  # what `image base` builds, `image build` is FROM
DEFAULT_S6_TAG = s6_tag(S6_OVERLAY[_DEFAULT_RELEASE])  # what `image build` builds, services FROM


class Distro(NamedTuple):
    """How a distribution installs packages and adds users (Containerfile snippets)."""

    install: str  # a RUN installing {packages}
    add_user: str  # shell creating the system user {user} and its group
    mimalloc_package: str
    mimalloc_library: str  # for LD_PRELOAD
    repository: str | None  # a RUN trusting the repository {url} with the key {key}


ALPINE = Distro(
    install="# hadolint ignore=DL3018\nRUN apk add --no-cache {packages}",
    add_user="addgroup -S {user} && adduser -S -D -H -h /nonexistent -s /sbin/nologin "
             "-G {user} {user}",
    mimalloc_package="mimalloc2",  # secure mode: /usr/lib/libmimalloc.so.2 -> -secure.so.2
    mimalloc_library="/usr/lib/libmimalloc.so.2",
    repository="COPY apk-keys/{key} /etc/apk/keys/{key}\n"
               "RUN {{ printf '%s\\n' {url}; cat /etc/apk/repositories; }} > /tmp/repositories \\\n"
               " && mv /tmp/repositories /etc/apk/repositories",
)


def fill(template: str, values: Mapping[str, str]) -> str:
    """``template`` with every @KEY@ of ``values`` replaced; a placeholder that is empty leaves
    no run of blank lines behind."""
    out = []
    for line in template.splitlines():
        for key, value in values.items():
            line = line.replace(key, value)
        out.append(line)
    text = "\n".join(out)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip("\n") + "\n"


def write_context(dest: str | Path, containerfile: str, owned: Iterable[str],
                  populate: Callable[[Path], None]) -> Path:
    """Write a build context into ``dest`` (created): the ``owned`` entries are removed, then
    ``populate(dest)`` writes them, then the Containerfile; nothing else is touched."""
    dest = Path(dest).resolve()
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for name in owned:
            old = dest / name
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            elif old.exists() or old.is_symlink():
                old.unlink()
        populate(dest)
        (dest / "Containerfile").write_text(containerfile)
    except OSError as e:
        raise OutputError(f"cannot write the build context {dest}: {e}") from None
    return dest
