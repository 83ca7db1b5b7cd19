"""The renewal policy, table-driven, with a fake clock and a fake random source: every row of the
README's renewal table and every failure rule, without OpenBao (well under a second)."""

from __future__ import annotations

import pytest

from rconfd_py.daemon import policy
from rconfd_py.daemon.policy import Act
from rconfd_py.errors import OutputError, SourceError, TemplateError, VaultError
from rconfd_py.ledger import Ledger, Plan, SecretEntry, TokenEntry
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
    # token (one per role): renew at 30-85 % of its TTL after a login (60-85 % after that)
    ("renewable token", lambda rng: policy.token_plan(token(100), NOW, rng), Act.RENEW,
     (30, 85)),
    # a token that is not renewable: replaced at 75-90 %
    ("non-renewable token", lambda rng: policy.token_plan(token(100, False), NOW, rng),
     Act.RELOGIN, (75, 90)),
    # renewable lease (database credentials): renew at 30-85 % of it after its fetch
    ("renewable lease", lambda rng: policy.secret_plan(secret(lease=100, renewable=True), NOW,
                                                       rng), Act.RENEW, (30, 85)),
    # non-renewable lease: a new secret at 75-90 %
    ("non-renewable lease", lambda rng: policy.secret_plan(secret(lease=100), NOW, rng),
     Act.REFETCH, (75, 90)),
    # PKI certificate (no lease): 75-90 % of expiration - issue time
    ("certificate", lambda rng: policy.secret_plan(
        secret(lease_id="", expiration=NOW + 100), NOW, rng), Act.REFETCH, (75, 90)),
])
def test_renewal_table(what, plan_of, act, window):
    for rng, expected in ((lo, window[0]), (hi, window[1])):
        plan = plan_of(rng)
        assert plan.act == act, what
        assert plan.at == pytest.approx(NOW + expected), what


def test_the_time_already_spent_counts():
    """A token logged in 20 s ago with a 100 s TTL is renewed at 30-85 s of its life."""
    plan = policy.token_plan(token(100, issued_at=NOW - 20), NOW, lo)
    assert plan.at == pytest.approx(NOW + 10)
    late = policy.token_plan(token(100, issued_at=NOW - 99), NOW, lo)
    assert late.at == pytest.approx(NOW + leases.MIN_DELAY)  # never in the past: no busy loop


def test_static_secrets_and_eternal_tokens_have_no_plan():
    assert policy.secret_plan(secret(), NOW, lo) is None  # kv, env, file, exe: never (or --poll)
    assert policy.token_plan(token(0), NOW, lo) is None  # root, periodic without TTL


def test_short_ttls_are_renewed_a_few_seconds_before_their_end_at_the_latest():
    plan = policy.secret_plan(secret(lease=10, renewable=True), NOW, hi)
    assert plan.at == pytest.approx(NOW + 10 - leases.RENEW_LEAD)  # not at 8 s of 10
    assert policy.due(secret(lease=10, renewable=True), plan.at) == Act.RENEW


@pytest.mark.parametrize("granted, renewable, act, at", [
    (100, True, Act.RENEW, NOW + 60),  # the whole TTL again: renew at 60 %
    # < 90 % of what was asked: max TTL near, log in again in the last 10-25 % of its life
    # (logged in at NOW, ends at NOW + 89: from 75 % of 89 s on)
    (89, True, Act.RELOGIN, NOW + 0.75 * 89),
    (100, False, Act.RELOGIN, NOW),  # no longer renewable: log in now
])
def test_token_renewal(granted, renewable, act, at):
    entry = token(100)
    entry.token = Token("r", "s.tok", "acc", granted, renewable, NOW)  # the renewed token
    plan = policy.token_renewed(entry, NOW, lo)
    assert (plan.act, plan.at) == (act, pytest.approx(at))


