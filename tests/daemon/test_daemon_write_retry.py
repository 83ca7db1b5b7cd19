"""Daemon mode: a render or write that failed is retried with backoff until it lands, racing the
expiry of what is on disk, without fetching the secrets again.

The first test is the defect as it happened: a full disk during a rotation of real PostgreSQL
credentials from OpenBao. The others drive the daemon's scheduling with a fake clock, a real
Pipeline, real files and real write failures (a file standing where the output dir should be)."""

from __future__ import annotations

import errno
import logging
import random
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from cli import DaemonProc
from helpers import audit_request_paths, require
from test_daemon import DB, jwt, read_json, role_valid, setup

from rconfd_py.daemon.loop import Daemon
from rconfd_py.daemon.policy import PERMANENT_CAP
from rconfd_py.daemon.timers import Kind, Timer
from rconfd_py.ledger import SecretEntry, TemplateEntry
from rconfd_py.pipeline import Pipeline
from rconfd_py.settings import Settings
from rconfd_py.vault import leases

DB_TEMPLATE = "local s = std.extVar('secrets'); { 'db.json': { user: s.db.username } }"


def fill(path: Path) -> None:
    """Write `path` until the filesystem is full (ENOSPC)."""
    chunk = b"\0" * 4096
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            os.write(fd, chunk)
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
    finally:
        os.close(fd)


def mount_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True)
    return r.returncode == 0


def db_leases(client) -> set[str]:
    try:
        keys = client.sys.list_leases(prefix="database/creds/mydb")["data"]["keys"]
    except Exception:  # no lease at all: 404
        return set()
    return {f"database/creds/mydb/{k}" for k in keys}


def test_full_disk_during_rotation_is_retried_until_the_live_credential_lands(
        tmp_path, vault_env, pg, stack):
    """~30 s. Disk full when the credential rotates: the new credential is minted but cannot be
    written. Once space is back, it lands within a retry (the old code waited for the next
    change: up to the new lease's max_ttl, 60 s here), without minting again at each retry."""
    out = tmp_path / "out"
    out.mkdir()
    require("root and mount (tmpfs)", mount_tmpfs(out, "64k"))
    try:
        cfg = setup(tmp_path, {"t.jsonnet": (DB_TEMPLATE, {DB: "db"})}, hook=False)
        client = stack.client()
        audit_before = len(audit_request_paths(stack.audit_log))
        leases_before = db_leases(client)
        d = DaemonProc("-d", cfg, *jwt(vault_env), "-v", log=tmp_path / "log")
        try:
            old = d.wait_for(lambda: (read_json(out / "db.json") or {}).get("user"), 15,
                             "first render")
            assert role_valid(pg, old)
            (lease,) = db_leases(client) - leases_before  # the daemon's credential
            fill(out / "filler")
            # rotate now rather than at max_ttl (60 s): the lease is revoked, its next renewal
            # is refused and the daemon mints a new credential, which it cannot write
            client.sys.revoke_lease(lease_id=lease)
            assert not role_valid(pg, old)
            d.wait_for(lambda: "No space left on device" in d.text(), 15, "the failed write")
            assert "(previous files kept)" in d.text()
            d.wait_for(lambda: "still failing (attempt 3)" in d.text(), 8, "failed retries")
            assert read_json(out / "db.json") == {"user": old}  # kept, not emptied
            (out / "filler").unlink()
            freed = time.time()
            new = d.wait_for(lambda: (lambda u: u and u != old and role_valid(pg, u) and u)(
                (read_json(out / "db.json") or {}).get("user")), 8, "the new credential")
            recovery = time.time() - freed
            assert "written after" in d.text()
            end, samples = time.time() + 15, 0  # crosses renewals of the new lease
            while time.time() < end:
                user = (read_json(out / "db.json") or {}).get("user")
                assert user and role_valid(pg, user), f"{user} not valid at sample {samples}"
                samples += 1
                time.sleep(0.5)
            assert d.proc.poll() is None
        finally:
            assert d.stop() == 0
        log = d.text()
        minted = audit_request_paths(stack.audit_log)[audit_before:].count(
            "database/creds/mydb")
        retries = log.count("still failing")
        assert minted == 2, (minted, retries)  # the first, the rotation: none per retry
        assert retries >= 2 and new
        assert "internal error" not in log
        print(f"new credential on disk {recovery:.1f}s after space came back, "
              f"{retries + 1} failed write(s), {minted} credentials minted")
    finally:
        subprocess.run(["umount", "-l", str(out)], check=False)


