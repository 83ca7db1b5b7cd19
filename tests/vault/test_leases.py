"""Scheduling math with a fake clock and a fake random source: jitter bounds, max_ttl clamping,
backoff racing the expiry, the mint rate limit, and the daemon's timer heap."""

import pytest

from rconfd_py.daemon.timers import Timers
from rconfd_py.vault import leases


def lo(a, b):
    return a


def hi(a, b):
    return b


@pytest.mark.parametrize("rng", [lo, hi])
def test_renew_at_60_to_85_percent_and_the_first_time_30_to_85(rng):
    at = leases.renew_at(now=1000, start=1000, ttl=3600, rng=rng)
    assert 1000 + 0.60 * 3600 <= at <= 1000 + 0.85 * 3600
    first = leases.renew_at(now=1000, start=1000, ttl=3600, rng=rng, first=True)
    assert 1000 + 0.30 * 3600 <= first <= 1000 + 0.85 * 3600


@pytest.mark.parametrize("rng", [lo, hi])
def test_refetch_at_75_to_90_percent(rng):
    at = leases.refetch_at(now=0, start=0, ttl=10, rng=rng)
    assert 7.5 <= at <= 9.0


def test_schedule_is_never_in_the_past_or_a_busy_loop():
    assert leases.renew_at(now=500, start=0, ttl=100, rng=hi) == 500 + leases.MIN_DELAY
    assert leases.refetch_at(now=0, start=0, ttl=0, rng=hi) == leases.MIN_DELAY


def test_short_grant_means_max_ttl_is_near():
    assert not leases.grant_is_short(asked=10, granted=10)
    assert not leases.grant_is_short(asked=10, granted=9.5)
    assert leases.grant_is_short(asked=10, granted=6)
    assert leases.grant_is_short(asked=20, granted=0)


def test_backoff_grows_exponentially_and_is_capped():
    delays = [leases.backoff(n, now=0, rng=hi) for n in range(1, 10)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(delays) == leases.BACKOFF_CAP
    assert all(leases.backoff(n, now=0, rng=lo) >= delays[n - 1] / 2 for n in range(1, 10))


def test_backoff_never_waits_past_the_expiry_it_races():
    # 8th failure would wait 10 s, but the lease expires in 3 s: try 1 s before it
    assert leases.backoff(8, now=100, deadline=103, rng=hi) == 102
    # once the deadline has passed, plain backoff (keep trying, capped)
    assert leases.backoff(8, now=100, deadline=99, rng=hi) == 110


def test_mint_rate_limit():
    assert leases.next_mint([], lease=10) == 0
    assert leases.next_mint([100], lease=10) == 105  # half a short lease
    assert leases.next_mint([100], lease=3600) == 120  # at most 20 s apart
    assert leases.next_mint([100], lease=1) == 102  # at least 2 s apart
    # long leases: never more than 3 per minute, whatever fails
    assert leases.next_mint([100, 120, 140], lease=3600) == 160
    assert leases.next_mint([100, 101, 102], lease=3600) == 160
    # short leases legitimately rotate more often (pki ttl 10 s)
    assert leases.next_mint([100, 105, 110], lease=10) == 115


def test_timers_replace_cancel_and_pop_in_order():
    t = Timers()
    t.set("a", 5)
    t.set("b", 3)
    t.set("a", 1)  # rescheduled: the old deadline is dropped
    t.set("c", 2)
    t.cancel("c")
    assert t.next_deadline() == 1 and t.first() == "a"
    assert t.pop_due(4) == ["a", "b"]
    assert t.next_deadline() is None and "a" not in t and t.first() is None
