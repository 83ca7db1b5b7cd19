"""output.py as a hostile service user would attack it: rconfd-py runs as root and writes into a
directory that a real unprivileged user (made with useradd) owns. Every link, FIFO and hard link
below is planted by that user, with that user's own rights."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli import rconfd

from rconfd_py.errors import OutputError
from rconfd_py.output import TMP_SUFFIX, Owner, Writer


@pytest.fixture
def scene(hostile, shared_tmp):
    """/…/svc: the service user's dir; /…/vault: root-only, with a stand-in /etc/shadow."""
    svc = shared_tmp / "svc"
    svc.mkdir()
    hostile.own(svc)
    vault = shared_tmp / "vault"
    vault.mkdir(mode=0o700)
    shadow = vault / "shadow"
    shadow.write_text("root:$6$secret\n")
    shadow.chmod(0o600)
    return hostile, svc, vault, shadow


def as_user(user, *argv):
    return user.run(*argv)


def untouched(shadow: Path, content: str = "root:$6$secret\n") -> None:
    st = shadow.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)
    assert shadow.read_text() == content


def test_a_symlink_swapped_in_for_an_unchanged_file_is_not_chmod_or_chowned(scene):
    user, svc, _, shadow = scene
    owner = Owner(user.uid, user.gid)
    w = Writer()
    out = svc / "app.conf"
    w.write({out: b"root:$6$secret\n"}, 0o644, owner)  # same bytes as the target: "unchanged"
    as_user(user, "ln", "-sf", str(shadow), str(out))
    for writer in (w, Writer()):  # the daemon's writer (it knows the file), and a fresh start
        r = writer.write({out: b"root:$6$secret\n"}, 0o644, owner)
        untouched(shadow)
        assert not out.is_symlink() and out.stat().st_uid == user.uid
        assert r.changed == [out]  # the link was replaced by the rendered file
        as_user(user, "ln", "-sf", str(shadow), str(out))


def test_a_hard_link_to_a_root_file_is_replaced_not_chmod_or_chowned(scene):
    user, svc, vault, shadow = scene
    out = svc / "app.conf"
    os.link(shadow, out)  # protected_hardlinks stops the user; root stands in for the attack
    Writer().write({out: shadow.read_bytes()}, 0o644, Owner(user.uid, user.gid))
    untouched(shadow)
    assert out.stat().st_ino != shadow.stat().st_ino


def test_a_subdirectory_swapped_for_a_symlink_to_a_root_only_dir_is_refused(scene):
    user, svc, vault, shadow = scene
    (svc / "sub").mkdir()
    user.own(svc / "sub")
    w = Writer()
    keep = svc / "keep.conf"
    w.write({keep: b"old\n", svc / "sub" / "a.conf": b"one\n"}, 0o640, None)
    as_user(user, "rm", "-rf", str(svc / "sub"))
    as_user(user, "ln", "-s", str(vault), str(svc / "sub"))
    with pytest.raises(OutputError, match=rf"cannot write {svc}/sub/a.conf: {svc}/sub is a "
                                          rf"symbolic link owned by uid {user.uid}"):
        w.write({keep: b"new\n", svc / "sub" / "a.conf": b"two\n"}, 0o640, None)
    assert sorted(os.listdir(vault)) == ["shadow"]
    assert keep.read_text() == "old\n"  # the whole template failed: nothing renamed
    assert not [p for p in svc.iterdir() if p.name.endswith(TMP_SUFFIX)]


def test_a_symlinked_dir_higher_up_is_refused_too(scene):
    user, svc, vault, _ = scene
    as_user(user, "ln", "-s", str(vault), str(svc / "conf.d"))
    with pytest.raises(OutputError, match="is a symbolic link owned by uid"):
        Writer().write({svc / "conf.d" / "x" / "a.conf": b"x\n"}, 0o640, None)
    assert sorted(os.listdir(vault)) == ["shadow"]


def test_symlinks_of_root_are_followed(shared_tmp):
    real = shared_tmp / "real"
    real.mkdir()
    (shared_tmp / "link").symlink_to("real")  # relative, made by root
    (shared_tmp / "abs").symlink_to(shared_tmp / "link")  # absolute, to another link
    Writer().write({shared_tmp / "abs" / "d" / "a.conf": b"x\n"}, 0o640, None)
    assert (real / "d" / "a.conf").read_text() == "x\n"


def test_a_loop_of_root_links_is_an_error_not_a_hang(shared_tmp):
    (shared_tmp / "a").symlink_to("b")
    (shared_tmp / "b").symlink_to("a")
    with pytest.raises(OutputError, match="too many levels of symbolic links"):
        Writer().write({shared_tmp / "a" / "x.conf": b"x\n"}, 0o640, None)