@pytest.mark.parametrize("granted, act, at", [
    (100, Act.RENEW, NOW + 60),  # the full duration again: renew at 60 % of it
    # short grant (max_ttl near): a new secret at 75 % of the grant (after the token's
    # re-login, which re-issues a lease whose max_ttl is the token's: no second mint)
    (80, Act.REFETCH, NOW + 60),
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
    than 1 s before the expiry it races while that is still ahead; inside the last margin the
    lease is replaced at once (due() then answers REFETCH)."""
    s = secret(lease=12, renewable=True)
    now, times = NOW, []
    while now < NOW + 20 and len(times) < 10:
        s.failed("Vault unavailable", now)
        plan = policy.lease_renewal_failed(s, fails(503), now, hi)
        times.append(round(plan.at - NOW, 3))
        if plan.at == now:
            break
        now = plan.at
    assert times == [0.5, 1.5, 3.5, 7.5, 11.0, 11.0]  # 15.5 would be past expiry - 1
    assert policy.due(s, NOW + 11.0) == Act.REFETCH


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
    """A renewal waits as long as its answer is useful: up to 3 x the default, and never past
    the expiry it races (it is then looked up, not sent again)."""
    assert policy.request_timeout(10, NOW, NOW + 60) == 30
    assert policy.request_timeout(10, NOW, NOW + 20) == 20
    assert policy.request_timeout(10, NOW, NOW + 3) == 3
    assert policy.request_timeout(10, NOW, NOW + 0.1) == policy.MIN_TIMEOUT
    assert policy.request_timeout(10, NOW, None) == 30


@pytest.mark.parametrize("deadline, soonest, expected", [
    (NOW + 60, None, 30),  # nothing else held ends
    (NOW + 60, NOW + 42, 30),
    (NOW + 60, NOW + 32, 20),  # something else ends first: back in time to renew it (10 s
    #                            before its last margin)
    (NOW + 60, NOW + 5, 10),  # ... but never shorter than the default for that
    (NOW + 8, NOW + 5, 8),  # its own end is the harder limit
])
def test_a_long_renewal_never_lets_something_else_die(deadline, soonest, expected):
    assert policy.request_timeout(10, NOW, deadline, soonest) == pytest.approx(expected)


def test_while_vault_gives_no_answer_a_request_may_wait_as_if_nothing_else_ended():
    """The patience (outage.Wait): with nothing answering, nothing else could be renewed
    meanwhile, so the cut left for the others no longer applies, and the longest wait any
    request may get is allowed (6 x the default); a renewal still never waits past the end it
    races, a fetch, a check or a re-login may."""
    assert policy.longest_wait(10, NOW, None) == 60  # a first fetch
    assert policy.longest_wait(10, NOW, secret(lease=90, renewable=True)) == 60
    assert policy.longest_wait(10, NOW, secret(lease=20, renewable=True)) == 20  # its end
    assert policy.longest_wait(10, NOW + 19, secret(lease=20, renewable=True)) == 60  # REFETCH
    checked = secret(lease=20, renewable=True)
    checked.failed("timed out", NOW, 30.0)
    checked.in_doubt = True
    assert policy.longest_wait(10, NOW + 19, checked) == 60  # the lookup of a lease in doubt
    t = token(20)
    t.next = policy.token_plan(t, NOW, lo)
    assert policy.longest_wait(10, NOW, t) == 20  # renew-self: never past the token's end
    assert policy.longest_wait(10, NOW + 19, t) == 60  # a re-login


def test_inside_the_last_margin_tokens_and_leases_are_replaced_not_renewed():
    s = secret(lease=10, renewable=True)
    assert policy.due(s, NOW + 10 - policy.LAST_MARGIN - 0.01) == Act.RENEW
    assert policy.due(s, NOW + 10 - policy.LAST_MARGIN) == Act.REFETCH
    t = token(10)
    t.next = policy.token_plan(t, NOW, lo)
    assert policy.token_due(t, NOW + 7) == Act.RENEW
    assert policy.token_due(t, NOW + 10 - policy.LAST_MARGIN) == Act.RELOGIN
    assert policy.token_due(None, NOW) == Act.RELOGIN


def test_a_renewal_vault_asks_for_inside_the_last_margin_is_not_sent_but_replaced():
    """Vault asks for a renewal's body (100 Continue) after a freeze: inside the lease's or
    token's last margin it is not sent (it would land after the end and fail there), and what
    it renews is replaced at once, not renewed again."""
    s = secret(lease=10, renewable=True)
    assert policy.worth_sending(s.expires_at, NOW + 10 - policy.LAST_MARGIN - 0.01)
    assert not policy.worth_sending(s.expires_at, NOW + 10 - policy.LAST_MARGIN)
    assert policy.worth_sending(None, NOW)  # nothing ends
    withheld = VaultError("PUT /v1/sys/leases/renew: not sent", withheld=True)
    assert not withheld.transient and not policy.still_in_doubt(False, withheld)
    plan = policy.lease_renewal_failed(s, withheld, NOW + 9, hi)
    assert (plan.act, plan.at) == (Act.REFETCH, NOW + 9)
    t = token(10)
    t.next = policy.token_plan(t, NOW, lo)
    plan = policy.token_renewal_failed(t, withheld, NOW + 9, hi)
    assert (plan.act, plan.at) == (Act.RELOGIN, NOW + 9)


def test_a_withheld_renewal_settles_no_earlier_doubt():
    """An earlier renewal timed out (it may have landed); the retry is withheld: the lease
    (token) is still looked up before it is replaced, not replaced at once."""
    withheld = VaultError("PUT /v1/sys/leases/renew: not sent", withheld=True)
    assert policy.still_in_doubt(True, withheld)
    s = secret(lease=10, renewable=True)
    s.failed("timed out", NOW, 3.0)
    s.in_doubt = True
    plan = policy.lease_renewal_failed(s, withheld, NOW + 9, hi)
    assert plan.act == Act.RENEW and plan.at == NOW + 9  # due now: due() says CHECK
    assert policy.due(s, plan.at) == Act.CHECK
    t = token(10)
    t.next = policy.token_plan(t, NOW, lo)
    t.in_doubt = True
    plan = policy.token_renewal_failed(t, withheld, NOW + 9, hi)
    assert plan.act == Act.RENEW and policy.token_due(t, plan.at) == Act.CHECK


def test_a_grant_runs_from_when_the_request_was_sent():
    """A renewal sent at NOW and answered 4 s later: the 10 s it granted began at NOW at the
    latest, so the next renewal is at NOW + 6, not NOW + 4 + 6."""
    plan = policy.lease_renewed(secret(lease=10, renewable=True), 10, NOW + 4, lo, start=NOW)
    assert plan.act == Act.RENEW and plan.at == pytest.approx(NOW + 6)


# -- recovery without duplicates (a request that timed out may still be processed) ------------
def timeout() -> VaultError:
    return VaultError("PUT /v1/x: Vault did not answer in time", timed_out=True)


def test_a_renewal_that_timed_out_is_not_sent_again_before_its_timeout():
    """A 10 s timeout: the retry waits 10 s (not the 0.5 s backoff), since the frozen server
    may still process the first; but never past the last margin, where the lease is checked."""
    s = secret(lease=60, renewable=True)
    s.failed("timed out", NOW, 10.0)
    plan = policy.lease_renewal_failed(s, timeout(), NOW, hi)
    assert (plan.act, plan.at) == (Act.RENEW, pytest.approx(NOW + 10))
    late = NOW + 52  # 8 s left: waiting 10 s would pass the last margin (58 s)
    s.failed("timed out", late, 8.0)
    assert policy.lease_renewal_failed(s, timeout(), late, hi).at == pytest.approx(
        NOW + 60 - policy.LAST_MARGIN)
    end = NOW + 59  # inside the last margin: nothing to wait for, checked and replaced now
    assert policy.lease_renewal_failed(s, timeout(), end, hi).at == end
    t = token(100)
    t.failed("timed out", NOW, 10.0)
    assert policy.token_renewal_failed(t, timeout(), NOW, hi).at == pytest.approx(NOW + 10)


def test_a_lease_whose_renewal_timed_out_is_checked_before_a_new_one_is_minted():
    s = secret(lease=60, renewable=True)
    s.in_doubt = True
    assert policy.due(s, NOW + 30) == Act.RENEW  # alive: renewing again is harmless
    assert policy.due(s, NOW + 59) == Act.CHECK  # last margin: look it up first
    assert policy.due(s, NOW + 70) == Act.CHECK  # even past its known end: it may have landed
    s.in_doubt = False
    assert policy.due(s, NOW + 59) == Act.REFETCH
    # the lookup says it lives 55 s more: the renewal landed, carry on renewing it
    plan = policy.lease_checked(s, 55, NOW + 59, lo)
    assert (plan.act, plan.at) == (Act.RENEW, pytest.approx(NOW + 59 + 0.60 * 55))
    # a second or two left (or gone): a new credential now
    assert (policy.lease_checked(s, 1.5, NOW + 59, lo).act, ) == (Act.REFETCH, )


def test_a_token_whose_renewal_timed_out_is_checked_before_logging_in_again():
    t = token(100)
    t.next = policy.token_plan(t, NOW, lo)
    t.in_doubt = True
    assert policy.token_due(t, NOW + 50) == Act.RENEW
    assert policy.token_due(t, NOW + 99) == Act.CHECK
    t.in_doubt = False
    assert policy.token_due(t, NOW + 99) == Act.RELOGIN
    # lookup-self: 80 s left from NOW + 99 (the renewal landed): renew it, no login
    t.token = Token("r", "s.tok", "acc", 80, True, NOW + 99)
    assert policy.token_checked(t, NOW + 99, lo).act == Act.RENEW
    t.token = Token("r", "s.tok", "acc", 1, True, NOW + 99)
    assert policy.token_checked(t, NOW + 99, lo).act == Act.RELOGIN


@pytest.mark.parametrize("error, was, doubt", [
    (timeout(), False, True),  # no answer in time: it may still land
    (fails(503), True, True),  # a transient error settles nothing
    (fails(503), False, False),
    (fails(400), True, False),  # an answer (refused) settles it
])
def test_what_leaves_a_renewal_in_doubt(error, was, doubt):
    assert policy.still_in_doubt(was, error) is doubt
    assert policy.timed_out(error, 7.0) == (7.0 if error.timed_out else 0.0)


def test_fetches_and_logins_that_timed_out_wait_their_timeout():
    """A mint or login the server may still process: the next copy waits the timeout."""
    s = secret(lease=60, renewable=True)
    s.failed("timed out", NOW + 70, 30.0)
    assert policy.fetch_failed(s, timeout(), NOW + 70, hi).at == pytest.approx(NOW + 100)
    s.failed("HTTP 503", NOW + 70)  # answered: the usual backoff
    assert policy.fetch_failed(s, fails(503), NOW + 70, hi).at < NOW + 80
    t = token(100)
    n = t.failed("timed out", NOW + 120, 30.0)
    assert policy.login_failed(t, timeout(), NOW + 120, hi, n).at == pytest.approx(NOW + 150)


@pytest.mark.parametrize("soonest, expected", [
    (None, 30),  # nothing else held expires: 3 x the default
    (NOW + 100, 30),
    (NOW + 30, 18),  # back in time to renew what ends first (the default before its margin)
    (NOW + 3, 10),  # ... and never shorter than the default
])
def test_fetches_logins_and_lookups_wait_long_but_let_nothing_die(soonest, expected):
    assert policy.wait_timeout(10, NOW, soonest) == pytest.approx(expected)


def test_after_a_timeout_the_next_attempt_waits_twice_as_long():
    """So that the copy is the one still waiting when a frozen server wakes up."""
    assert policy.wait_timeout(10, NOW, None, timed_out=30) == 60  # capped at 6 x
    assert policy.wait_timeout(10, NOW, None, timed_out=60) == 60
    assert policy.wait_timeout(10, NOW, NOW + 37, timed_out=30) == 25  # others first
    assert policy.request_timeout(10, NOW, NOW + 100, timed_out=30) == 60
    assert policy.request_timeout(10, NOW, NOW + 15, timed_out=10) == 15  # never past the end


# -- spreading a fleet that started together --------------------------------------------------
def test_relogin_at_max_ttl_is_spread_over_the_last_10_to_25_percent_of_the_life():
    """Logged in at NOW, max TTL 300 s: log in again between 225 and 270 s, wherever the
    renewal that noticed it fell; at once if that window has passed."""
    assert leases.replace_at(NOW + 200, NOW, NOW + 300, lo) == pytest.approx(NOW + 225)
    assert leases.replace_at(NOW + 200, NOW, NOW + 300, hi) == pytest.approx(NOW + 270)
    assert leases.replace_at(NOW + 240, NOW, NOW + 300, lo) == pytest.approx(NOW + 240)
    assert leases.replace_at(NOW + 280, NOW, NOW + 300, hi) == NOW + 280
    t = token(120, issued_at=NOW - 200)  # born at NOW - 200, renewed now for only 100 s
    t.token = Token("r", "s.tok", "acc", 100, True, NOW)
    plan = policy.token_renewed(t, NOW, hi)
    assert (plan.act, plan.at) == (Act.RELOGIN, pytest.approx(NOW - 200 + 0.9 * 300))


def _per_second(times: list[float], t0: float, t1: float) -> list[int]:
    counts = [0] * int(t1 - t0)
    for t in times:
        if t0 <= t < t1:
            counts[int(t - t0)] += 1
    return counts


def _vmr(counts: list[int]) -> float:
    mean = sum(counts) / len(counts)
    return sum((c - mean) ** 2 for c in counts) / len(counts) / mean


def _fleet(rng) -> list[float]:
    """200 leases of 60 s fetched within 10 s, renewed under the policy for 6 minutes: when."""
    times = []
    for i in range(200):
        start = NOW + 10 * i / 200
        entry = secret(lease=60, renewable=True, at=start)
        plan = policy.secret_plan(entry, start, rng)
        while plan.at < NOW + 360:
            times.append(plan.at)
            plan = policy.lease_renewed(entry, 60, plan.at, rng, start=plan.at)
    return times


def test_a_fleet_started_together_is_spread_from_its_first_renewal(monkeypatch):
    """The renewals of a fleet started together (a seeded random source, no server), per second
    over the 5 minutes after its start: about as spread as random arrivals (variance/mean near
    1); the old 60-72 % window kept them in waves. No more renewals than with it."""
    import random

    window = (NOW + 20, NOW + 320)
    now = _fleet(random.Random(17).uniform)
    monkeypatch.setattr(leases, "RENEW_WINDOW", (0.60, 0.72))
    monkeypatch.setattr(leases, "FIRST_RENEW_WINDOW", (0.60, 0.72))
    old = _fleet(random.Random(17).uniform)
    now_counts, old_counts = _per_second(now, *window), _per_second(old, *window)
    assert _vmr(now_counts) < 2 and _vmr(old_counts) > 4
    assert max(now_counts) < max(old_counts)
    assert 0.9 * sum(old_counts) <= sum(now_counts) <= sum(old_counts)


def test_the_ledger_knows_the_first_expiry_still_ahead():
    ledger = Ledger()
    assert ledger.soonest_end(NOW) is None
    ledger.put_token(Token("r", "s.tok", "acc", 100, True, NOW))
    ledger.remember(secret(lease=30, renewable=True).secret, NOW)
    assert ledger.soonest_end(NOW) == NOW + 30
    assert ledger.soonest_end(NOW + 40) == NOW + 100  # the dead lease is nothing left to lose



def test_a_renewal_that_times_out_is_followed_by_a_lookup_not_a_second_renewal():
    """One request per lease at a frozen server: a renewal sent with 20 s left waits 20 s, to
    its end; the lease is then looked up (the renewal may land), never renewed twice."""
    s = secret(lease=60, renewable=True)
    sent = NOW + 40
    t = policy.request_timeout(10, sent, s.expires_at)
    assert t == pytest.approx(20)
    s.failed("timed out", sent + t, t)
    s.in_doubt = policy.still_in_doubt(False, timeout())
    plan = policy.lease_renewal_failed(s, timeout(), sent + t, hi)
    assert plan.at == pytest.approx(sent + t)
    assert policy.due(s, plan.at) == Act.CHECK


@pytest.mark.parametrize("relogin_in, expected", [
    (10, 11),  # the re-login replaces the lease: renew only if it failed, 1 s after it
    (28, 29),  # still inside the window (60 s lease: at the latest 9 s before its end)
    (31, None),  # too close to the end: renew now
    (-5, None),  # a re-login overdue (failing, or a stale plan): renew now
])
def test_a_lease_renewal_waits_for_a_relogin_that_replaces_the_lease(relogin_in, expected):
    s = secret(lease=60, renewable=True, at=NOW - 20)  # ends at NOW + 40
    t = token(100)
    t.next = Plan(Act.RELOGIN, NOW + relogin_in)
    later = policy.renew_after_relogin(s, t, NOW)
    assert later == (None if expected is None else pytest.approx(NOW + expected))


def test_only_a_relogin_of_the_token_holding_the_lease_holds_its_renewal_back():
    s = secret(lease=60, renewable=True, at=NOW - 20)
    t = token(100)
    t.next = Plan(Act.RENEW, NOW + 10)  # no re-login planned
    assert policy.renew_after_relogin(s, t, NOW) is None
    t.next = Plan(Act.RELOGIN, NOW + 10)
    t.token = Token("r", "s.other", "other-accessor", 100, True, NOW)  # another token's lease
    assert policy.renew_after_relogin(s, t, NOW) is None
    assert policy.renew_after_relogin(s, None, NOW) is None
    t.token = Token("r", "s.tok", "acc", 100, True, NOW)
    assert policy.renew_after_relogin(s, t, NOW) == pytest.approx(NOW + 11)
    assert policy.renew_after_relogin(s, t, NOW, supplied=True) is None  # re-issues nothing
    batch = secret(lease=60, renewable=True, at=NOW - 20)
    batch.secret = batch.secret._replace(accessor="")
    t.token = Token("r", "b.tok", "", 100, True, NOW)  # a batch token: no accessor
    assert policy.renew_after_relogin(batch, t, NOW) is None


def test_a_403_logs_in_again_once_per_streak_not_at_every_retry():
    """A token older than the first denial may be gone: log in again. A token issued after it
    and denied too: a policy denial, and another login would re-issue the role's leases."""
    s = secret(lease=60, renewable=True)
    t = token(100, issued_at=NOW - 50)
    assert policy.relogin_after_fetch_error(fails(403), t, None)  # the first denial
    s.failed("HTTP 403", NOW)
    assert policy.relogin_after_fetch_error(fails(403), t, s.error_since)  # token from before
    t = token(100, issued_at=NOW + 1)  # the re-login it caused
    s.failed("HTTP 403", NOW + 2)
    assert not policy.relogin_after_fetch_error(fails(403), t, s.error_since)
    assert not policy.relogin_after_fetch_error(fails(503), None, None)
