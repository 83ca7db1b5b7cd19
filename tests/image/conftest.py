"""The image chain under s6-overlay's real /init: built once per session (s6-overlay and the
debootstrapped rootfs cached between runs), removed at the end."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import chain
import pytest
import s6overlay
from helpers import require, require_binaries


@pytest.fixture(scope="session")
def s6_overlay_tarball() -> Path:
    """s6-overlay 3.1.5.0 built from ../shared/vendor (cached by the archives' hash)."""
    require(f"the s6-overlay sources ({s6overlay.source_dir()})", s6overlay.available())
    require_binaries("gcc", "make")
    return s6overlay.tarball()


@pytest.fixture(scope="session")
def real_init_chain(tmp_path_factory: pytest.TempPathFactory,
                    s6_overlay_tarball: Path) -> Iterator[dict[str, float]]:
    """base -> s6 layer -> myservice on Debian bookworm with the real s6-overlay; yields the
    build timings."""
    require_binaries("buildah", "podman", "runc", "debootstrap")
    require("root (debootstrap, vfs storage, runc)", os.geteuid() == 0)
    times = {}
    t0 = time.monotonic()
    tarball = chain.debian_rootfs()
    times["debootstrap (cached)"] = time.monotonic() - t0
    chain.remove_stale_stores()
    try:
        t0 = time.monotonic()
        chain.debian_chain(tmp_path_factory.mktemp("chain"), chain.import_base(tarball),
                           s6_overlay_tarball)
        times["base import + 3 builds"] = time.monotonic() - t0
        yield times
    finally:
        shutil.rmtree(chain.STORE_DIR, ignore_errors=True)


@pytest.fixture
def container(real_init_chain) -> Iterator[chain.Container]:
    """A fresh container name on the service image; removed afterwards."""
    c = chain.Container()
    try:
        yield c
    finally:
        c.remove()
