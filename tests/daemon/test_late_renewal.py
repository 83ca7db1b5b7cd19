"""A renewal that Vault answers after (or just before) the end the lease was known to have is not
believed blindly: Vault answers 200 and revokes the lease anyway. Against the real OpenBao and
PostgreSQL, with the daemon's one clock scripted so the answer arrives "late"."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from test_daemon import DB, in_process_daemon, read_json, role_valid

from rconfd_py.daemon.loop import Daemon
from rconfd_py.daemon.policy import Act


def daemon(tmp_path: Path, vault_env: dict) -> tuple[Daemon, object]:
    d = in_process_daemon(tmp_path, vault_env, {"t.jsonnet": (
        "local s = std.extVar('secrets'); { 'db.json': { user: s.db.username } }", {DB: "db"})})
    (entry,) = d.ledger.leased()
    return d, entry


def answer_late(monkeypatch, d: Daemon, entry, by: float) -> None:
    """The clock reading right after the renewal is `by` s past the lease's known end."""
    from rconfd_py.vault import leases

    real = leases.renew_lease
    readings = []

    def renew(*a, **kw):
        granted = real(*a, **kw)
        readings.append(entry.expires_at + by)
        return granted

    monkeypatch.setattr(leases, "renew_lease", renew)
    base = d.clock
    d.clock = lambda: readings.pop() if readings else base()


def test_a_late_renewal_of_a_live_lease_is_believed_after_a_lookup(tmp_path, vault_env, pg,
                                                                   monkeypatch, caplog):
    caplog.set_level(logging.INFO, "rconfd_py")
    d, entry = daemon(tmp_path, vault_env)
    lease_id = entry.lease_id
    answer_late(monkeypatch, d, entry, 0.5)
    d._renew_lease(entry)
    assert "renewal answered -0.5s before its end: it lives" in caplog.text
    assert d.ledger.secrets[entry.ref] is entry and entry.lease_id == lease_id  # kept
    assert entry.expires_at > time.time() + 5 and entry.next.act == Act.RENEW


def test_a_late_renewal_of_a_revoked_lease_fetches_a_new_secret(tmp_path, vault_env, pg, stack,
                                                                monkeypatch, caplog):
    caplog.set_level(logging.INFO, "rconfd_py")
    d, entry = daemon(tmp_path, vault_env)
    user = read_json(tmp_path / "out" / "db.json")["user"]
    from rconfd_py.vault import leases

    real = leases.renew_lease

    def renew_then_revoked(*a, **kw):  # Vault answers 200, then revokes the lease anyway
        granted = real(*a, **kw)
        stack.client().sys.revoke_lease(entry.lease_id)
        return granted

    monkeypatch.setattr(leases, "renew_lease", renew_then_revoked)
    answer_late(monkeypatch, d, entry, 0.2)
    entry.mints.clear()  # minted long ago, as a lease renewed at 2/3 of its life was
    d._renew_lease(entry)
    assert "sys/leases/lookup: HTTP 400: invalid lease): fetching a new secret" in caplog.text
    new = d.ledger.secrets[entry.ref]
    assert new is not entry and new.lease_id != entry.lease_id
    d.rerender.flush()
    fresh = read_json(tmp_path / "out" / "db.json")["user"]
    assert fresh != user and role_valid(pg, fresh) and not role_valid(pg, user)


def test_inside_the_last_margin_a_lease_is_replaced_not_renewed(tmp_path, vault_env, pg):
    d, entry = daemon(tmp_path, vault_env)
    from rconfd_py.daemon import policy

    assert policy.due(entry, entry.expires_at - policy.LAST_MARGIN - 0.1) == Act.RENEW
    assert policy.due(entry, entry.expires_at - policy.LAST_MARGIN + 0.1) == Act.REFETCH
