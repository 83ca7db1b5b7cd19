"""A self-contained build context: Containerfile, deploy/rootfs/ and the rconfd-py wheel."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import __version__
from ..errors import BuildError, ConfigError, OutputError
from .containerfile import ALPINE_PACKAGES, DEFAULT_BASE, render

log = logging.getLogger(__name__)

ROOTFS = Path("deploy") / "rootfs"
SOURCE_FILES = ("pyproject.toml", "README.md", "rconfd_py")


def source_dir(given: str | Path | None = None) -> Path:
    """The source checkout: ``given``, else the one this package runs from (pyproject.toml next
    to rconfd_py/, as with ``pip install -e``). ConfigError when there is none."""
    root = Path(given) if given else Path(__file__).resolve().parent.parent.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "rconfd-py"' in pyproject.read_text():
        return root
    where = f"{root} is not" if given else "rconfd-py is not running from"
    raise ConfigError(f"{where} a source checkout of rconfd-py (no pyproject.toml): "
                      "pass --source DIR, or --wheel FILE and --source DIR for deploy/rootfs")


def build_wheel(source: Path, dest: Path) -> Path:
    """``pip wheel --no-deps`` of ``source`` (copied first, so the checkout gets no build/)."""
    with tempfile.TemporaryDirectory(prefix="rconfd-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in SOURCE_FILES:
            path = source / name
            if path.is_dir():
                shutil.copytree(path, src / name,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(path, src / name)
        argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-q",
                "-w", str(dest), str(src)]
        log.debug("building the wheel: %s", " ".join(argv))
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        raise BuildError(f"pip wheel of {source} failed (exit {proc.returncode}): "
                         f"{lines[-1] if lines else 'no output'}", detail=proc.stderr)
    wheels = sorted(dest.glob(f"rconfd_py-{__version__}-*.whl"))
    if not wheels:
        raise BuildError(f"pip wheel of {source} made no rconfd_py-{__version__} wheel")
    return wheels[-1]


def write_context(dest: str | Path, *, base: str = DEFAULT_BASE, wheel: str | Path | None = None,
                  source: str | Path | None = None,
                  system_packages: str = ALPINE_PACKAGES) -> Path:
    """Write a build context into ``dest`` (created; its Containerfile, wheels/ and
    deploy/rootfs/ replaced, nothing else touched). Returns ``dest``."""
    dest = Path(dest).resolve()
    if wheel is not None:
        wheel = Path(wheel)
        if not (wheel.is_file() and wheel.name.startswith("rconfd_py-")
                and wheel.suffix == ".whl"):
            raise ConfigError(f"--wheel {wheel}: not an rconfd_py-*.whl file")
    root = source_dir(source)
    rootfs = root / ROOTFS
    if not rootfs.is_dir():
        raise ConfigError(f"{rootfs} not found: the source checkout has no deploy/rootfs")
    if dest == root.resolve() or (dest / ROOTFS).resolve() == rootfs.resolve():
        raise ConfigError(f"{dest} is the source checkout: write the context elsewhere")
    try:
        text = render("context", base=base, system_packages=system_packages)
    except ValueError as e:
        raise ConfigError(f"--base: {e}") from None
    try:
        wheel_data = wheel.read_bytes() if wheel is not None else b""  # it may be in dest
        dest.mkdir(parents=True, exist_ok=True)
        for old in (dest / "wheels", dest / ROOTFS):
            if old.is_dir():
                shutil.rmtree(old)
        (dest / "wheels").mkdir()
        if wheel is None:
            build_wheel(root, dest / "wheels")
        else:
            (dest / "wheels" / wheel.name).write_bytes(wheel_data)
        shutil.copytree(rootfs, dest / ROOTFS, symlinks=True)
        (dest / "Containerfile").write_text(text)
    except OSError as e:
        raise OutputError(f"cannot write the build context {dest}: {e}") from None
    log.debug("build context written to %s", dest)
    return dest
