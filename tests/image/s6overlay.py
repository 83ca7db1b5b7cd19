"""s6-overlay 3.1.5.0 built from source for the image tests, as its all-in-one layout.

The archives are test material in ../shared/vendor/s6-overlay-3.1.5.0/ (RCONFD_S6_OVERLAY_SRC
overrides); the project never ships or imports them. Everything is built from them the way
s6-overlay's own mk/skaware.mk does (slashpackage, skarnet libraries static, then `install update
global-links`), except that libc stays Debian's glibc, linked dynamically: no musl toolchain to
fetch, and getpwnam() (s6-setuidgid, s6-envuidgid) keeps working through NSS, which a static
glibc cannot promise. Building skalibs, execline and s6 too (~40 s on 2 cores) rather than
linking against Debian's skalibs-dev/libexecline-dev/libs6-dev keeps the tree self-contained
(only libc.so.6 is needed in the image, no Debian s6 package whose /usr/bin tools would shadow or
mix with /command's) and needs no -dev packages in CI.

The result is one tarball, cached under ~/.cache/rconfd-py-tests/ (RCONFD_TEST_CACHE overrides)
in a directory named for a hash of the archives: ./init, ./command/ (symlinks),
./package/admin/<name>-<version>/ + ./package/admin/<name> links, ./package/prog/skalibs*, and
s6-overlay's scripts from its Makefile's ``rootfs-overlay-noarch`` target (SHEBANGDIR=/command).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

VERSION = "3.1.5.0"
VENDOR = Path(__file__).resolve().parents[3] / "shared" / "vendor" / f"s6-overlay-{VERSION}"
# In build order (each needs the ones before it), with s6-overlay's own configure options
# (conf/defaults.mk's SKAWARE_OPTIONS minus --enable-static-libc, mk/skaware.mk).
PACKAGES = {
    "skalibs-2.13.1.1": ["--with-default-path=/command:/usr/bin:/bin",
                         "--with-sysdep-devurandom=yes", "--with-sysdep-grndinsecure=no"],
    "execline-2.9.3.0": ["--disable-pedantic-posix", "--enable-multicall"],
    "s6-2.11.3.2": [],
    "s6-rc-0.5.4.1": [],
    "s6-linux-init-1.1.1.1": [],
    "s6-portable-utils-2.3.0.2": [],
    "s6-linux-utils-2.6.1.2": [],
    "s6-overlay-helpers-0.1.0.1": [],
}
OPTIONS = ["--enable-slashpackage", "--disable-shared"]
TARBALL = "s6-overlay.tar"


def source_dir() -> Path:
    """RCONFD_S6_OVERLAY_SRC, else ../shared/vendor next to this checkout, else next to the
    checkout this one was cloned from (CI tests a clean clone made elsewhere)."""
    if "RCONFD_S6_OVERLAY_SRC" in os.environ:
        return Path(os.environ["RCONFD_S6_OVERLAY_SRC"])
    if VENDOR.is_dir():
        return VENDOR
    origin = subprocess.run(["git", "-C", str(Path(__file__).parent), "config", "--get",
                             "remote.origin.url"], capture_output=True, text=True).stdout.strip()
    if origin.startswith(("/", "file://")):
        candidate = (Path(origin.removeprefix("file://")).resolve().parent / "shared" / "vendor"
                     / f"s6-overlay-{VERSION}")
        if candidate.is_dir():
            return candidate
    return VENDOR


def archives(src: Path) -> list[Path]:
    return [src / f"{name}.tar.gz" for name in [*PACKAGES, f"s6-overlay-{VERSION}"]]


def available(src: Path | None = None) -> bool:
    return all(p.is_file() for p in archives(src or source_dir()))


def cache_root() -> Path:
    return Path(os.environ.get("RCONFD_TEST_CACHE", Path.home() / ".cache" / "rconfd-py-tests"))


def key(src: Path) -> str:
    """A hash of the archives and of this recipe: a new archive or option rebuilds."""
    h = hashlib.sha256()
    for path in archives(src):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    h.update(repr((PACKAGES, OPTIONS)).encode())
    return h.hexdigest()[:16]


def _run(argv: list[str], cwd: Path, log: Path, env: dict | None = None) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        proc = subprocess.run(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=900,
                              env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
                              check=False)
    if proc.returncode != 0:
        tail = log.read_text()[-3000:]
        raise RuntimeError(f"{' '.join(argv)} in {cwd} exited {proc.returncode}:\n{tail}")


def noarch_overlay(source: Path, output: Path) -> Path:
    """s6-overlay's `make rootfs-overlay-noarch` (plain sed over layout/rootfs-overlay)."""
    _run(["make", "rootfs-overlay-noarch", f"OUTPUT={output}", "SHEBANGDIR=/command",
          f"VERSION={VERSION}"], source, output.parent / "build.log")
    return output / "rootfs-overlay-noarch"


def build(src: Path, dest: Path) -> Path:
    """Build everything from ``src`` into ``dest``/s6-overlay.tar (``dest`` created)."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix="build-") as tmp:
        work = Path(tmp)
        log = work / "build.log"
        staging = work / "staging"
        jobs = str(max(1, min(4, os.cpu_count() or 1)))
        for name, options in PACKAGES.items():
            with tarfile.open(src / f"{name}.tar.gz") as t:
                t.extractall(work, filter="tar")
            tree = work / name
            _run(["./configure", *OPTIONS, *options], tree, log, env={"DESTDIR": str(staging)})
            _run(["make", "-j", jobs], tree, log)
            _run(["make", "strip"], tree, log)
            _run(["make", "-L", "install", "update", "global-links", f"DESTDIR={staging}"],
                 tree, log)
        with tarfile.open(src / f"s6-overlay-{VERSION}.tar.gz") as t:
            t.extractall(work, filter="tar")
        noarch = noarch_overlay(work / f"s6-overlay-{VERSION}", work / "output")
        # as the all-in-one package: no headers or static libraries in the image
        for sub in ("include", "library"):
            for d in staging.glob(f"package/*/*/{sub}"):
                shutil.rmtree(d)
        subprocess.run(["cp", "-a", f"{noarch}/.", f"{staging}/"], check=True)
        out = dest / f"{TARBALL}.tmp"
        subprocess.run(["tar", "-C", str(staging), "--owner=0", "--group=0", "--numeric-owner",
                        "-cf", str(out), "."], check=True)
        os.replace(out, dest / TARBALL)
        shutil.copy(log, dest / "build.log")
    return dest / TARBALL


def tarball(src: Path | None = None) -> Path:
    """The cached s6-overlay tarball for the archives in ``src``, built on first use."""
    src = src or source_dir()
    dest = cache_root() / f"s6-overlay-{VERSION}-{key(src)}"
    if (dest / TARBALL).is_file():
        return dest / TARBALL
    return build(src, dest)


if __name__ == "__main__":  # python tests/image/s6overlay.py: build (or find) it, print its path
    print(tarball())
