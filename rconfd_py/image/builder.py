"""Container builders (buildah, podman, docker): find one, spell its build command, run it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..errors import BuildError, ConfigError

BUILDERS = ("buildah", "podman", "docker")  # search order


def find_builder(forced: str | None = None, *, must_exist: bool = True) -> tuple[str, str]:
    """(name, executable) of ``forced`` or of the first of BUILDERS on PATH. With
    ``must_exist=False`` a forced builder that is not installed is returned by name (dry runs)."""
    if forced is not None:
        if forced not in BUILDERS:
            raise ConfigError(f"--builder {forced}: choose one of {', '.join(BUILDERS)}")
        path = shutil.which(forced)
        if path is None and must_exist:
            raise ConfigError(f"container builder {forced} not found on PATH")
        return forced, path or forced
    for name in BUILDERS:
        path = shutil.which(name)
        if path is not None:
            return name, path
    raise ConfigError(f"no container builder found on PATH ({', '.join(BUILDERS)}): "
                      "install one, or use `rconfd-py image context DIR` and build it elsewhere")


def build_command(executable: str, context: Path, tag: str) -> list[str]:
    """The build command; the same flags work for buildah, podman and docker."""
    return [executable, "build", "--tag", tag, "--file", str(context / "Containerfile"),
            str(context)]


def run_build(name: str, argv: list[str]) -> None:
    """Run ``argv`` with the builder's output on the terminal; BuildError if it fails."""
    try:
        rc = subprocess.run(argv, check=False).returncode
    except OSError as e:
        raise BuildError(f"{name} could not be started: {e}") from None
    if rc != 0:
        raise BuildError(f"{name} build failed (exit {rc}); its output is above")