@pytest.mark.parametrize("plant", ["fifo", "dev-zero", "dangling"])
def test_what_stands_at_an_output_name_is_replaced_never_read(scene, plant):
    user, svc, _, _ = scene
    out = svc / "app.conf"
    if plant == "fifo":
        as_user(user, "mkfifo", str(out))
    elif plant == "dev-zero":
        as_user(user, "ln", "-s", "/dev/zero", str(out))
    else:
        as_user(user, "ln", "-s", str(svc / "nowhere"), str(out))
    # in a child process with a deadline: a read of the FIFO or /dev/zero would hang
    code = ("import sys; from pathlib import Path; from rconfd_py.output import Writer; "
            "r = Writer().write({Path(sys.argv[1]): b'new\\n'}, 0o640, None); "
            "print(len(r.changed), len(r.replaced))")
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True,
                          timeout=20, cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1"]
    assert stat.S_ISREG(out.lstat().st_mode) and out.read_text() == "new\n"


def test_a_directory_at_an_output_name_is_an_error_naming_it(tmp_path):
    (tmp_path / "a.conf").mkdir()
    with pytest.raises(OutputError, match=f"cannot write {tmp_path}/a.conf: it is a directory"):
        Writer().write({tmp_path / "a.conf": b"x\n"}, 0o640, None)


def test_stale_temp_files_of_our_outputs_are_removed_and_nothing_else(scene):
    user, svc, _, shadow = scene
    stale = svc / f".app.conf.0badc0de{TMP_SUFFIX}"
    stale.write_text("half a secr")
    trap = svc / f".app.conf.deadbeef{TMP_SUFFIX}"
    as_user(user, "ln", "-s", str(shadow), str(trap))  # unlinked, never followed
    other = svc / f".other.conf.0badc0de{TMP_SUFFIX}"  # not one of ours
    other.write_text("x")
    notours = svc / f".app.conf.x{TMP_SUFFIX}"
    notours.write_text("x")
    nothex = svc / f".app.conf.0BADC0DE{TMP_SUFFIX}"
    nothex.write_text("x")
    Writer().write({svc / "app.conf": b"new\n"}, 0o640, None)
    assert not stale.exists() and not trap.is_symlink()
    assert other.exists() and notours.exists() and nothex.exists()
    untouched(shadow)


def test_a_template_failing_on_a_full_disk_leaves_every_file_as_it_was(shared_tmp, tmp_path):
    """One-shot, two templates: A's dir is fine, B's is a tmpfs that fills up."""
    full = mount_tmpfs(shared_tmp / "full", "16k")
    try:
        cfg = tmp_path / "cfg"
        cfg.mkdir()
        (cfg / "a.jsonnet").write_text("{ 'a.conf': 'new a' }")
        (cfg / "b.jsonnet").write_text("{ 'b.conf': std.repeat(['x'], 40000) }")
        ok = shared_tmp / "ok"
        ok.mkdir()
        (ok / "a.conf").write_text("old a\n")
        (full / "b.conf").write_text("old b\n")
        (cfg / "r.json").write_text(json.dumps({
            "a.jsonnet": {"dir": str(ok)}, "b.jsonnet": {"dir": str(full)}}))
        run = rconfd("-d", cfg)
        assert run.rc == 6, run.err
        assert len(run.lines) == 1 and f"cannot write {full}/b.conf" in run.err
        assert "No space left on device" in run.err and "Traceback" not in run.err
        assert (ok / "a.conf").read_text() == "old a\n"
        assert (full / "b.conf").read_text() == "old b\n"
        assert sorted(p.name for p in (*ok.iterdir(), *full.iterdir())) == ["a.conf", "b.conf"]
    finally:
        subprocess.run(["umount", "-l", str(full)], check=False)


def mount_tmpfs(where: Path, size: str) -> Path:
    from helpers import require

    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    require(f"a tmpfs mount ({done.stderr.strip()})", done.returncode == 0)
    return where


def test_a_hostile_users_symlink_through_the_cli_is_one_line_exit_6(scene, tmp_path):
    """The real command, as root, with `user` set: the attack of the issue, end to end."""
    user, svc, vault, shadow = scene
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "t.jsonnet").write_text("{ 'app.conf': 'root:$6$secret', 'sub/b.conf': 'b' }")
    (cfg / "r.json").write_text(json.dumps({"t.jsonnet": {
        "dir": str(svc), "mode": "0644", "user": user.name}}))
    assert rconfd("-d", cfg).rc == 0
    as_user(user, "ln", "-sf", str(shadow), str(svc / "app.conf"))
    run = rconfd("-d", cfg)
    assert run.rc == 0, run.err  # the link is replaced by the rendered file
    untouched(shadow)
    assert (svc / "app.conf").stat().st_uid == user.uid and not (svc / "app.conf").is_symlink()
    as_user(user, "mv", str(svc / "sub"), str(svc / "sub.old"))  # root's dir, the user's dir
    as_user(user, "ln", "-s", str(vault), str(svc / "sub"))
    before = (svc / "app.conf").stat().st_mtime_ns
    run = rconfd("-d", cfg)
    assert run.rc == 6 and len(run.lines) == 1, run.err
    assert f"{svc}/sub is a symbolic link owned by uid {user.uid}" in run.err
    assert sorted(os.listdir(vault)) == ["shadow"]
    assert (svc / "app.conf").stat().st_mtime_ns == before


