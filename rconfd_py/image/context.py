"""The s6 layer's self-contained build context: Containerfile, deploy/rootfs/, the wheel."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import __version__
from ..errors import BuildError, ConfigError, OutputError
from .containerfile import ALPINE_PACKAGES, generate
from .layers import write_context as write_context_dir

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


def write_context(dest: str | Path, *, base: str | None = None, wheel: str | Path | None = None,
                  source: str | Path | None = None, system_packages: str = ALPINE_PACKAGES,
                  s6_overlay: str | None = None) -> Path:
    """Write the s6 layer's build context into ``dest`` (created; its Containerfile, wheels/ and
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
    text = generate("context", base=base, system_packages=system_packages, s6_overlay=s6_overlay)
    try:
        wheel_data = wheel.read_bytes() if wheel is not None else b""  # it may be in dest
    except OSError as e:
        raise OutputError(f"cannot read {wheel}: {e}") from None

    def populate(ctx: Path) -> None:
        (ctx / "wheels").mkdir()
        if wheel is None:
            build_wheel(root, ctx / "wheels")
        else:
            (ctx / "wheels" / wheel.name).write_bytes(wheel_data)
        shutil.copytree(rootfs, ctx / ROOTFS, symlinks=True)

    write_context_dir(dest, text, ("wheels", str(ROOTFS)), populate)
    log.debug("build context written to %s", dest)
    return dest
