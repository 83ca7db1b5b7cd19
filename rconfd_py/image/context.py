"""The s6 layer's self-contained build context: Containerfile, rootfs/, wheels/ (the wheel).

The wheel is, in this order: ``--wheel FILE``; else one built from the source checkout
(``--source DIR``, or the checkout rconfd-py runs from); else one rebuilt from the installed
distribution's RECORD (``pip install rconfd-py``, no checkout). rootfs/ is always taken from
that wheel (rconfd_py/image/rootfs/), so the image's s6 service and its rconfd-py never differ.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from .. import __version__
from ..errors import BuildError, ConfigError, OutputError
from .containerfile import generate
from .layers import ALPINE, Distro
from .layers import write_context as write_context_dir
from .overlay import DIR as OVERLAY_DIR
from .overlay import copy_into, inspect

log = logging.getLogger(__name__)

DIST = "rconfd-py"
ROOTFS = "rootfs"  # in a context
PACKAGE_ROOTFS = "rconfd_py/image/rootfs/"  # in the checkout and in the wheel
SOURCE_FILES = ("pyproject.toml", "README.md", "rconfd_py")
# Written by the installer, not part of the wheel (PEP 376, PEP 610).
INSTALLER_FILES = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed: the same installation rebuilds the same bytes


def source_dir(given: str | Path | None = None) -> Path | None:
    """The source checkout: ``given`` (ConfigError if it is not one), else the one this package
    runs from (pyproject.toml next to rconfd_py/, as with ``pip install -e``), else None."""
    root = Path(given) if given else Path(__file__).resolve().parent.parent.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "rconfd-py"' in pyproject.read_text():
        return root
    if given:
        raise ConfigError(f"--source {root}: not a source checkout of rconfd-py "
                          "(no pyproject.toml): pass --source DIR or --wheel FILE")
    return None


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


def _digest(data: bytes, algorithm: str = "sha256") -> str:
    """A RECORD hash (PEP 376/427): ``algorithm=urlsafe-base64-nopad``; "" if unknown."""
    try:
        raw = hashlib.new(algorithm, data).digest()
    except ValueError:
        return ""
    return f"{algorithm}=" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def installed_distribution():
    """The installed rconfd-py distribution this very package belongs to; ConfigError if
    there is none (run from a copy of the package, not installed by an installer)."""
    from importlib import metadata

    hint = "pass --wheel FILE or --source DIR"
    try:
        dist = metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        raise ConfigError(f"rconfd-py runs neither from a source checkout nor from an installed "
                          f"distribution (no {DIST} RECORD): {hint}") from None
    init = Path(dist.locate_file("rconfd_py/__init__.py"))
    here = Path(__file__).resolve().parent.parent / "__init__.py"
    if dist.version != __version__ or not init.exists() or not init.samefile(here):
        raise ConfigError(f"the installed {DIST} {dist.version} ({init.parent}) is not the "
                          f"rconfd-py {__version__} running ({here.parent}): {hint}")
    if dist.files is None:
        raise ConfigError(f"the installed {DIST} {dist.version} has no RECORD: {hint}")
    return dist


def wheel_from_record(dest: Path) -> Path:
    """Rebuild the installed distribution's wheel into ``dest`` from its RECORD: every file
    it lists inside site-packages (not scripts, bytecode or the installer's own files), each
    checked against its RECORD hash; BuildError if one is missing or was modified."""
    dist = installed_distribution()
    files: dict[str, bytes] = {}
    modes: dict[str, int] = {}
    info_dir = None
    for entry in dist.files:
        name = entry.as_posix()
        parts = PurePosixPath(name).parts
        if name.startswith(("/", "../")) or "__pycache__" in parts or name.endswith(".pyc"):
            continue
        if parts[0].endswith(".dist-info"):
            info_dir = parts[0]
            if len(parts) == 2 and parts[1] in INSTALLER_FILES:
                continue
        path = Path(dist.locate_file(entry))
        try:
            data = path.read_bytes()
            mode = path.stat().st_mode
        except OSError as e:
            raise BuildError(f"cannot rebuild the {DIST} wheel: {path}: {e.strerror}: "
                             "reinstall it or pass --wheel FILE") from None
        if entry.hash is None:
            raise BuildError(f"cannot rebuild the {DIST} wheel: {path} has no hash in its "
                             "RECORD: pass --wheel FILE")
        if _digest(data, entry.hash.mode) != f"{entry.hash.mode}={entry.hash.value}":
            raise BuildError(f"cannot rebuild the {DIST} wheel: {path} differs from its RECORD "
                             "(the installation was modified): reinstall it or pass --wheel FILE")
        files[name] = data
        modes[name] = 0o755 if mode & 0o111 else 0o644
    wheel_meta = files.get(f"{info_dir}/WHEEL", b"").decode() if info_dir else ""
    tags = [ln.split(":", 1)[1].strip() for ln in wheel_meta.splitlines()
            if ln.startswith("Tag:")]
    if info_dir is None or not tags or "rconfd_py/__init__.py" not in files:
        raise BuildError(f"cannot rebuild the {DIST} wheel: its RECORD lists no WHEEL or no "
                         "rconfd_py/: pass --wheel FILE")
    # py3-none-any, or compressed tag sets: py2.py3-none-any
    components = [sorted({t.split("-")[i] for t in tags}) for i in range(3)]
    tag = "-".join(".".join(c) for c in components)
    target = dest / f"{info_dir.removesuffix('.dist-info')}-{tag}.whl"
    record = f"{info_dir}/RECORD"
    # the package first, .dist-info last (as bdist_wheel does), each in a fixed order
    order = sorted(files, key=lambda n: (n.startswith(f"{info_dir}/"), n))
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for name in order:
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.external_attr = (0o100000 | modes[name]) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, files[name])
            writer.writerow((name, _digest(files[name]), len(files[name])))
        writer.writerow((record, "", ""))
        info = zipfile.ZipInfo(record, ZIP_TIME)
        info.external_attr = (0o100000 | 0o644) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, rows.getvalue())
    log.debug("rebuilt %s from the RECORD of %s", target.name, dist.locate_file(info_dir))
    return target


def rootfs_files(wheel_name: str, wheel_data: bytes) -> dict[PurePosixPath, tuple[bytes, int]]:
    """The wheel's rconfd_py/image/rootfs/: {path below it: (content, mode)}; ConfigError if it
    is not a wheel or ships none."""
    files = {}
    try:
        with zipfile.ZipFile(io.BytesIO(wheel_data)) as z:
            for info in z.infolist():
                if not info.filename.startswith(PACKAGE_ROOTFS) or info.is_dir():
                    continue
                rel = PurePosixPath(info.filename[len(PACKAGE_ROOTFS):])
                if rel.is_absolute() or ".." in rel.parts:
                    raise ConfigError(f"{wheel_name}: bad path {info.filename!r}")
                executable = (info.external_attr >> 16) & 0o111
                files[rel] = (z.read(info), 0o755 if executable else 0o644)
    except (zipfile.BadZipFile, OSError) as e:
        raise ConfigError(f"{wheel_name}: not a wheel ({e})") from None
    if not files:
        raise ConfigError(f"{wheel_name} ships no {PACKAGE_ROOTFS} (older than rconfd-py "
                          f"{__version__}?): pass --wheel FILE with a newer one")
    return files


def write_rootfs(files: dict[PurePosixPath, tuple[bytes, int]], dest: Path) -> None:
    for rel, (data, mode) in sorted(files.items()):
        target = dest.joinpath(*rel.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)


def write_context(dest: str | Path, *, base: str | None = None, wheel: str | Path | None = None,
                  source: str | Path | None = None, system_packages: str | None = None,
                  s6_overlay: str | None = None,
                  s6_overlay_from: Sequence[str | Path] = (), distro: Distro = ALPINE) -> Path:
    """Write the s6 layer's build context into ``dest`` (created; its Containerfile, wheels/,
    rootfs/ and s6-overlay/ replaced, nothing else touched). Returns ``dest``.
    ``s6_overlay_from``: s6-overlay tarballs to install instead of Alpine's package (required
    on Debian)."""
    dest = Path(dest).resolve()
    if wheel is not None:
        wheel = Path(wheel)
        if not (wheel.is_file() and wheel.name.startswith("rconfd_py-")
                and wheel.suffix == ".whl"):
            raise ConfigError(f"--wheel {wheel}: not an rconfd_py-*.whl file")
    root = source_dir(source) if wheel is None or source is not None else None
    if root is not None and dest == root.resolve():
        raise ConfigError(f"{dest} is the source checkout: write the context elsewhere")
    if s6_overlay_from:
        s6_overlay = inspect(s6_overlay_from, s6_overlay)
    text = generate("context", base=base, system_packages=system_packages, s6_overlay=s6_overlay,
                    s6_overlay_from=[Path(p).name for p in s6_overlay_from], distro=distro)
    # the wheel, and the rootfs it ships, before anything is written: a failure leaves dest as is
    if wheel is not None:
        try:
            name, data = wheel.name, wheel.read_bytes()  # it may be in dest
        except OSError as e:
            raise OutputError(f"cannot read {wheel}: {e}") from None
    else:
        with tempfile.TemporaryDirectory(prefix="rconfd-wheel-") as tmp:
            built = build_wheel(root, Path(tmp)) if root is not None else \
                wheel_from_record(Path(tmp))
            name, data = built.name, built.read_bytes()
    rootfs = rootfs_files(name, data)

    def populate(ctx: Path) -> None:
        (ctx / "wheels").mkdir()
        (ctx / "wheels" / name).write_bytes(data)
        write_rootfs(rootfs, ctx / ROOTFS)
        if s6_overlay_from:
            copy_into(s6_overlay_from, ctx)

    write_context_dir(dest, text, ("wheels", ROOTFS, OVERLAY_DIR), populate)
    log.debug("build context written to %s", dest)
    return dest
