"""fs.py: reaching paths without following links a service user planted, and the `file`
backend that reads secrets through it, attacked by a real unprivileged user (useradd)."""

from __future__ import annotations

import json
import os

import pytest
from cli import rconfd

from rconfd_py.fs import UnsafePath, open_dir, open_file


def file_secret_config(tmp_path, path) -> tuple:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    out = tmp_path / "out"
    (cfg / "t.jsonnet").write_text("{ 'out.txt': std.extVar('secrets').v }")
    (cfg / "r.json").write_text(json.dumps({"t.jsonnet": {
        "dir": str(out), "secrets": {f"file:str:{path}": "v"}}}))
    return cfg, out


@pytest.fixture
def svc(hostile, shared_tmp):
    d = shared_tmp / "svc"
    d.mkdir()
    hostile.own(d)
    shadow = shared_tmp / "vault" / "shadow"
    shadow.parent.mkdir(mode=0o700)
    shadow.write_text("root:$6$topsecret\n")
    shadow.chmod(0o600)
    return hostile, d, shadow


def test_a_file_secret_swapped_for_the_users_symlink_is_refused(svc, tmp_path):
    user, d, shadow = svc
    user.run("ln", "-s", str(shadow), str(d / "input.txt"))
    cfg, out = file_secret_config(tmp_path, d / "input.txt")
    run = rconfd("-d", cfg, "-v")
    assert run.rc == 5 and "Traceback" not in run.err, run.err
    assert f"{d}/input.txt is a symbolic link owned by uid {user.uid}" in run.err
    assert "topsecret" not in run.err and not out.exists()


def test_a_file_secret_behind_the_users_symlinked_dir_is_refused(svc, tmp_path):
    user, d, shadow = svc
    user.run("ln", "-s", str(shadow.parent), str(d / "conf"))
    cfg, out = file_secret_config(tmp_path, d / "conf" / "shadow")
    run = rconfd("-d", cfg)
    assert run.rc == 5 and f"{d}/conf is a symbolic link owned by uid {user.uid}" in run.err
    assert not out.exists()


def test_a_fifo_at_a_file_secret_fails_at_once(svc, tmp_path):
    user, d, _ = svc
    user.run("mkfifo", str(d / "input.txt"))
    cfg, _ = file_secret_config(tmp_path, d / "input.txt")
    run = rconfd("-d", cfg, timeout=20)  # a blocking read would hang here
    assert run.rc == 5 and len(run.lines) == 1, run.err
    assert f"{d}/input.txt is not a regular file" in run.err


def test_root_links_are_followed_as_kubernetes_makes_them(tmp_path):
    """A mounted Secret: `password -> ..data/password`, `..data -> ..2026_11_30...`."""
    vol = tmp_path / "vol"
    (vol / "..2026_11_30_01").mkdir(parents=True)
    (vol / "..2026_11_30_01" / "password").write_text("hunter22\r\n")
    (vol / "..data").symlink_to("..2026_11_30_01")
    (vol / "password").symlink_to("..data/password")
    cfg, out = file_secret_config(tmp_path, vol / "password")
    run = rconfd("-d", cfg)
    assert run.rc == 0, run.err
    assert (out / "out.txt").read_text() == "hunter22\n"


def test_relative_paths_start_at_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "rel").mkdir()
    (tmp_path / "rel" / "v.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    fd, st = open_file("rel/v.txt")
    os.close(fd)
    assert st.st_size == 1


def test_open_dir_without_create_names_what_is_missing(tmp_path):
    with pytest.raises(UnsafePath, match=rf"No such file or directory \({tmp_path}/nope\)"):
        open_dir(str(tmp_path / "nope" / "deeper"))
    os.close(open_dir(str(tmp_path / "made" / "deeper"), create=True))
    assert (tmp_path / "made" / "deeper").is_dir()


def test_a_root_link_the_user_renamed_onto_a_file_secret_is_not_read(svc, tmp_path):
    user, d, shadow = svc
    (d / "ca.pem").symlink_to(shadow)  # root's link in the user's dir, to a root-only file
    user.run("mv", str(d / "ca.pem"), str(d / "token"))
    cfg, out = file_secret_config(tmp_path, d / "token")
    run = rconfd("-d", cfg)
    assert run.rc == 5 and "in a directory that another user can change" in run.err, run.err
    assert not out.exists()


def test_a_hard_link_to_a_root_file_is_not_read(svc, tmp_path):
    _, d, shadow = svc
    os.link(shadow, d / "token")  # what protected_hardlinks=0 lets the user do
    cfg, out = file_secret_config(tmp_path, d / "token")
    run = rconfd("-d", cfg)
    assert run.rc == 5 and f"{d}/token is a file with several hard links" in run.err, run.err
    assert not out.exists()


def test_root_links_on_a_read_only_mount_are_followed_whatever_the_modes(shared_tmp, tmp_path):
    """A Kubernetes Secret volume with fsGroup: group-writable dirs, but mounted read-only."""
    import subprocess

    from helpers import require

    vol = shared_tmp / "vol"
    vol.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=2775", "tmpfs",
                           str(vol)], capture_output=True, text=True)
    require(f"a tmpfs mount ({done.stderr.strip()})", done.returncode == 0)
    try:
        (vol / "..2026_11_30").mkdir()
        (vol / "..2026_11_30" / "password").write_text("hunter22")
        (vol / "..data").symlink_to("..2026_11_30")
        (vol / "password").symlink_to("..data/password")
        cfg, out = file_secret_config(tmp_path, vol / "password")
        run = rconfd("-d", cfg)
        assert run.rc == 5 and "another user can change" in run.err  # writable: refused
        subprocess.run(["mount", "-o", "remount,ro", str(vol)], check=True)
        run = rconfd("-d", cfg)
        assert run.rc == 0, run.err
        assert (out / "out.txt").read_text() == "hunter22\n"
    finally:
        subprocess.run(["umount", "-l", str(vol)], check=False)


def test_read_capped_reads_at_most_one_byte_past_the_limit(tmp_path):
    from rconfd_py.fs import read_capped

    f = tmp_path / "f"
    f.write_bytes(b"x" * 10)
    for limit, want in ((10, b"x" * 10), (11, b"x" * 10), (9, None), (0, None)):
        fd = os.open(f, os.O_RDONLY)
        try:
            assert read_capped(fd, limit) == want
            assert os.lseek(fd, 0, os.SEEK_CUR) <= limit + 1
        finally:
            os.close(fd)
