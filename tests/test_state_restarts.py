"""--state-dir against the real OpenBao and PostgreSQL: a restart (one-shot, one-shot then daemon,
daemon killed -9 then daemon) renders the same database user and the same certificate serial,
minting nothing; what was revoked behind rconfd-py's back is replaced; a state file read after
kill -9 at any moment is whole or absent. Short TTLs of the dev stack: database lease 10 s,
certificates 10 s, tokens 20 s."""

from __future__ import annotations

import json
import random
import re
import signal
import time
from pathlib import Path

from cli import DaemonProc, rconfd
from helpers import audit_request_paths, captured_log

from rconfd_py.state import StateDir

DB = "vault:test-role:database/creds/mydb"
DB2 = "vault:test-role,GET:database/creds/mydb"
PKI = "vault:test-role,POST,common_name=svc.example.com:pki/issue/example.com"
TEMPLATE = """
local s = std.extVar('secrets');
{
  'db.json': { user: s.db.username, password: s.db.password },
  'cert.json': { serial: s.cert.serial_number },
}
"""


def setup(tmp_path: Path, secrets: dict | None = None, text: str = TEMPLATE) -> Path:
    cfg = tmp_path / "cfg"
    cfg.mkdir(exist_ok=True)
    (cfg / "t.jsonnet").write_text(text)
    (cfg / "a.json").write_text(json.dumps({"t.jsonnet": {
        "dir": str(tmp_path / "out"), "secrets": secrets or {DB: "db", PKI: "cert"}}}))
    return cfg


def args(tmp_path: Path, vault_env: dict) -> list:
    return ["-d", tmp_path / "cfg", "-u", vault_env["VAULT_ADDR"], "-l", "/auth/jwt/login",
            "-t", vault_env["VAULT_JWT_PATH"], "--state-dir", tmp_path / "state", "-v"]


def rendered(tmp_path: Path) -> tuple[str, str, str]:
    out = tmp_path / "out"
    db = json.loads((out / "db.json").read_text())
    return db["user"], db["password"], json.loads((out / "cert.json").read_text())["serial"]


def mints(stack) -> tuple[int, int]:
    paths = audit_request_paths(stack.audit_log)
    return paths.count("database/creds/mydb"), paths.count("pki/issue/example.com")


def no_value(text: str, *values: str) -> None:
    for v in values:
        assert v not in text


def test_oneshot_then_oneshot_mints_nothing(tmp_path, vault_env, stack, pg):
    setup(tmp_path)
    r = rconfd(*args(tmp_path, vault_env))
    assert r.rc == 0, r.err
    first = rendered(tmp_path)
    before = mints(stack)
    logins = audit_request_paths(stack.audit_log).count("auth/jwt/login")
    r = rconfd(*args(tmp_path, vault_env))
    assert r.rc == 0, r.err
    assert rendered(tmp_path) == first  # the same user, password and certificate serial
    assert mints(stack) == before
    assert audit_request_paths(stack.audit_log).count("auth/jwt/login") == logins
    assert "state: reused 1 token(s) and 2 leased secret(s)" in r.err
    no_value(r.err, first[1])


def test_oneshot_then_daemon_hands_over_the_same_credentials(tmp_path, vault_env, stack, pg):
    """The init container's one-shot, then the main container's daemon on the same volume."""
    setup(tmp_path)
    r = rconfd(*args(tmp_path, vault_env))
    assert r.rc == 0, r.err
    first = rendered(tmp_path)
    before = mints(stack)
    d = DaemonProc(*args(tmp_path, vault_env), log=tmp_path / "log")
    try:
        d.wait_for(lambda: "daemon: watching 2 leased secret(s)" in d.text(), 15, "the daemon")
        assert rendered(tmp_path) == first and mints(stack) == before
        # it carries on: the reused database lease is renewed, not replaced
        d.wait_for(lambda: "lease renewed" in d.text(), 15, "a renewal of the reused lease")
        assert rendered(tmp_path)[0] == first[0]
        assert mints(stack)[0] == before[0]
    finally:
        assert d.stop(signal.SIGTERM) == 0
    no_value(d.text(), first[1])


def test_daemon_killed_then_daemon_reuses(tmp_path, vault_env, stack, pg):
    setup(tmp_path)
    d = DaemonProc(*args(tmp_path, vault_env), log=tmp_path / "log")
    try:
        d.wait_for(lambda: "daemon: watching" in d.text(), 15, "the first daemon")
        d.wait_for(lambda: (tmp_path / "state" / "state.json").exists(), 5, "its state")
        first = rendered(tmp_path)
        before = mints(stack)
    finally:
        d.stop(signal.SIGKILL)
    d = DaemonProc(*args(tmp_path, vault_env), log=tmp_path / "log2")
    try:
        d.wait_for(lambda: "daemon: watching" in d.text(), 15, "the second daemon")
        assert "reused 1 token(s) and 2 leased secret(s)" in d.text(), d.text()
        assert rendered(tmp_path) == first and mints(stack) == before
    finally:
        d.stop(signal.SIGTERM)