# -- scheduling, with a fake clock ---------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def hi(a: float, b: float) -> float:
    return b


@pytest.fixture
def latest_backoff():
    """The backoff without jitter (always its upper bound): exact, still the real function."""
    return hi


class Local:
    """A daemon over a real Pipeline rendering a file secret into out/sub/f.txt, first pass
    done, with a fake clock; `lease` pretends the secret is leased until `expires_at`."""

    def __init__(self, tmp_path: Path, template: str | None = None,
                 expires_in: float | None = None, rng=random.uniform):
        self.src = tmp_path / "src.txt"
        self.src.write_text("one")
        self.ref_text = f"file:str:{self.src}"
        cfg = setup(tmp_path, {"t.jsonnet": (
            template or "{ 'sub/f.txt': std.extVar('secrets').f }", {self.ref_text: "f"})},
            hook=False)
        self.out = tmp_path / "out" / "sub" / "f.txt"
        self.clock = Clock()
        self.pipeline = Pipeline(Settings(dir=cfg, daemon=True, state_dir=None, status_file=None),
                                 clock=self.clock)
        self.pipeline.first_pass()
        (self.t,) = self.pipeline.config.templates
        (self.ref,) = self.t.refs
        self.d = Daemon(self.pipeline, rng=rng)
        self.d._schedule_all()
        if expires_in is not None:  # the entry the files on disk were rendered from
            self.lease = self.d.ledger.secrets[self.ref]
            self.lease.asked, self.lease.expires_at = expires_in, self.clock.now + expires_in

    def change(self, value: str) -> None:
        """The secret changes at its source and the daemon fetches it (as --poll would; its
        entry, with its pretended lease, is kept)."""
        self.src.write_text(value)
        fetched, errors = self.pipeline.fetch_each([self.ref])
        assert not errors
        self.d.ledger.secrets[self.ref].secret = fetched[self.ref]
        self.d.rerender.mark(self.ref)

    def break_dir(self) -> None:
        """A file where the output dir stands: every write fails with a real OutputError."""
        shutil.rmtree(self.out.parent)
        self.out.parent.write_text("in the way")

    def heal(self) -> None:
        self.out.parent.unlink()

    def retry_in(self) -> float | None:
        assert self.d.timers.first() == Timer(Kind.RENDER, self.t)
        return self.d.timers.next_deadline() - self.clock.now

    def fire(self) -> None:
        """Advance the fake clock to the next timer and run what is due, as the loop does."""
        self.clock.now = self.d.timers.next_deadline()
        for key in self.d.timers.pop_due(self.clock.now):
            self.d._dispatch(key)

    @property
    def state(self) -> TemplateEntry:
        return self.d.ledger.templates[self.t]


def test_failed_write_is_retried_with_backoff_and_success_resets(tmp_path, caplog,
                                                                 latest_backoff):
    caplog.set_level(logging.DEBUG, "rconfd_py")
    x = Local(tmp_path, rng=latest_backoff)
    assert x.out.read_text() == "one\n" and x.d.timers.first() is None
    x.break_dir()
    x.change("two")
    x.fire()  # the flush: the write fails
    assert x.state.failures == 1
    assert x.retry_in() == pytest.approx(0.5)  # fast backoff: an OutputError may heal any second
    delays = []
    for attempt in range(2, 8):
        x.fire()
        assert x.state.failures == attempt
        delays.append(x.retry_in())
    assert delays == pytest.approx([1, 2, 4, 8, 10, 10])  # doubling, capped (no lease: no deadline)
    assert caplog.text.count("is not a directory (previous files kept); retrying in") == 1
    assert caplog.text.count("still failing") == 6  # the repeats at debug level only
    # the retry renders what the daemon holds: a change at the source it has not fetched is not
    # picked up by a retry (a retry never fetches, so it never mints a credential)
    x.src.write_text("three")
    x.heal()
    x.fire()
    assert x.out.read_text() == "two\n"
    assert x.state.failures == 0 and x.d.timers.first() is None  # reset, no timer left
    assert "a.json:t.jsonnet: written after 7 failed attempt(s)" in caplog.text
    x.break_dir()
    x.change("four")
    x.fire()
    assert x.state.failures == 1 and x.retry_in() == pytest.approx(0.5)  # starts over


