"""Daemon mode against the real OpenBao and PostgreSQL, with short TTLs: database lease 10 s
(max 60 s), PKI certificates 10 s, JWT tokens 20 s (max 60 s)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cli import DaemonProc, rconfd
from helpers import audit_request_paths

from rconfd_py.daemon.loop import Daemon
from rconfd_py.pipeline import Pipeline
from rconfd_py.settings import Settings

DB = "vault:test-role:database/creds/mydb"
DB2 = "vault:test-role,GET:database/creds/mydb"  # a second, distinct credential
PKI = "vault:test-role,POST,common_name=svc.example.com:pki/issue/example.com"
KV = "vault:test-role:kv/data/test/mysecret"

LIFECYCLE = """
local s = std.extVar('secrets');
{
  'db.json': { user: s.db.username, user2: s.db2.username },
  'cert.json': { serial: s.cert.serial_number, expiration: s.cert.expiration },
  'cert.pem': s.cert.certificate,
}
"""


def setup(tmp_path: Path, templates: dict[str, tuple[str, dict]], hook: bool = True) -> Path:
    cfg = tmp_path / "cfg"
    cfg.mkdir(exist_ok=True)
    body = {}
    for name, (text, secrets) in templates.items():
        (cfg / name).write_text(text)
        body[name] = {"dir": str(tmp_path / "out"), "secrets": secrets}
        if hook:
            script = tmp_path / "hook.sh"
            script.write_text("#!/bin/sh\n{ date +%s.%N; cat \"$1\"/*.json 2>/dev/null; echo; }"
                              f" >> {tmp_path}/hooks.log\necho run >> {tmp_path}/hook-runs\n")
            script.chmod(0o755)
            body[name]["hooks"] = {"modified": f"{script} {tmp_path / 'out'}"}
    (cfg / "a.json").write_text(json.dumps(body))
    return cfg


def jwt(vault_env) -> list[str]:
    return ["-u", vault_env["VAULT_ADDR"], "-l", "/auth/jwt/login",
            "-t", vault_env["VAULT_JWT_PATH"]]


def in_process_daemon(tmp_path: Path, vault_env: dict, templates: dict[str, tuple[str, dict]],
                      *, clock: Callable[[], float] = time.time, **settings) -> Daemon:
    """A daemon in this process against the stack (templates as for `setup`, no hooks): first
    pass done, timers scheduled, its loop not running. `settings` are more Settings fields;
    state_dir and status_file are none unless given (never the machine's /run/rconfd-py)."""
    cfg = setup(tmp_path, templates, hook=False)
    flags = dict(zip(("url", "login_path", "token_path"), jwt(vault_env)[1::2]))
    settings = {"state_dir": None, "status_file": None, **flags, **settings}
    pipeline = Pipeline(Settings(dir=cfg, daemon=True, **settings), clock=clock)
    pipeline.first_pass()
    d = Daemon(pipeline)
    d._schedule_all()
    return d


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def role_valid(pg, user: str) -> bool:
    return pg.psql(f"SELECT rolvaliduntil > now() FROM pg_roles WHERE rolname = '{user}'"
                   ).strip() == "t"


def test_credentials_stay_valid_across_lease_and_token_max_ttl(tmp_path, vault_env, pg, stack):
    """~75 s: crosses the database lease max_ttl (60 s) and the token max_ttl (60 s)."""
    out = tmp_path / "out"
    cfg = setup(tmp_path, {"t.jsonnet": (LIFECYCLE, {DB: "db", DB2: "db2", PKI: "cert"})})
    audit_before = len(audit_request_paths(stack.audit_log))
    rfd, wfd = os.pipe()
    d = DaemonProc("-d", cfg, *jwt(vault_env), "-r", wfd, env={}, log=tmp_path / "log",
                   pass_fds=(wfd,))
    os.close(wfd)
    try:
        assert os.read(rfd, 10) == b"\n"  # ready once the files exist
        assert (out / "db.json").exists()
        users, serials, samples = set(), set(), 0
        end = time.time() + 75
        while time.time() < end:
            db, cert = read_json(out / "db.json"), read_json(out / "cert.json")
            assert db is not None and cert is not None, "a rendered file is missing or partial"
            for user in (db["user"], db["user2"]):
                assert role_valid(pg, user), f"{user} not a valid PostgreSQL role at +{samples}s"
            assert cert["expiration"] > time.time(), "certificate expired on disk"
            users |= {db["user"], db["user2"]}
            serials.add(cert["serial"])
            samples += 1
            time.sleep(1)
        assert d.proc.poll() is None, d.text()
    finally:
        assert d.stop() == 0
        assert os.read(rfd, 10) == b""  # readiness was written once, then the fd closed
        os.close(rfd)
    log = d.text()
    paths = audit_request_paths(stack.audit_log)[audit_before:]
    minted = paths.count("database/creds/mydb")
    assert "logging in again" in log and paths.count("auth/jwt/login") >= 2  # token rotated
    assert paths.count("sys/leases/renew") >= 6  # database leases renewed, not re-fetched
    assert paths.count("auth/token/renew-self") >= 2
    assert len(serials) >= 6  # 10 s certificates rotated before expiry for 75 s
    # no duplicate credentials: every minted user was rendered, 2 initial + 2 per rotation
    assert minted == len(users) and minted <= 6, (minted, users)
    # one hook run per burst: the two database users change together on re-login
    runs = (tmp_path / "hook-runs").read_text().count("run")
    bursts = log.count("running modified hook")
    assert runs == bursts and runs <= len(serials) + minted // 2
    assert "internal error" not in log and "error:" not in log


def test_vault_freeze_is_survived_with_files_intact(tmp_path, vault_env, pg, stack):
    """SIGSTOP the server for longer than a lease; files stay; live credentials after."""
    out = tmp_path / "out"
    cfg = setup(tmp_path, {"t.jsonnet": ("local s = std.extVar('secrets'); "
                                         "{ 'db.json': { user: s.db.username } }", {DB: "db"})},
                hook=False)
    d = DaemonProc("-d", cfg, *jwt(vault_env), "--poll", "2", env={"RCONFD_TIMEOUT": "2"},
                   log=tmp_path / "log")
    try:
        d.wait_for(lambda: (out / "db.json").exists(), 15, "first render")
        time.sleep(1)
        before = (out / "db.json").read_bytes()
        os.kill(stack.bao_pid, signal.SIGSTOP)
        try:
            end = time.time() + 15  # > the 10 s lease
            while time.time() < end:
                assert (out / "db.json").read_bytes() == before  # never emptied or rewritten
                time.sleep(0.5)
        finally:
            os.kill(stack.bao_pid, signal.SIGCONT)
        resumed = time.time()
        user = d.wait_for(lambda: (lambda db: db and role_valid(pg, db["user"]) and db["user"])(
            read_json(out / "db.json")), 30, "a live credential after SIGCONT")
        assert user
        recovery = time.time() - resumed
        d.wait_for(lambda: "Vault available again" in d.text(), 10, "the end-of-outage line")
        assert d.proc.poll() is None
    finally:
        assert d.stop() == 0
    log = d.text()
    assert log.count("Vault unavailable") == 1, log  # one line when it starts...
    assert log.count("Vault available again") == 1  # ... one when it ends
    print(f"live credentials {recovery:.1f}s after SIGCONT")


def test_no_leased_secret_exits_0(tmp_path, vault_env):
    cfg = setup(tmp_path, {"t.jsonnet": ("{ 'k.txt': std.extVar('secrets').kv.data.username }",
                                         {KV: "kv"})}, hook=False)
    r = rconfd("-D", "-d", cfg, *jwt(vault_env))
    assert r.rc == 0, r.err
    assert "Exiting daemon mode: no leased secrets used" in r.err
    assert (tmp_path / "out" / "k.txt").read_text() == "alice\n"


def accessor_alive(stack, log: str) -> bool:
    """Whether the token this run logged in with (its accessor is in the log) still exists."""
    import re

    from rconfd_py.errors import VaultError
    from rconfd_py.vault.client import VaultClient

    accessor = re.search(r"accessor (\S+?)\)", log).group(1)
    try:
        VaultClient(stack.addr).request("POST", "auth/token/lookup-accessor",
                                        token=stack.root_token, body={"accessor": accessor})
        return True
    except VaultError:
        return False


def test_revoke_on_exit_with_nothing_leased_revokes_the_token(tmp_path, vault_env, stack):
    cfg = setup(tmp_path, {"t.jsonnet": ("{ 'k.txt': std.extVar('secrets').kv.data.username }",
                                         {KV: "kv"})}, hook=False)
    r = rconfd("-D", "-d", cfg, *jwt(vault_env), "-v")
    assert r.rc == 0 and accessor_alive(stack, r.err)  # without the flag the token lives on
    r = rconfd("-D", "-d", cfg, *jwt(vault_env), "--revoke-on-exit", "-v")
    assert r.rc == 0, r.err
    assert "Exiting daemon mode" in r.err and "revoked 0 lease(s) and 1 token(s)" in r.err
    assert not accessor_alive(stack, r.err)


def test_revoke_on_exit_covers_leases_of_a_first_pass_still_retrying(tmp_path, vault_env, pg):
    """The database credential arrived, the kv secret does not exist: the first pass retries;
    SIGTERM must not leave the credential it already minted behind."""
    out = tmp_path / "out"
    missing = "vault:test-role:kv/data/test/does-not-exist"
    cfg = setup(tmp_path, {"t.jsonnet": ("local s = std.extVar('secrets'); "
                                         "{ 'db.json': { user: s.db.username, x: s.x } }",
                                         {DB: "db", missing: "x"})}, hook=False)
    roles = "SELECT rolname FROM pg_roles WHERE rolname LIKE 'v-%'"
    before = set(pg.psql(roles).split())
    d = DaemonProc("-d", cfg, *jwt(vault_env), "--revoke-on-exit", "-v", log=tmp_path / "log")
    d.wait_for(lambda: "first render failed" in d.text(), 15, "the first failure")
    (user,) = set(pg.psql(roles).split()) - before  # minted by this first pass
    assert d.stop(signal.SIGTERM) == 0
    assert "revoked 1 lease(s) and 1 token(s)" in d.text(), d.text()
    assert user not in pg.psql(roles).split() and not out.exists()


def test_sigterm_exits_0_and_revoke_on_exit_drops_the_database_user(tmp_path, vault_env, pg):
    out = tmp_path / "out"
    cfg = setup(tmp_path, {"t.jsonnet": ("local s = std.extVar('secrets'); "
                                         "{ 'db.json': { user: s.db.username } }", {DB: "db"})},
                hook=False)
    d = DaemonProc("-d", cfg, *jwt(vault_env), "--revoke-on-exit", log=tmp_path / "log")
    user = d.wait_for(lambda: (read_json(out / "db.json") or {}).get("user"), 15, "render")
    assert role_valid(pg, user)
    t0 = time.time()
    assert d.stop(signal.SIGTERM) == 0
    stopped_in = time.time() - t0
    assert pg.psql(f"SELECT count(*) FROM pg_roles WHERE rolname = '{user}'").strip() == "0"
    assert "revoked 1 lease(s) and 1 token(s)" in d.text()
    assert stopped_in < 5  # behaviour, not a benchmark: "within a second" in practice


def test_sigint_exits_0_without_revoking(tmp_path, vault_env, pg):
    out = tmp_path / "out"
    cfg = setup(tmp_path, {"t.jsonnet": ("local s = std.extVar('secrets'); "
                                         "{ 'db.json': { user: s.db.username } }", {DB: "db"})},
                hook=False)
    d = DaemonProc("-d", cfg, *jwt(vault_env), log=tmp_path / "log")
    user = d.wait_for(lambda: (read_json(out / "db.json") or {}).get("user"), 15, "render")
    assert d.stop(signal.SIGINT) == 0
    assert role_valid(pg, user)  # without --revoke-on-exit the lease lives on


def test_sighup_reloads_config_without_new_leases_or_readiness(tmp_path, vault_env, stack, pg):
    out = tmp_path / "out"
    cfg = setup(tmp_path, {"t.jsonnet": ("local s = std.extVar('secrets'); "
                                         "{ 'db.json': { user: s.db.username } }", {DB: "db"})},
                hook=False)
    rfd, wfd = os.pipe()
    d = DaemonProc("-d", cfg, *jwt(vault_env), "-r", wfd, log=tmp_path / "log",
                   pass_fds=(wfd,))
    os.close(wfd)
    try:
        assert os.read(rfd, 10) == b"\n"
        user = read_json(out / "db.json")["user"]
        before = audit_request_paths(stack.audit_log).count("database/creds/mydb")
        (cfg / "new.jsonnet").write_text(
            "local s = std.extVar('secrets'); { 'new.txt': s.db.username + ' ' + s.kv.data.username }")
        (cfg / "b.json").write_text(json.dumps({"new.jsonnet": {
            "dir": str(out), "secrets": {DB: "db", KV: "kv"}}}))
        d.proc.send_signal(signal.SIGHUP)
        d.wait_for(lambda: (out / "new.txt").exists(), 10, "the added template")
        assert (out / "new.txt").read_text() == f"{user} alice\n"  # the same lease, reused
        assert audit_request_paths(stack.audit_log).count("database/creds/mydb") == before
        assert d.proc.poll() is None
        (cfg / "b.json").write_text('{"new.jsonnet": {"user": "a\\u0000b"}}')  # broken
        d.proc.send_signal(signal.SIGHUP)
        d.wait_for(lambda: "reload failed, keeping the current config" in d.text(), 10,
                   "the reload error")
        time.sleep(0.5)
        assert d.proc.poll() is None and "internal error" not in d.text()
    finally:
        assert d.stop() == 0
        assert os.read(rfd, 10) == b""  # no second readiness newline
        os.close(rfd)


def test_poll_rerenders_on_kv_change_only(tmp_path, vault_env, stack):
    out = tmp_path / "out"
    client = stack.client()
    path = "poll-" + os.urandom(4).hex()
    client.secrets.kv.v2.create_or_update_secret(path=path, secret={"v": "one"},
                                                 mount_point="kv")
    ref = f"vault:test-role:kv/data/{path}"
    cfg = setup(tmp_path, {
        "t.jsonnet": ("{ 'v.txt': std.extVar('secrets').kv.data.v }", {ref: "kv"}),
        # renders fine until the value becomes 'boom': its files must then stay as they are
        "fragile.jsonnet": ("local v = std.extVar('secrets').kv.data.v; "
                            "{ 'f.txt': if v == 'boom' then error 'no' else v }", {ref: "kv"}),
    })
    d = DaemonProc("-d", cfg, *jwt(vault_env), "--poll", "1", log=tmp_path / "log")
    try:
        d.wait_for(lambda: (out / "v.txt").exists(), 15, "first render")
        mtime = (out / "v.txt").stat().st_mtime_ns
        time.sleep(2.5)  # two polls without change: nothing rewritten, no hook
        assert (out / "v.txt").stat().st_mtime_ns == mtime
        assert not (tmp_path / "hook-runs").exists()
        client.secrets.kv.v2.create_or_update_secret(path=path, secret={"v": "two"},
                                                     mount_point="kv")
        d.wait_for(lambda: (out / "v.txt").read_text() == "two\n", 10, "re-render on change")
        d.wait_for(lambda: (out / "f.txt").read_text() == "two\n", 5, "both templates")
        client.secrets.kv.v2.create_or_update_secret(path=path, secret={"v": "boom"},
                                                     mount_point="kv")
        d.wait_for(lambda: (out / "v.txt").read_text() == "boom\n", 10, "the healthy template")
        d.wait_for(lambda: "(previous files kept)" in d.text(), 10, "the render error")
        assert (out / "f.txt").read_text() == "two\n"  # failed template kept its file
        assert d.proc.poll() is None
    finally:
        assert d.stop() == 0


@pytest.mark.parametrize("flag", [[], ["--poll", "1"]])
def test_daemon_with_local_secrets_only(tmp_path, flag):
    """env/file/exe only: nothing leased; with --poll the daemon stays and follows the file."""
    out = tmp_path / "out"
    src = tmp_path / "src.txt"
    src.write_text("a")
    cfg = setup(tmp_path, {"t.jsonnet": ("{ 'f.txt': std.extVar('secrets').f }",
                                         {f"file:str:{src}": "f"})}, hook=False)
    if not flag:
        r = rconfd("-D", "-d", cfg)
        assert r.rc == 0 and "no leased secrets" in r.err
        return
    d = DaemonProc("-d", cfg, *flag, log=tmp_path / "log")
    try:
        d.wait_for(lambda: (out / "f.txt").exists(), 10, "first render")
        src.write_text("b")
        d.wait_for(lambda: (out / "f.txt").read_text() == "b\n", 10, "file change followed")
    finally:
        assert d.stop() == 0


def test_failing_first_render_is_retried_without_minting_again(tmp_path, vault_env, stack, pg):
    """A secret that cannot be read yet (kv path missing): the daemon stays, retries, does not
    mint the database credential again, and renders once the path exists."""
    out = tmp_path / "out"
    path = "late-" + os.urandom(4).hex()
    cfg = setup(tmp_path, {"t.jsonnet": (
        "local s = std.extVar('secrets'); { 'f.txt': s.db.username + ' ' + s.kv.data.v }",
        {DB: "db", f"vault:test-role:kv/data/{path}": "kv"})}, hook=False)
    before = audit_request_paths(stack.audit_log).count("database/creds/mydb")
    d = DaemonProc("-d", cfg, *jwt(vault_env), log=tmp_path / "log")
    try:
        d.wait_for(lambda: "first render failed" in d.text(), 15, "the first failure")
        time.sleep(5)  # a few retries (2 s, 4 s, ...)
        assert not out.exists()
        stack.client().secrets.kv.v2.create_or_update_secret(path=path, secret={"v": "late"},
                                                             mount_point="kv")
        d.proc.send_signal(signal.SIGHUP)  # retry now
        d.wait_for(lambda: (out / "f.txt").exists(), 15, "the render once the path exists")
        assert (out / "f.txt").read_text().endswith(" late\n")
        minted = audit_request_paths(stack.audit_log).count("database/creds/mydb") - before
        assert minted == 1
    finally:
        assert d.stop() == 0