def test_kill_9_at_random_points_never_leaves_a_torn_file(shared_tmp, tmp_path):
    """Start one-shot runs that rewrite 20 files of 256 KiB, SIGKILL each at a random moment:
    every file is always the old or the new content, whole; the next run removes the temp files
    the killed ones left."""
    import random

    cfg = tmp_path / "cfg"
    cfg.mkdir()
    out = shared_tmp / "out"
    names = [f"f{i}.txt" for i in range(20)]
    (cfg / "t.jsonnet").write_text(
        "local v = std.extVar('secrets').v; { [n]: std.repeat(v, 16384) for n in %s }"
        % json.dumps(names))
    (cfg / "r.json").write_text(json.dumps({"t.jsonnet": {
        "dir": str(out), "secrets": {"env:str:V": "v"}}}))
    versions = [f"{chr(65 + i % 26) * 15}" for i in range(40)]
    whole = {v: (v * 16384 + "\n") for v in versions}
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    env = {k: v for k, v in env.items() if not k.startswith(("RCONFD_", "VAULT_"))}
    env["RCONFD_STATE_DIR"] = env["RCONFD_STATUS_FILE"] = "none"  # not the machine's /run
    assert subprocess.run([sys.executable, "-m", "rconfd_py", "-d", str(cfg)],
                          env={**env, "V": versions[0]}, timeout=60).returncode == 0
    rng = random.Random(os.environ.get("RCONFD_TEST_SEED", "9"))
    killed_mid_write = 0
    for i, v in enumerate(versions[1:30]):
        proc = subprocess.Popen([sys.executable, "-m", "rconfd_py", "-d", str(cfg)],
                                env={**env, "V": v}, stderr=subprocess.DEVNULL)
        if i % 2:  # anywhere in the run (start-up, fetch, render, write)
            time.sleep(rng.uniform(0.0, 0.6))
        else:  # inside the write phase, however long start-up takes on this machine
            deadline = time.monotonic() + 20
            while (proc.poll() is None and time.monotonic() < deadline
                   and not any(p.name.endswith(TMP_SUFFIX) for p in out.iterdir())):
                time.sleep(0.0005)
            time.sleep(rng.uniform(0.0, 0.02))
        proc.kill()
        proc.wait()
        for n in names:
            assert (out / n).read_text() in whole.values()
        if any(p.name.endswith(TMP_SUFFIX) for p in out.iterdir()):
            killed_mid_write += 1
    assert killed_mid_write, "no kill landed while files were being written"
    run = subprocess.run([sys.executable, "-m", "rconfd_py", "-d", str(cfg)],
                         env={**env, "V": versions[-1]}, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert all((out / n).read_text() == whole[versions[-1]] for n in names)


def test_a_root_link_renamed_by_the_user_in_their_own_dir_is_not_followed(scene):
    """The link is root's (made in the image), but the user can rename it to the name rconfd-py
    walks: in a directory another user can change, no link is followed."""
    user, svc, vault, _ = scene
    (svc / "logs").symlink_to(vault)  # root's link, in the user's directory
    user.run("mv", str(svc / "logs"), str(svc / "conf.d"))
    with pytest.raises(OutputError, match=f"{svc}/conf.d is a symbolic link in a directory "
                                          "that another user can change"):
        Writer().write({svc / "conf.d" / "app.conf": b"x\n"}, 0o640, None)
    assert sorted(os.listdir(vault)) == ["shadow"]


def test_a_hard_link_to_a_root_symlink_is_not_followed(scene):
    """With fs.protected_hardlinks=0 (the kernel's default), the user can hard-link root's own
    /var/run -> /run link into their dir; root stands in for that here."""
    _, svc, vault, _ = scene
    (vault.parent / "run-link").symlink_to(vault)
    os.link(vault.parent / "run-link", svc / "conf.d", follow_symlinks=False)
    with pytest.raises(OutputError, match="in a directory that another user can change"):
        Writer().write({svc / "conf.d" / "app.conf": b"x\n"}, 0o640, None)
    assert sorted(os.listdir(vault)) == ["shadow"]
