"""The renewal policy, table-driven, with a fake clock and a fake random source: every row of the
README's renewal table and every failure rule, without OpenBao (well under a second)."""

from __future__ import annotations

import pytest

from rconfd_py.daemon import policy
from rconfd_py.daemon.policy import Act
from rconfd_py.errors import OutputError, SourceError, TemplateError, VaultError
from rconfd_py.ledger import Ledger, SecretEntry, TokenEntry
from rconfd_py.refs import parse_ref
from rconfd_py.secret import Lease, Secret
from rconfd_py.vault import leases
from rconfd_py.vault.auth import Token

NOW = 1_000_000.0


def lo(a: float, b: float) -> float:
    return a


def hi(a: float, b: float) -> float:
    return b


def token(ttl: float, renewable: bool = True, issued_at: float = NOW) -> TokenEntry:
    return TokenEntry(Token("r", "s.tok", "acc", ttl, renewable, issued_at))


def secret(*, lease: float = 0.0, renewable: bool = False, lease_id: str = "db/creds/x/1",
           expiration: float | None = None, at: float = NOW) -> SecretEntry:
    ref = parse_ref("vault:r:database/creds/x")
    expires = at + lease if lease else None
    if expiration is not None:
        expires = min(expires, expiration) if expires else expiration
    s = Secret(ref, {"username": "u"}, at, Lease(lease_id, lease, renewable) if lease else None,
               expires, "r", "acc")
    return SecretEntry(ref, s)


def fails(status: int) -> VaultError:
    return VaultError("PUT /v1/x: HTTP %d" % status, status=status)


# -- the renewal table ------------------------------------------------------------------------
@pytest.mark.parametrize("what, plan_of, act, window", [
    # token (one per role): renew at 60-72 % of its TTL
    ("renewable token", lambda rng: policy.token_plan(token(100), NOW, rng), Act.RENEW,
     (60, 72)),
    # a token that is not renewable: replaced at 85-90 %
    ("non-renewable token", lambda rng: policy.token_plan(token(100, False), NOW, rng),
     Act.RELOGIN, (85, 90)),
    # renewable lease (database credentials): renew at 60-72 % of what remains
    ("renewable lease", lambda rng: policy.secret_plan(secret(lease=100, renewable=True), NOW,
                                                       rng), Act.RENEW, (60, 72)),
    # non-renewable lease: a new secret at 85-90 %
    ("non-renewable lease", lambda rng: policy.secret_plan(secret(lease=100), NOW, rng),
     Act.REFETCH, (85, 90)),
    # PKI certificate (no lease): 85-90 % of expiration - issue time
    ("certificate", lambda rng: policy.secret_plan(
        secret(lease_id="", expiration=NOW + 100), NOW, rng), Act.REFETCH, (85, 90)),
])
def test_renewal_table(what, plan_of, act, window):
    for rng, expected in ((lo, window[0]), (hi, window[1])):
        plan = plan_of(rng)
        assert plan.act == act, what
        assert plan.at == pytest.approx(NOW + expected), what


def test_the_time_already_spent_counts():
    """A token logged in 50 s ago with a 100 s TTL is renewed at 60-72 s of its life."""
    plan = policy.token_plan(token(100, issued_at=NOW - 50), NOW, lo)
    assert plan.at == pytest.approx(NOW + 10)
    late = policy.token_plan(token(100, issued_at=NOW - 99), NOW, lo)
    assert late.at == pytest.approx(NOW + leases.MIN_DELAY)  # never in the past: no busy loop


def test_static_secrets_and_eternal_tokens_have_no_plan():
    assert policy.secret_plan(secret(), NOW, lo) is None  # kv, env, file, exe: never (or --poll)
    assert policy.token_plan(token(0), NOW, lo) is None  # root, periodic without TTL


@pytest.mark.parametrize("granted, renewable, act, at", [
    (100, True, Act.RENEW, NOW + 60),  # the whole TTL again: renew at 60 %
    (89, True, Act.RELOGIN, NOW),  # < 90 % of what was asked: max TTL near, log in now
    (100, False, Act.RELOGIN, NOW),  # no longer renewable: log in now
])
def test_token_renewal(granted, renewable, act, at):
    entry = token(100)
    entry.token = Token("r", "s.tok", "acc", granted, renewable, NOW)  # the renewed token
    plan = policy.token_renewed(entry, NOW, lo)
    assert (plan.act, plan.at) == (act, pytest.approx(at))


