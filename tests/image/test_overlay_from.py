"""`image build|context --s6-overlay-from FILE`: s6-overlay from tarballs instead of apk."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from cli import rconfd
from test_image import context, instructions, lint, one_error_line, wheel

from rconfd_py import errors

__all__ = ["context", "wheel"]  # module fixtures shared with test_image (the wheel, built once)


def tarball(path: Path, *members: str) -> Path:
    """A tar holding ``members`` (a trailing / makes a directory), as s6-overlay's do."""
    with tarfile.open(path, "w:xz" if path.name.endswith(".xz") else "w") as t:
        for name in members:
            info = tarfile.TarInfo(name.rstrip("/"))
            if name.endswith("/"):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                t.addfile(info)
            else:
                info.size, info.mode = 1, 0o755
                t.addfile(info, io.BytesIO(b"x"))
    return path


def test_release_tarballs_are_added_in_order(tmp_path: Path, wheel: Path):
    noarch = tarball(tmp_path / "s6-overlay-noarch.tar.xz", "./", "./init",
                     "./package/admin/s6-overlay-3.2.0.2/", "./command/with-contenv")
    arch = tarball(tmp_path / "s6-overlay-x86_64.tar.xz", "./",
                   "./package/admin/s6-2.12.0.3/command/s6-svc")
    r = rconfd("image", "build", "--from", "alpine:3.20", "--s6-overlay-from", noarch,
               "--s6-overlay-from", arch, "--wheel", wheel, "--context", tmp_path / "ctx",
               "--dry-run", "--builder", "podman", timeout=120)
    assert r.rc == 0, r.err
    assert "--tag localhost/s6-overlay:3.2.0.2 " in r.out  # the version the tarballs hold
    text = (tmp_path / "ctx" / "Containerfile").read_text()
    lint(text)
    cmds = [(c.cmd, c.value) for c in instructions(text)]
    assert ("ARG", ("S6_OVERLAY_VERSION=3.2.0.2",)) in cmds
    adds = [v for cmd, v in cmds if cmd == "ADD"]
    assert adds == [("s6-overlay/s6-overlay-noarch.tar.xz", "/"),
                    ("s6-overlay/s6-overlay-x86_64.tar.xz", "/")]
    assert ("ENV", ("PATH", '"/command:${PATH}"')) in cmds
    runs = [v[0] for cmd, v in cmds if cmd == "RUN"]
    assert "apk add --no-cache python3 " in runs[0] and "s6-overlay=" not in text
    assert sorted(p.name for p in (tmp_path / "ctx" / "s6-overlay").iterdir()) == [
        noarch.name, arch.name]
    assert (tmp_path / "ctx/s6-overlay" / noarch.name).read_bytes() == noarch.read_bytes()
    # without it, the Alpine default is as it was
    r = rconfd("image", "context", tmp_path / "alpine", "--wheel", wheel)
    assert r.rc == 0, r.err
    text = (tmp_path / "alpine" / "Containerfile").read_text()
    assert '"s6-overlay=~${S6_OVERLAY_VERSION}"' in text and "ADD" not in text
    assert not (tmp_path / "alpine" / "s6-overlay").exists()


@pytest.mark.parametrize("members,extra,needles", [
    ((), ["--s6-overlay-from", "/nonexistent/s6.tar"], ["no such file"]),
    (("./init",), [], ["not s6-overlay", "found none"]),
    (("./package/admin/s6-overlay-3.1.5.0/",), [], ["not s6-overlay", "./init"]),
    (("./init", "./package/admin/s6-overlay-3.1.5.0/", "./package/admin/s6-overlay-3.2.0.2/"),
     [], ["not s6-overlay", "3.1.5.0", "3.2.0.2"]),
    (("./init", "./package/admin/s6-overlay-3.1.5.0/"), ["--s6-overlay", "3.2.0.2"],
     ["--s6-overlay 3.2.0.2", "is 3.1.5.0"]),
])
def test_bad_tarballs_exit_2_and_write_nothing(tmp_path: Path, wheel: Path, members, extra,
                                               needles):
    args = ["--s6-overlay-from", tarball(tmp_path / "s6.tar", *members)] if members else []
    ctx = tmp_path / "ctx"
    r = rconfd("image", "context", ctx, "--wheel", wheel, *args, *extra)
    one_error_line(r, errors.EXIT_CONFIG, *needles)
    assert not ctx.exists()


def test_not_a_tarball_exits_2(tmp_path: Path, wheel: Path):
    (tmp_path / "s6.tar").write_text("not a tar")
    r = rconfd("image", "context", tmp_path / "ctx", "--wheel", wheel,
               "--s6-overlay-from", tmp_path / "s6.tar")
    one_error_line(r, errors.EXIT_CONFIG, "--s6-overlay-from", "not a tar archive")
