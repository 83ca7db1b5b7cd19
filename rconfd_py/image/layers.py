"""What the three image levels share: base layer -> s6 layer -> service images.

Image references and the Alpine or Debian release they carry, the s6-overlay each Alpine
release ships, the default tags that chain the levels, each distribution's package commands,
template filling and writing a build context.
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

DEFAULT_DEBIAN = "debian:12-slim"  # bookworm: its python3, libmimalloc2.0
DEBIAN_CODENAMES = {"bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14"}

_ALPINE_RELEASE = re.compile(r"(?:^|[/:@-])alpine[:-]v?(\d+\.\d+)(?:$|[.-])")
_DEBIAN_RELEASE = re.compile(
    r"(?:^|[/:@-])debian[:-](\d+|" + "|".join(DEBIAN_CODENAMES) + r")(?:$|[.-])")
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


def debian_release(ref: str) -> str | None:
    """"12" for debian:12, debian:bookworm-slim or rconfd-base:debian-12; None when ``ref`` does
    not say."""
    m = _DEBIAN_RELEASE.search(ref)
    return None if m is None else DEBIAN_CODENAMES.get(m.group(1), m.group(1))


def base_tag(release: str, mimalloc: bool = False, distro: str = "alpine") -> str:
    return f"localhost/rconfd-base:{distro}-{release}" + ("-mimalloc" if mimalloc else "")


def s6_tag(version: str, distro: str = "alpine") -> str:
    """Alpine's s6 layer is tagged with its s6-overlay alone; the others say their distro."""
    return f"localhost/s6-overlay:{version}" + ("" if distro == "alpine" else f"-{distro}")


def service_tag(name: str, distro: str = "alpine") -> str:
    return f"localhost/{name}:" + ("latest" if distro == "alpine" else distro)


_DEFAULT_RELEASE = alpine_release(DEFAULT_ALPINE) or ""
DEFAULT_BASE_TAG = base_tag(_DEFAULT_RELEASE)  # what `image base` builds, `image build` is FROM
DEFAULT_S6_TAG = s6_tag(S6_OVERLAY[_DEFAULT_RELEASE])  # what `image build` builds, services FROM
DEBIAN_S6_OVERLAY = "3.1.5.0"  # the s6-overlay whose skalibs, execline and s6 Debian 12 ships
DEFAULT_DEBIAN_BASE_TAG = base_tag(debian_release(DEFAULT_DEBIAN) or "", distro="debian")
DEFAULT_DEBIAN_S6_TAG = s6_tag(DEBIAN_S6_OVERLAY, "debian")
# --distro: (image base's --base, image build's --from, image service's --from)
DEFAULTS = {"alpine": (DEFAULT_ALPINE, DEFAULT_BASE_TAG, DEFAULT_S6_TAG),
            "debian": (DEFAULT_DEBIAN, DEFAULT_DEBIAN_BASE_TAG, DEFAULT_DEBIAN_S6_TAG)}


class Distro(NamedTuple):
    """How a distribution installs packages and adds users (Containerfile snippets)."""

    name: str  # --distro
    install: str  # a RUN installing {packages}
    add_user: str  # shell creating the system user {user} and its group
    mimalloc_package: str
    mimalloc_library: str  # for LD_PRELOAD
    repository: str | None  # a RUN trusting the repository {url} with the key {key}
    s6_packages: str | None  # the s6 layer's RUN: python3 + the s6-overlay package (None: none)
    python_packages: str  # the s6 layer's RUN with --s6-overlay-from: python3 only
    build_packages: str  # the source variant's build stage: python3 and pip


# The service scripts (the rootfs's rconfd, `image service`'s) start with #!/usr/bin/execlineb,
# as s6 upstream and Debian's execline have it; s6-overlay's tarballs put it in /command only.
_EXECLINEB_LINK = ("if [ ! -e /usr/bin/execlineb ]; then "
                   "ln -s /command/execlineb /usr/bin/execlineb; fi")

ALPINE = Distro(
    name="alpine",
    install="# hadolint ignore=DL3018\nRUN apk add --no-cache {packages}",
    add_user="addgroup -S {user} && adduser -S -D -H -h /nonexistent -s /sbin/nologin "
             "-G {user} {user}",
    mimalloc_package="mimalloc2",  # secure mode: /usr/lib/libmimalloc.so.2 -> -secure.so.2
    mimalloc_library="/usr/lib/libmimalloc.so.2",
    repository="COPY apk-keys/{key} /etc/apk/keys/{key}\n"
               "RUN {{ printf '%s\\n' {url}; cat /etc/apk/repositories; }} > /tmp/repositories \\\n"
               " && mv /tmp/repositories /etc/apk/repositories",
    # s6-overlay (Alpine community) brings /init, s6, s6-rc and execline; s6-portable-utils
    # s6-pause.
    s6_packages="""\
# The service scripts start with #!/usr/bin/execlineb (s6 upstream, Debian): link it there if
# the package installs execlineb elsewhere.
# hadolint ignore=DL3018
RUN apk add --no-cache python3 "s6-overlay=~${S6_OVERLAY_VERSION}" s6-portable-utils execline \\
 && if [ ! -e /usr/bin/execlineb ]; then \\
      ln -s "$(PATH="/command:$PATH" command -v execlineb)" /usr/bin/execlineb; \\
    fi""",
    # With --s6-overlay-from the tarballs bring /init, s6, s6-rc, execline and s6-pause
    # (/command): only python3 comes from apk.
    python_packages=f"""\
# The service scripts start with #!/usr/bin/execlineb (s6 upstream, Debian): link it there.
# hadolint ignore=DL3018
RUN apk add --no-cache python3 \\
 && {_EXECLINEB_LINK}""",
    build_packages="python3 py3-pip",
)

# Debian: no s6-overlay package, so the s6 layer needs --s6-overlay-from (Debian 12 ships the
# skalibs, execline and s6 that s6-overlay 3.1.5.0 pins: build it from source against them).
DEBIAN_INSTALL = ("# hadolint ignore=DL3008\nRUN apt-get update \\\n"
                  " && apt-get install -y --no-install-recommends {packages} \\\n"
                  " && rm -rf /var/lib/apt/lists/*")
DEBIAN = Distro(
    name="debian",
    install=DEBIAN_INSTALL,
    add_user="useradd --system --user-group --no-create-home --home-dir /nonexistent "
             "--shell /usr/sbin/nologin {user}",
    mimalloc_package="libmimalloc2.0",
    # The soname, no directory: ld.so finds it in its cache wherever the multiarch triplet
    # puts it (/usr/lib/x86_64-linux-gnu, /usr/lib/aarch64-linux-gnu, ...), also when the
    # image is built for another architecture than the builder's.
    mimalloc_library="libmimalloc.so.2",
    repository=None,
    s6_packages=None,
    python_packages="# The service scripts start with #!/usr/bin/execlineb: "
                    "link s6-overlay's there.\n"
    + DEBIAN_INSTALL.format(packages="python3 python3-venv ca-certificates")
    + f" \\\n && {_EXECLINEB_LINK}",
    build_packages="python3 python3-pip python3-venv",
)
DISTROS = {d.name: d for d in (ALPINE, DEBIAN)}


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