@pytest.mark.parametrize("granted, act, at", [
    (100, Act.RENEW, NOW + 60),  # the full duration again: renew at 60 % of it
    (80, Act.REFETCH, NOW + 68),  # short grant (max_ttl near): new secret at 85 % of the grant
])
def test_lease_renewal(granted, act, at):
    plan = policy.lease_renewed(secret(lease=100, renewable=True), granted, NOW, lo)
    assert (plan.act, plan.at) == (act, pytest.approx(at))


# -- failures ---------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [0, 500, 502, 503, 429])
def test_transient_failures_retry_the_same_action_with_backoff(status):
    t = token(100)
    t.failed("x", NOW)
    plan = policy.token_renewal_failed(t, fails(status), NOW, hi)
    assert plan.act == Act.RENEW and plan.at == pytest.approx(NOW + leases.BACKOFF_FIRST)
    s = secret(lease=100, renewable=True)
    s.failed("x", NOW)
    plan = policy.lease_renewal_failed(s, fails(status), NOW, hi)
    assert plan.act == Act.RENEW and plan.at == pytest.approx(NOW + leases.BACKOFF_FIRST)


@pytest.mark.parametrize("status", [400, 403, 404])
def test_refused_renewals_replace_at_once(status):
    assert policy.token_renewal_failed(token(100), fails(status), NOW, hi).act == Act.RELOGIN
    plan = policy.lease_renewal_failed(secret(lease=100, renewable=True), fails(status), NOW,
                                       hi)
    assert (plan.act, plan.at) == (Act.REFETCH, NOW)


def test_an_outage_racing_the_expiry_retries_doubling_then_just_before_it():
    """Backoff 0.5 s doubling (full jitter; here its upper bound), capped at 10 s, never later
    than 1 s before the expiry it races while that is still ahead."""
    s = secret(lease=12, renewable=True)
    now, times = NOW, []
    while now < NOW + 20:
        s.failed("Vault unavailable", now)
        plan = policy.lease_renewal_failed(s, fails(503), now, hi)
        times.append(round(plan.at - NOW, 3))
        now = plan.at
    assert times[:5] == [0.5, 1.5, 3.5, 7.5, 11.0]  # 15.5 would be past expiry - 1
    assert times[5] == pytest.approx(11.0 + leases.BACKOFF_CAP)  # expiry passed: plain backoff
    assert all(b - a <= leases.BACKOFF_CAP for a, b in zip(times, times[1:]))


def test_lo_jitter_still_waits_a_minimum():
    s = secret(lease=100, renewable=True)
    s.failed("x", NOW)
    plan = policy.lease_renewal_failed(s, fails(503), NOW, lambda a, b: 0.0)
    assert plan.at == pytest.approx(NOW + leases.MIN_DELAY / 2)  # never a busy loop


@pytest.mark.parametrize("error, relogin, delays", [
    (fails(503), False, [0.5, 1, 2, 4, 8, 10, 10]),  # transient: backoff
    (fails(403), True, [2, 4, 8, 16, 32, 60, 60]),  # policy denial: operator; relogin too
    (fails(400), False, [2, 4, 8, 16, 32, 60, 60]),
    (SourceError("exe:str:/bin/x: exit 1"), False, [2, 4, 8, 16, 32, 60, 60]),
])
def test_fetch_failures(error, relogin, delays):
    s = SecretEntry(parse_ref("vault:r:kv/data/x"), None)  # never fetched: no deadline
    got = []
    for _ in delays:
        s.failed(str(error), NOW)
        plan = policy.fetch_failed(s, error, NOW, hi)
        assert plan.act == Act.REFETCH
        got.append(plan.at - NOW)
    assert got == pytest.approx(delays)
    assert policy.relogin_after_fetch_error(error) is relogin


