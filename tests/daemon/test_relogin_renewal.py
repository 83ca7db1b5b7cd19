"""A lease renewal that falls due just before its token logs in again (the re-login that a
token's max TTL forces re-issues every lease of the old token) is held back until after the
re-login, which replaces the lease: one request saved per lease and re-login. Against the real
OpenBao and PostgreSQL."""

from __future__ import annotations

import time

import pytest
from helpers import audit_request_paths
from test_daemon import read_json, role_valid
from test_late_renewal import daemon

from rconfd_py.daemon import policy
from rconfd_py.daemon.policy import Act
from rconfd_py.ledger import Plan


def test_a_renewal_due_before_its_tokens_relogin_waits_and_the_relogin_replaces_it(
        tmp_path, vault_env, pg, stack):
    d, entry = daemon(tmp_path, vault_env, time.time)
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
    d, entry = daemon(tmp_path, vault_env, time.time)
    seen = len(audit_request_paths(stack.audit_log))
    d.ledger.tokens[entry.ref.role].next = Plan(Act.RELOGIN, entry.expires_at - 1)
    lease_id = entry.lease_id
    d._secret_due(entry.ref)
    assert audit_request_paths(stack.audit_log)[seen:].count("sys/leases/renew") == 1
    assert d.ledger.secrets[entry.ref].lease_id == lease_id
