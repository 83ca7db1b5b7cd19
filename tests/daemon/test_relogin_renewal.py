"""Re-logins that re-issue leases, and the requests around them: a lease renewal that falls due
just before its token logs in again (the re-login that a token's max TTL forces re-issues every
lease of the old token) is held back until after the re-login, which replaces the lease; a
path denied by policy logs in again once, not at every retry. Against the real OpenBao and
PostgreSQL."""

from __future__ import annotations

import time
import uuid

import pytest
from helpers import audit_request_paths
from test_daemon import DB, in_process_daemon, read_json, role_valid
from test_late_renewal import daemon

from rconfd_py.daemon import policy
from rconfd_py.daemon.policy import Act
from rconfd_py.dev.seed import POLICY_HCL, POLICY_NAME, seed_policy
from rconfd_py.ledger import Plan
from rconfd_py.refs import parse_ref


def test_a_renewal_due_before_its_tokens_relogin_waits_and_the_relogin_replaces_it(
        tmp_path, vault_env, pg, stack):
    d, entry = daemon(tmp_path, vault_env)
    role, user = entry.ref.role, read_json(tmp_path / "out" / "db.json")["user"]
    seen = len(audit_request_paths(stack.audit_log))
    now = time.time()
    d.ledger.tokens[role].next = Plan(Act.RELOGIN, now + 1)  # as a short grant plans it
    d._secret_due(entry.ref)  # the lease's renewal falls due a second before the re-login
    assert entry.next.act == Act.RENEW
    assert entry.next.at == pytest.approx(now + 1 + policy.RELOGIN_GRACE, abs=0.5)
    assert "sys/leases/renew" not in audit_request_paths(stack.audit_log)[seen:]
    time.sleep(1)
    d._token_due(role)  # the re-login re-issues the lease under the new token
    new = d.ledger.secrets[entry.ref]
    assert new is not entry and new.lease_id != entry.lease_id and new.next.act == Act.RENEW
    paths = audit_request_paths(stack.audit_log)[seen:]
    assert "sys/leases/renew" not in paths
    assert paths.count("database/creds/mydb") == 1 and paths.count("auth/jwt/login") == 1
    d.rerender.flush()
    fresh = read_json(tmp_path / "out" / "db.json")["user"]
    assert fresh != user and role_valid(pg, fresh)


def test_a_renewal_is_not_held_back_when_the_relogin_comes_too_late(tmp_path, vault_env, pg,
                                                                   stack):
    d, entry = daemon(tmp_path, vault_env)
    seen = len(audit_request_paths(stack.audit_log))
    d.ledger.tokens[entry.ref.role].next = Plan(Act.RELOGIN, entry.expires_at - 1)
    lease_id = entry.lease_id
    d._secret_due(entry.ref)
    assert audit_request_paths(stack.audit_log)[seen:].count("sys/leases/renew") == 1
    assert d.ledger.secrets[entry.ref].lease_id == lease_id


def test_a_path_denied_by_policy_logs_in_again_once_not_at_every_retry(tmp_path, vault_env, pg,
                                                                        stack):
    """A 403 may mean the token is gone, so the role logs in again (re-issuing its leases);
    but when the fresh token is denied too, it is the policy: the retries go on without a
    login each, which would mint every credential of the role again each time."""
    path = f"denied-{uuid.uuid4().hex[:8]}"
    client = stack.client()
    client.secrets.kv.v2.create_or_update_secret(path=path, secret={"v": "x"}, mount_point="kv")
    kv = f"vault:test-role:kv/data/{path}"
    d = in_process_daemon(tmp_path, vault_env, {"t.jsonnet": (
        "local s = std.extVar('secrets'); { 'o.json': { u: s.db.username, v: s.kv.data.v } }",
        {DB: "db", kv: "kv"})})
    ref = parse_ref(kv)
    deny = f'path "kv/data/{path}" {{ capabilities = ["deny"] }}\n'
    client.sys.create_or_update_policy(name=POLICY_NAME, policy=POLICY_HCL + deny)
    try:
        seen = len(audit_request_paths(stack.audit_log))
        for _ in range(4):  # the retries of the denied path
            d._refetch(ref)
            plan = d.ledger.tokens[ref.role].next
            if plan.act == Act.RELOGIN and plan.at <= time.time():
                d._token_due(ref.role)
        paths = audit_request_paths(stack.audit_log)[seen:]
        assert paths.count(f"kv/data/{path}") == 4
        assert paths.count("auth/jwt/login") == 1 and paths.count("database/creds/mydb") == 1
    finally:
        seed_policy(client)
        client.secrets.kv.v2.delete_metadata_and_all_versions(path=path, mount_point="kv")