@pytest.mark.parametrize("mints, lease, allowed_in", [
    ([], 10, 0),  # first mint: at once
    ([NOW - 1], 10, 4),  # one per half lease (5 s) ...
    ([NOW - 1], 2, 1),  # ... at least 2 s apart
    ([NOW - 1], 600, 19),  # ... at most 20 s apart
    ([NOW - 50, NOW - 30, NOW - 10], 40, 10),  # long leases: at most 3 a minute
    ([NOW - 70, NOW - 30, NOW - 10], 40, 10),  # (the oldest of the 3 left the minute: 20 s)
])
def test_the_mint_rate_cap(mints, lease, allowed_in):
    s = secret(lease=lease)
    s.mints.extend(mints)
    assert policy.mint_allowed_at(s, NOW) == pytest.approx(NOW + allowed_in)
    assert policy.mint_allowed_at(s, NOW, forced=True) == NOW  # a re-issue is never held back


def test_due_renews_a_live_renewable_lease_and_refetches_otherwise():
    s = secret(lease=100, renewable=True)
    assert policy.due(s, NOW + 50) == Act.RENEW
    assert policy.due(s, NOW + 100) == Act.REFETCH  # dead: renewing cannot bring it back
    s.renew = False  # max TTL reached
    assert policy.due(s, NOW + 50) == Act.REFETCH


@pytest.mark.parametrize("error, delays", [
    (OutputError("cannot write /x: No space left on device"), [0.5, 1, 2, 3.0]),  # races
    (TemplateError("t.jsonnet: error"), [2, 4, 8, 16]),  # needs an operator
])
def test_render_failures_race_the_expiry_of_the_files_on_disk(error, delays):
    got = [policy.render_failed(n, error, NOW, NOW + 4, hi).at - NOW for n in range(1, 5)]
    assert got == pytest.approx(delays)


def test_the_ledger_keeps_the_mint_history_across_fetches():
    ledger = Ledger()
    first = secret(lease=10).secret
    ledger.remember(first, NOW)
    again = ledger.remember(first._replace(fetched_at=NOW + 5), NOW + 5)
    assert list(again.mints) == [NOW, NOW + 5]
    assert policy.mint_allowed_at(again, NOW + 6) == pytest.approx(NOW + 10)


# -- renewals racing the end (a renewal answered after the lease died) ------------------------
@pytest.mark.parametrize("answered, trusted", [
    (NOW + 8.9, True),  # well before the end (NOW + 10)
    (NOW + 9.1, False),  # within a second of it: Vault may have revoked it meanwhile
    (NOW + 10.2, False),  # after it: Vault answered 200 and revoked it anyway
])
def test_a_renewal_answered_late_is_not_believed_without_a_lookup(answered, trusted):
    assert policy.renewal_trusted(NOW + 10, answered) is trusted
    assert policy.renewal_trusted(None, answered)  # nothing expires: nothing to race


def test_request_timeouts_never_outlast_the_expiry_they_race():
    assert policy.request_timeout(10, NOW, NOW + 30) == 10
    assert policy.request_timeout(10, NOW, NOW + 3) == 3
    assert policy.request_timeout(10, NOW, NOW + 0.1) == policy.MIN_TIMEOUT
    assert policy.request_timeout(10, NOW, None) == 10


def test_inside_the_last_margin_tokens_and_leases_are_replaced_not_renewed():
    s = secret(lease=10, renewable=True)
    assert policy.due(s, NOW + 10 - policy.LAST_MARGIN - 0.01) == Act.RENEW
    assert policy.due(s, NOW + 10 - policy.LAST_MARGIN) == Act.REFETCH
    t = token(10)
    t.next = policy.token_plan(t, NOW, lo)
    assert policy.token_due(t, NOW + 7) == Act.RENEW
    assert policy.token_due(t, NOW + 10 - policy.LAST_MARGIN) == Act.RELOGIN
    assert policy.token_due(None, NOW) == Act.RELOGIN


def test_a_grant_runs_from_when_the_request_was_sent():
    """A renewal sent at NOW and answered 4 s later: the 10 s it granted began at NOW at the
    latest, so the next renewal is at NOW + 6, not NOW + 4 + 6."""
    plan = policy.lease_renewed(secret(lease=10, renewable=True), 10, NOW + 4, lo, start=NOW)
    assert plan.act == Act.RENEW and plan.at == pytest.approx(NOW + 6)
