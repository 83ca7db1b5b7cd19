"""A renewal that gets no answer in time (the server frozen with SIGSTOP) may still be processed
when the server wakes up: it is not sent again before as long as its timeout, and the lease is
looked up before a new credential is minted in its place. Against the real OpenBao and
PostgreSQL; the daemon's one clock is scripted to the lease's last margin afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import audit_entries, audit_request_paths, frozen
from test_daemon import DB, in_process_daemon, read_json, role_valid

from rconfd_py.daemon import policy
from rconfd_py.daemon.loop import Daemon
from rconfd_py.daemon.outage import PAUSE
from rconfd_py.daemon.policy import Act
from rconfd_py.daemon.revoke import revoke_all
from rconfd_py.daemon.signals import Stop
from rconfd_py.daemon.timers import Kind, Timer

TIMEOUT = 1.0


def daemon(tmp_path: Path, vault_env: dict) -> tuple[Daemon, object]:
    d = in_process_daemon(tmp_path, vault_env, {"t.jsonnet": (
        "local s = std.extVar('secrets'); { 'db.json': { user: s.db.username } }", {DB: "db"})},
        timeout=TIMEOUT)
    (entry,) = d.ledger.leased()
    return d, entry


def renew_while_frozen(d: Daemon, entry, stack) -> float:
    """Renew with the server stopped: no answer within TIMEOUT. Return when it gave up."""
    with frozen(stack.bao_pid):
        d._renew_lease(entry)
        return time.time()


def test_a_renewal_that_timed_out_is_looked_up_and_kept_not_replaced(tmp_path, vault_env, pg,
                                                                      stack):
    d, entry = daemon(tmp_path, vault_env)
    lease_id, user = entry.lease_id, read_json(tmp_path / "out" / "db.json")["user"]
    seen = len(audit_request_paths(stack.audit_log))
    gave_up = renew_while_frozen(d, entry, stack)
    # the renewal waited as long as its answer is useful: 3 x --timeout, the lease being long
    assert entry.in_doubt and entry.timed_out == policy.LONG_TIMEOUT * TIMEOUT
    # the same renewal is not sent again before its timeout has passed once more
    assert entry.next.act == Act.RENEW and entry.next.at >= gave_up + entry.timed_out - 0.05
    # at its last margin (by the daemon's clock) the lease is looked up, not replaced: it lives
    end = entry.expires_at
    d.clock = lambda: end - policy.LAST_MARGIN / 2
    assert policy.due(entry, d.clock()) == Act.CHECK
    d._secret_due(entry.ref)
    assert d.ledger.secrets[entry.ref] is entry and entry.lease_id == lease_id
    assert entry.next.act == Act.RENEW and not entry.in_doubt and entry.expires_at > end
    paths = audit_request_paths(stack.audit_log)[seen:]
    assert paths.count("sys/leases/lookup") == 1 and "database/creds/mydb" not in paths
    # never sent twice; the frozen one is logged only if the thawed server still ran it (it
    # may drop a request whose client has gone), so 0 or 1
    assert paths.count("sys/leases/renew") <= 1
    assert role_valid(pg, user)


def test_a_renewal_that_timed_out_on_a_lease_now_gone_fetches_a_new_one(tmp_path, vault_env,
                                                                         pg, stack):
    d, entry = daemon(tmp_path, vault_env)
    user = read_json(tmp_path / "out" / "db.json")["user"]
    renew_while_frozen(d, entry, stack)
    stack.client().sys.revoke_lease(entry.lease_id)  # it died meanwhile
    entry.mints.clear()  # minted long ago, as a lease at its last margin was
    end = entry.expires_at
    d.clock = lambda: end - policy.LAST_MARGIN / 2
    d._secret_due(entry.ref)
    new = d.ledger.secrets[entry.ref]
    assert new is not entry and new.lease_id != entry.lease_id and not new.in_doubt
    assert d.pipeline.tokens.client.timeout == TIMEOUT  # the mint's longer wait was put back
    d.rerender.flush()
    fresh = read_json(tmp_path / "out" / "db.json")["user"]
    assert fresh != user and role_valid(pg, fresh) and not role_valid(pg, user)


def test_while_vault_gives_no_answer_only_an_unaudited_probe_waits_at_the_server(
        tmp_path, vault_env, pg, stack):
    """A frozen server: the request that finds it frozen holds its body back (the commit,
    proven by a renewal before the freeze) and is given up unsent when its patience ends; the
    next request due is held back behind a sys/health probe (never audited), and sent once the
    server answers the probe again. Nothing real waits at the frozen server."""
    d, entry = daemon(tmp_path, vault_env)
    role = entry.ref.role
    d._dispatch(Timer(Kind.SECRET, entry.ref))  # a renewal: Vault's 100 Continue seen once
    assert d.pipeline.tokens.client._http.expect is True
    entry = d.ledger.secrets[entry.ref]
    seen = len(audit_request_paths(stack.audit_log))
    token_key = Timer(Kind.TOKEN, role)
    d.timers.cancel(token_key)
    with frozen(stack.bao_pid):
        d._dispatch(Timer(Kind.SECRET, entry.ref))  # the lease's renewal: no answer, ever
        assert "not sent" in entry.error and not entry.in_doubt and d.outage.silent
        waited = time.time()
        d._dispatch(token_key)  # the token's renewal falls due: a probe first, unanswered
        assert time.time() - waited >= TIMEOUT  # it waited for the probe's answer
        assert d.outage.knocks == 1 and token_key in d.timers  # held back, due again at once
        assert d.ledger.tokens[role].error.startswith("held back: GET /v1/sys/health")
    time.sleep(0.5)  # the server reads what was queued: headers whose body never came
    assert audit_request_paths(stack.audit_log)[seen:] == []
    d._dispatch(token_key)  # the probe is answered now: the renewal goes
    assert audit_request_paths(stack.audit_log)[seen:] == ["auth/token/renew-self"]
    assert not d.outage.silent and d.outage.knocks == 0


def test_revoke_on_exit_works_after_a_stop_signal_cut_a_request_short(tmp_path, vault_env, pg,
                                                                       stack):
    """SIGTERM during a request while Vault is frozen leaves the kept-alive connection waiting
    for that answer; --revoke-on-exit must still revoke everything."""
    d, entry = daemon(tmp_path, vault_env)
    user = read_json(tmp_path / "out" / "db.json")["user"]

    def stop(*_):
        raise Stop()

    old = signal.signal(signal.SIGALRM, stop)
    try:
        with frozen(stack.bao_pid):
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            with pytest.raises(Stop):  # on the kept-alive connection the revokes use too
                d.pipeline.tokens.client.request("GET", "sys/health", timeout=5)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    revoke_all(d.pipeline)
    assert not role_valid(pg, user)


def others_end_soon(d: Daemon, entry) -> None:
    """The token ends soon: the lease's renewal gets only --timeout before it gives up, to
    leave the token its own request (policy.wait_timeout)."""
    role = entry.ref.role
    d.timers.cancel(Timer(Kind.TOKEN, role))
    token = d.ledger.tokens[role]
    token.token = token.token._replace(
        issued_at=time.time() + policy.LAST_MARGIN + TIMEOUT + 0.2 - token.token.ttl)
    now = time.time()
    assert policy.request_timeout(TIMEOUT, now, entry.expires_at,
                                  d.ledger.soonest_end(now, but=entry)) == TIMEOUT


@pytest.mark.parametrize("for_s", [1.6, 2.2], ids=["wakes-during-the-probe",
                                                    "probe-unanswered"])
def test_a_request_waits_on_past_its_timeout_while_vault_is_frozen_and_its_answer_is_used(
        tmp_path, vault_env, pg, stack, for_s):
    """Given up at its timeout, the renewal would still be processed when the server wakes
    and fail there ("context canceled"), and be in doubt here: while a sys/health probe gets
    no answer either, it waits on (outage.Wait) and takes its answer when the server wakes.
    Its timeout is 1 s (others_end_soon), its probe's too, its patience 6 s in all."""
    d, entry = daemon(tmp_path, vault_env)
    lease_id, end = entry.lease_id, entry.expires_at
    others_end_soon(d, entry)
    seen = len(audit_entries(stack.audit_log, "response"))
    start = time.time()
    with frozen(stack.bao_pid, thaw_after=for_s):
        d._dispatch(Timer(Kind.SECRET, entry.ref))
    assert time.time() - start >= for_s - 0.1  # past its 1 s timeout, until the server woke
    assert not entry.error and not entry.in_doubt and not entry.timed_out
    assert d.ledger.secrets[entry.ref] is entry and entry.lease_id == lease_id
    assert entry.next.act == Act.RENEW and entry.expires_at >= end - 1
    # sent once, answered without error; the probes (sys/health) are never audited
    answered = audit_entries(stack.audit_log, "response")[seen:]
    assert [e["request"]["path"] for e in answered] == ["sys/leases/renew"]
    assert "error" not in answered[0], answered[0].get("error")