def test_revoke_on_exit_empties_the_state(tmp_path, vault_env, stack, pg):
    setup(tmp_path)
    d = DaemonProc(*args(tmp_path, vault_env), "--revoke-on-exit", log=tmp_path / "log")
    d.wait_for(lambda: "daemon: watching" in d.text(), 15, "the daemon")
    d.wait_for(lambda: (tmp_path / "state" / "state.json").exists(), 5, "its state")
    assert d.stop(signal.SIGTERM) == 0
    assert "revoked 1 lease(s) and 1 token(s)" in d.text()
    assert not (tmp_path / "state" / "state.json").exists()


def lease_of(tmp_path: Path, vault_env: dict, text: str) -> str:
    s = StateDir.open(str(tmp_path / "state"), vault_env["VAULT_ADDR"])
    try:
        saved = s.load()
    finally:
        s.close()
    return next(e.lease_id for r, e in saved.secrets.items() if r.text == text)


def test_a_lease_revoked_behind_its_back_is_replaced(tmp_path, vault_env, stack, pg):
    setup(tmp_path)
    assert rconfd(*args(tmp_path, vault_env)).rc == 0
    user, _, serial = rendered(tmp_path)
    stack.client().sys.revoke_lease(lease_of(tmp_path, vault_env, DB))
    r = rconfd(*args(tmp_path, vault_env))
    assert r.rc == 0, r.err
    new_user, _, new_serial = rendered(tmp_path)
    assert new_user != user and new_serial == serial  # only what died is fetched again
    assert "its saved lease is gone" in r.err
    assert pg.psql(f"SELECT rolvaliduntil > now() FROM pg_roles WHERE rolname = '{new_user}'"
                   ).strip() == "t"


def test_a_token_revoked_behind_its_back_means_a_new_login(tmp_path, vault_env, stack, pg):
    setup(tmp_path)
    r = rconfd(*args(tmp_path, vault_env))
    assert r.rc == 0
    user = rendered(tmp_path)[0]
    accessor = re.search(r"accessor (\S+?)\)", r.err).group(1)
    stack.client().auth.token.revoke_accessor(accessor)  # its leases go with it
    logins = audit_request_paths(stack.audit_log).count("auth/jwt/login")
    r = rconfd(*args(tmp_path, vault_env))
    assert r.rc == 0, r.err
    assert "the saved token is gone" in r.err and "logged in as role test-role" in r.err
    assert audit_request_paths(stack.audit_log).count("auth/jwt/login") == logins + 1
    assert rendered(tmp_path)[0] != user


def test_a_secret_no_longer_configured_is_dropped_from_the_state(tmp_path, vault_env, pg):
    setup(tmp_path)
    assert rconfd(*args(tmp_path, vault_env)).rc == 0
    setup(tmp_path, {DB: "db"}, "local s = std.extVar('secrets'); { 'db.json': s.db }")
    r = rconfd(*args(tmp_path, vault_env))
    assert r.rc == 0, r.err
    assert "pki/issue/example.com: no longer configured: dropped from the state" in r.err, r.err
    s = StateDir.open(str(tmp_path / "state"), vault_env["VAULT_ADDR"])
    try:
        assert [r.text for r in s.load().secrets] == [DB]
    finally:
        s.close()


def test_kill_9_at_random_moments_never_leaves_an_unreadable_state(tmp_path, vault_env, pg):
    """Two database leases and a certificate renewed or replaced every few seconds: the state
    is saved often; whenever the daemon dies, the file is whole (or not written yet)."""
    setup(tmp_path, {DB: "db", DB2: "db2", PKI: "cert"},
          "local s = std.extVar('secrets'); { 'x.json': [s.db.username, s.db2.username, "
          "s.cert.serial_number] }")
    rng = random.Random()
    seen = 0
    for i in range(8):
        d = DaemonProc(*args(tmp_path, vault_env), log=tmp_path / f"log{i}")
        time.sleep(rng.uniform(0.3, 4.0))
        d.stop(signal.SIGKILL)
        assert "state file" not in d.text(), d.text()  # the previous kill left a good one
        with captured_log() as out:
            s = StateDir.open(str(tmp_path / "state"), vault_env["VAULT_ADDR"])
            try:
                if (tmp_path / "state" / "state.json").exists():
                    assert s.load() is not None
                    seen += 1
            finally:
                s.close()
        assert out.getvalue() == ""
    assert seen >= 4  # most kills came after a save


def test_a_renewable_lease_with_little_left_is_renewed_not_minted(tmp_path, vault_env, stack,
                                                                   pg):
    """Saved with less than a third of its 10 s lease left: renewed at start, same user."""
    setup(tmp_path, {DB: "db"}, "local s = std.extVar('secrets'); { 'db.json': s.db }")
    assert rconfd(*args(tmp_path, vault_env)).rc == 0
    user = json.loads((tmp_path / "out" / "db.json").read_text())["username"]
    before = mints(stack)[0]
    time.sleep(7.5)  # 2.5 s of 10 left: under a third
    r = rconfd(*args(tmp_path, vault_env))
    assert r.rc == 0, r.err
    assert re.search(r"its saved lease, \ds from its end, renewed for \d+s", r.err), r.err
    assert json.loads((tmp_path / "out" / "db.json").read_text())["username"] == user
    assert mints(stack)[0] == before
