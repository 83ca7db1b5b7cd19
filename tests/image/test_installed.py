"""`pip install rconfd-py`, then `rconfd-py image ...`: the builder works without a checkout.

The project's wheel is built (`pip wheel --no-deps`), installed non-editable into a fresh venv,
and every `image` subcommand runs with that venv's `rconfd-py` from a directory that is not the
checkout (no PYTHONPATH): the contexts are complete (Containerfile, the rootfs shipped as package
data, the wheel rebuilt from the installed RECORD), their Containerfiles lint, and the wheel put
into the context installs into another fresh venv and reports the same version.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_image import ROOT, ROOTFS, WHEEL_NAME, lint

from rconfd_py import __version__, errors
from rconfd_py.image.containerfile import generate
from rconfd_py.image.layers import DEFAULT_BASE_TAG, DEFAULT_S6_TAG

EXAMPLE = ROOT / "templates" / "examples" / "s6" / "myservice"
SOURCE = ("pyproject.toml", "README.md", "rconfd_py")


@dataclass
class Installed:
    venv: Path
    wheel: Path  # the one `pip wheel` built from the checkout
    work: Path  # the directory the commands run in: not the checkout

    def run(self, *args: str | Path, venv: Path | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RCONFD_", "VAULT_")) and k != "PYTHONPATH"}
        exe = (venv or self.venv) / "bin" / "rconfd-py"
        return subprocess.run([str(exe), *map(str, args)], cwd=cwd or self.work, env=env,
                              capture_output=True, text=True, timeout=120, check=False)


def pip(venv: Path, *args: str | Path) -> None:
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                           "--disable-pip-version-check", *map(str, args)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def fresh_venv(path: Path) -> Path:
    proc = subprocess.run([sys.executable, "-m", "venv", str(path)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return path


def files(tree: Path) -> dict[str, tuple[bytes, int]]:
    return {p.relative_to(tree).as_posix(): (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
            for p in sorted(tree.rglob("*")) if p.is_file()}


def wheel_contents(path: Path) -> dict[str, bytes]:
    """Every file but RECORD (its rows' order is the builder's)."""
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist() if not n.endswith(".dist-info/RECORD")}


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The checkout's wheel, installed (not editable) into a fresh venv; built once."""
    tmp = tmp_path_factory.mktemp("installed")
    src = tmp / "src"  # a copy: `pip wheel` of the checkout itself would leave build/ there
    src.mkdir()
    for name in SOURCE:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir",
                           "-q", "-w", str(tmp / "dist"), str(src)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    wheel = tmp / "dist" / WHEEL_NAME
    venv = fresh_venv(tmp / "venv")
    pip(venv, wheel)  # rjsonnet comes from the package index
    work = tmp / "work"
    work.mkdir()
    inst = Installed(venv, wheel, work)
    proc = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import rconfd_py; print(rconfd_py.__file__)"],
                          cwd=work, capture_output=True, text=True, timeout=60, check=False)
    assert Path(proc.stdout.strip()).is_relative_to(venv), proc.stdout + proc.stderr
    assert not list(venv.glob("lib/python*/site-packages/__editable__*")), "an editable install"
    return inst


@pytest.fixture(scope="session")
def installed_context(installed: Installed) -> Path:
    r = installed.run("image", "context", "ctx")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(installed.work / "ctx")
    return installed.work / "ctx"


def test_installed_context_is_complete_and_lints(installed: Installed, installed_context: Path):
    ctx = installed_context
    assert {p.name for p in ctx.iterdir()} == {"Containerfile", "wheels", "rootfs"}
    text = (ctx / "Containerfile").read_text()
    assert text == generate("context") and "COPY rootfs/ /" in text
    lint(text)
    # the s6 service exactly as in the checkout, modes included (run and finish executable)
    assert files(ctx / "rootfs") == files(ROOTFS)
    assert files(ROOTFS)["etc/s6-overlay/s6-rc.d/rconfd/run"][1] == 0o755
    # the wheel is rebuilt from the installed RECORD: the same files as the one pip built
    assert sorted(p.name for p in (ctx / "wheels").iterdir()) == [WHEEL_NAME]
    rebuilt = ctx / "wheels" / WHEEL_NAME
    assert wheel_contents(rebuilt) == wheel_contents(installed.wheel)
    with zipfile.ZipFile(rebuilt) as z:
        assert z.testzip() is None
        assert not [n for n in z.namelist() if "__pycache__" in n or n.endswith(
            ("INSTALLER", "REQUESTED", "direct_url.json"))]
    # reproducible: the same installation rebuilds the same bytes
    r = installed.run("image", "context", "again")
    assert r.returncode == 0, r.stderr
    assert (installed.work / "again" / "wheels" / WHEEL_NAME).read_bytes() == \
        rebuilt.read_bytes()