def test_a_request_stuck_while_vault_answers_is_given_up_at_its_timeout(tmp_path, vault_env,
                                                                          pg, stack):
    """PostgreSQL frozen: OpenBao answers sys/health, but the lease's renewal hangs on the
    database. Waiting longer would only hold up what else must be renewed: it gives up after
    its timeout, a probe answered at once and PAUSE (1 s), in doubt; not after its patience
    (6 s)."""
    d, entry = daemon(tmp_path, vault_env)
    others_end_soon(d, entry)
    start = time.time()
    with frozen(*postgres_processes(pg)):
        d._dispatch(Timer(Kind.SECRET, entry.ref))
    # the probe's answer ended the wait, long before the patience's 6 s
    assert time.time() - start < TIMEOUT + PAUSE + 2.5
    assert entry.in_doubt and entry.timed_out and "did not answer in time" in entry.error


def postgres_processes(pg) -> list[int]:
    """The postmaster and its children (the backends OpenBao's pool talks to)."""
    out = subprocess.run(["pgrep", "-P", str(pg.pid)], capture_output=True, text=True,
                         check=False).stdout
    return [pg.pid, *map(int, out.split())]


def test_a_renewal_whose_lease_ends_while_vault_is_frozen_is_never_sent(tmp_path, vault_env,
                                                                        pg, stack, caplog):
    """The renewal's headers reach the frozen server, its body is held (Expect:
    100-continue). When the server wakes and asks for the body, the lease is inside its last
    margin (the daemon's clock is moved there meanwhile): sent, the renewal would land after
    the end and fail there. It is not sent: Vault audits nothing of it, and a new secret is
    fetched at once."""
    caplog.set_level("INFO", "rconfd_py")
    d, entry = daemon(tmp_path, vault_env)
    user = read_json(tmp_path / "out" / "db.json")["user"]
    d._dispatch(Timer(Kind.SECRET, entry.ref))  # a renewal: Vault's 100 Continue seen once
    assert d.pipeline.tokens.client._http.expect is True
    entry = d.ledger.secrets[entry.ref]
    lease_id, end = entry.lease_id, entry.expires_at
    others_end_soon(d, entry)
    entry.mints.clear()  # minted long ago, as a lease at its last margin was
    seen = len(audit_entries(stack.audit_log, "request"))

    def margin_reached():  # the lease's last margin came while the server was frozen
        d.clock = lambda: end - policy.LAST_MARGIN / 2

    with frozen(stack.bao_pid, thaw_after=1.6, before_thaw=margin_reached):
        d._dispatch(Timer(Kind.SECRET, entry.ref))
    assert "lease renewal not sent" in caplog.text
    new = d.ledger.secrets[entry.ref]
    assert new.lease_id != lease_id and not new.in_doubt and not new.error
    time.sleep(0.5)
    paths = [e["request"]["path"] for e in audit_entries(stack.audit_log, "request")[seen:]]
    assert paths == ["database/creds/mydb"]  # no sys/leases/renew reached Vault
    d.rerender.flush()
    fresh = read_json(tmp_path / "out" / "db.json")["user"]
    assert fresh != user and role_valid(pg, fresh)