def test_retries_race_the_expiry_of_the_lease_on_disk(tmp_path, latest_backoff):
    x = Local(tmp_path, expires_in=6.0, rng=latest_backoff)
    deadline = x.lease.expires_at
    assert x.state.expires_at == deadline  # what the first pass wrote
    x.break_dir()
    x.d.rerender.dirty.add(x.t)
    x.d.rerender.flush()
    whens = []
    while x.clock.now < deadline + 30:
        whens.append(x.d.timers.next_deadline())
        x.fire()
    before = [w for w in whens if w < deadline]
    # 0.5, 1.5, 3.5, then 7.5 would be past the expiry: clamped to 1 s before it
    assert [w - (deadline - 6) for w in before] == pytest.approx([0.5, 1.5, 3.5, 5.0])
    assert all(b - a <= leases.BACKOFF_CAP + 1e-9 for a, b in zip(whens, whens[1:]))
    # a renewal of the lease on disk moves the deadline with it (the same Tracked object)
    x.lease.expires_at = x.d.timers.next_deadline() + 4
    assert x.state.expires_at == x.lease.expires_at
    x.fire()
    assert x.retry_in() == pytest.approx(3.0)  # clamped to 1 s before the renewed expiry


def test_deadline_is_the_lease_of_the_files_on_disk_not_the_new_one(tmp_path, latest_backoff):
    """After a rotation whose write failed, the race is against the OLD lease, which the files
    still hold, not against the new one the daemon failed to write."""
    x = Local(tmp_path, expires_in=3.0, rng=latest_backoff)
    on_disk = x.lease
    new = x.d.ledger.secrets[x.ref] = SecretEntry(x.ref, on_disk.secret)  # a new lease
    new.asked, new.expires_at = 60.0, x.clock.now + 60
    x.break_dir()
    x.change("two")
    x.fire()
    x.fire()
    x.fire()  # flush at 0.2 s, retries at 0.7 s, 1.7 s, then 3.7 s: clamped to 2 s
    assert x.state.expires_at == on_disk.expires_at
    assert x.clock.now + x.retry_in() == pytest.approx(on_disk.expires_at - 1)
    x.heal()
    x.fire()
    assert x.out.read_text() == "two\n"
    assert x.state.expires_at == new.expires_at  # now the new lease is on disk


def test_template_error_is_retried_slowly(tmp_path, caplog):
    x = Local(tmp_path, template="local v = std.extVar('secrets').f; "
                                 "{ 'sub/f.txt': if v == 'boom' then error 'no' else v }")
    x.change("boom")
    x.fire()
    assert "(previous files kept)" in caplog.text and x.out.read_text() == "one\n"
    delays = []
    for _ in range(7):
        delays.append(x.retry_in())
        x.fire()
    assert delays == [2, 4, 8, 16, 32, PERMANENT_CAP, PERMANENT_CAP]  # needs an operator
    x.change("fixed")  # a new change of its secret still re-renders it at once
    x.fire()
    assert x.out.read_text() == "fixed\n" and x.d.timers.first() is None


def test_an_internal_error_keeps_a_retry_timer(tmp_path, monkeypatch, caplog):
    x = Local(tmp_path)

    def broken(t, files):
        raise RuntimeError("bug")

    monkeypatch.setattr(x.pipeline, "write", broken)
    x.change("two")
    x.fire()
    assert "internal error rendering a.json:t.jsonnet: RuntimeError: bug" in caplog.text
    assert x.retry_in() == 2  # slow: a bug will not heal by itself
    monkeypatch.undo()
    x.fire()
    assert x.out.read_text() == "two\n" and x.state.failures == 0


def test_reload_rerenders_at_once_and_drops_stale_retries(tmp_path, latest_backoff):
    x = Local(tmp_path, expires_in=30.0, rng=latest_backoff)
    x.break_dir()
    x.change("two")
    x.fire()
    assert x.state.failures == 1
    x.heal()
    x.d._reload()  # SIGHUP: re-rendered at once, whatever the backoff said
    assert x.out.read_text() == "two\n"
    (t,) = x.pipeline.config.templates
    assert t is not x.t and x.d.ledger.templates[t].failures == 0
    assert x.t not in x.d.ledger.templates and x.d.timers.first() is None  # old retry gone
