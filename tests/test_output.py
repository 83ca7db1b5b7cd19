import os
import stat

import pytest

from rconfd_py.errors import OutputError
from rconfd_py.output import TMP_SUFFIX, Writer, output_path


def leftovers(d):
    return [p for p in d.rglob("*") if p.name.endswith(TMP_SUFFIX)]


def test_writes_with_mode_creates_parents_and_skips_unchanged(tmp_path):
    w = Writer()
    a, b = tmp_path / "x" / "a.conf", tmp_path / "b.conf"
    r = w.write({a: b"one\n", b: b"two\n"}, 0o640, None)
    assert sorted(r.changed) == sorted([a, b]) and r.replaced == []
    assert a.read_bytes() == b"one\n" and stat.S_IMODE(a.stat().st_mode) == 0o640
    mtime = a.stat().st_mtime_ns
    r = w.write({a: b"one\n", b: b"three\n"}, 0o640, None)
    assert r.changed == [b] and r.replaced == [b]
    assert a.stat().st_mtime_ns == mtime  # unchanged content: not rewritten
    assert leftovers(tmp_path) == []


def test_unchanged_content_on_disk_is_detected_by_a_fresh_writer(tmp_path):
    a = tmp_path / "a"
    a.write_bytes(b"same\n")
    os.chmod(a, 0o644)
    r = Writer().write({a: b"same\n"}, 0o600, None)
    assert r.changed == [] and stat.S_IMODE(a.stat().st_mode) == 0o600  # mode still enforced


def test_mode_is_exact_despite_umask(tmp_path):
    old = os.umask(0o077)
    try:
        Writer().write({tmp_path / "a": b"x"}, 0o644, None)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o644


def test_failure_while_staging_touches_nothing(tmp_path):
    good = tmp_path / "good.conf"
    good.write_bytes(b"old\n")
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    for bad in (blocker / "x.conf", blocker / "sub" / "x.conf"):
        with pytest.raises(OutputError, match=f"cannot write {bad}: .* is not a directory"):
            Writer().write({good: b"new\n", bad: b"x"}, 0o600, None)
    assert good.read_bytes() == b"old\n"
    assert leftovers(tmp_path) == []


def test_a_directory_removed_under_a_running_writer_is_made_again(tmp_path):
    w = Writer()
    a = tmp_path / "d" / "a.conf"
    w.write({a: b"one\n"}, 0o640, None)
    (tmp_path / "d" / "a.conf").unlink()
    (tmp_path / "d").rmdir()
    assert w.write({a: b"two\n"}, 0o640, None).changed == [a] and a.read_bytes() == b"two\n"


def test_rename_replaces_a_symlink_not_its_target(tmp_path):
    target = tmp_path / "target"
    target.write_text("keep\n")
    link = tmp_path / "link"
    link.symlink_to(target)
    Writer().write({link: b"new\n"}, 0o600, None)
    assert target.read_text() == "keep\n" and not link.is_symlink()


def test_output_path_relative_and_absolute(tmp_path):
    assert output_path(tmp_path, "a/../b.txt") == tmp_path / "b.txt"
    assert str(output_path(tmp_path, "/etc/x")) == "/etc/x"


def test_a_rename_failing_halfway_puts_back_what_was_already_renamed(tmp_path):
    """The directory's owner removes a staged temp file before the commit: the files renamed
    before it are put back (old content, or absent as before), and nothing is left over."""
    a, b, c = tmp_path / "a.conf", tmp_path / "new.conf", tmp_path / "sub" / "z.conf"
    w = Writer()
    w.write({a: b"old a\n", c: b"old z\n"}, 0o640, None)
    batch = w.batch()
    w.stage(batch, {a: b"new a\n", b: b"new\n"}, 0o640, None)
    w.stage(batch, {c: b"new z\n"}, 0o640, None)
    staged = [p for p in (tmp_path / "sub").iterdir() if p.name.endswith(TMP_SUFFIX)]
    assert len(staged) == 1
    staged[0].unlink()
    with pytest.raises(OutputError, match=f"cannot replace {c}: No such file or directory"):
        w.commit(batch)
    assert a.read_bytes() == b"old a\n" and not b.exists() and c.read_bytes() == b"old z\n"
    assert leftovers(tmp_path) == []
    r = w.write({a: b"new a\n"}, 0o640, None)  # the writer forgot what it had renamed
    assert r.changed == [a] and a.read_bytes() == b"new a\n"


def test_a_file_grown_by_its_owner_is_compared_without_reading_it_all(tmp_path):
    a = tmp_path / "a.conf"
    a.write_bytes(b"same\n")
    with open(a, "r+b") as f:  # what the racing owner leaves: the right size at stat time is
        f.truncate(1 << 40)     # not needed, a sparse terabyte is never read past 6 bytes
    w = Writer()
    from rconfd_py.output import _fd_holds

    fd = os.open(a, os.O_RDONLY)
    try:
        assert not _fd_holds(fd, b"same\n")
    finally:
        os.close(fd)
    assert w.write({a: b"same\n"}, 0o640, None).changed == [a]


def test_long_names_share_no_temp_files(tmp_path):
    names = ["x" * 200 + "a", "x" * 200 + "b", "é" * 120]
    files = {tmp_path / n: n.encode() for n in names}
    assert sorted(Writer().write(files, 0o640, None).changed) == sorted(files)
    assert all(p.read_bytes() == d for p, d in files.items()) and leftovers(tmp_path) == []