def test_installed_containerfile(installed: Installed, installed_context: Path):
    r = installed.run("image", "containerfile")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (ROOT / "Containerfile").read_text()  # the top-level one, from a venv
    lint(r.stdout)
    r = installed.run("image", "containerfile", "--context")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (installed_context / "Containerfile").read_text()


def dry_run(installed: Installed, *args: str | Path) -> tuple[Path, list[str]]:
    """`image ARGS --dry-run --builder podman --context DIR` (podman need not exist)."""
    r = installed.run("image", *args, "--dry-run", "--builder", "podman")
    assert r.returncode == 0, r.stderr
    first, command = r.stdout.splitlines()
    ctx = Path(first.removeprefix("# context: "))
    argv = shlex.split(command)
    assert argv[1:3] == ["build", "--tag"] and argv[-2:] == [str(ctx / "Containerfile"), str(ctx)]
    lint((ctx / "Containerfile").read_text())
    return ctx, argv


def test_installed_base_dry_run(installed: Installed):
    ctx, argv = dry_run(installed, "base", "--mimalloc", "--context", "base")
    assert ctx == installed.work / "base"
    assert argv[3] == f"{DEFAULT_BASE_TAG}-mimalloc"
    assert "LD_PRELOAD=/usr/lib/libmimalloc.so.2" in (ctx / "Containerfile").read_text()


def test_installed_build_dry_run(installed: Installed, installed_context: Path):
    ctx, argv = dry_run(installed, "build", "--context", "s6")
    assert ctx == installed.work / "s6"
    assert argv[3] == DEFAULT_S6_TAG
    assert files(ctx) == files(installed_context)  # the same context as `image context`


def test_installed_service_dry_run(installed: Installed):
    inputs = installed.work / "inputs"  # the example service's files, outside the checkout
    shutil.copytree(EXAMPLE, inputs)
    lib = ROOT / "templates" / "lib" / "rconfd.libsonnet"
    shutil.copy2(lib, inputs / lib.name)
    ctx, argv = dry_run(
        installed, "service", "myservice", "--exec", "/usr/bin/myservice -c /etc/m.conf",
        "--package", "myservice", "--critical", "--context", "svc",
        "--rconfd-config", "inputs/rconfd.json", "--template", "inputs/myservice.jsonnet",
        "--copy", "inputs/rconfd.libsonnet:/etc/rconfd/rconfd.libsonnet")
    assert ctx == installed.work / "svc" and argv[3] == "localhost/myservice:latest"
    for script in ("run", "finish"):
        path = ctx / "services.d" / "myservice" / script
        assert path.read_text().startswith("#!/usr/bin/execlineb") and os.access(path, os.X_OK)
    assert "/usr/bin/myservice -c /etc/m.conf" in (ctx / "services.d/myservice/run").read_text()
    assert sorted(p.name for p in (ctx / "rconfd").iterdir()) == ["myservice.json",
                                                                 "myservice.jsonnet"]


def test_context_wheel_installs_and_rebuilds(installed: Installed, installed_context: Path,
                                             tmp_path: Path):
    venv = fresh_venv(tmp_path / "venv")
    pip(venv, installed_context / "wheels" / WHEEL_NAME)
    r = installed.run("--version", venv=venv)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"rconfd-py {__version__}"
    # the rebuilt wheel is whole: installed, it writes the same context again
    r = installed.run("image", "context", tmp_path / "ctx", venv=venv)
    assert r.returncode == 0, r.stderr
    assert files(tmp_path / "ctx") == files(installed_context)
    # a modified installation is not shipped as if it were the release: one line, exit 7
    (scripts,) = venv.glob("lib/python*/site-packages/rconfd_py/image/scripts.py")
    scripts.write_text(scripts.read_text() + "\n# local change\n")
    r = installed.run("image", "context", tmp_path / "tampered", venv=venv)
    assert r.returncode == errors.EXIT_BUILD, r.stderr
    (line,) = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert "scripts.py differs from its RECORD" in line and "--wheel FILE" in line
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "tampered").exists()  # nothing written
