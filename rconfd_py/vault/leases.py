"""Leases: when to renew or re-fetch (pure arithmetic, testable with a fake clock), and the
lease API calls (renew, lookup, revoke).

The numbers (README, "How renewal works"):

- renew a renewable lease or token at a uniformly random point of 60–85 % of what remains, and
  the first time after a fetch or login of 30–85 %: wide windows, so that hundreds of
  containers started together are spread at their first renewal and drift further apart at
  each (a narrow window kept them in waves for the whole run); never within RENEW_LEAD seconds
  of the end;
- fetch a new secret at 75–90 % of a non-renewable lease or of a certificate's lifetime;
- replace what reached its max TTL (a renewal granted less than asked) at a random point of the
  last 10–25 % of its whole life, counted from its login or fetch: not all at one sync point;
- retry failures with exponential backoff and full jitter, 0.5 s doubling to 10 s, never later
  than just before the expiry it is racing;
- never mint a new credential for the same secret more often than once per half lease, and for
  leases of 40 s or more never more than 3 a minute, whatever fails;
- at start, reuse a saved lease or certificate (--state-dir) with at least 1/3 of it left (a
  renewable lease with less is renewed first).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from .answer import seconds

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: the pure arithmetic needs no HTTP client
    from .client import VaultClient

RENEW_WINDOW = (0.60, 0.85)
FIRST_RENEW_WINDOW = (0.30, 0.85)  # the first renewal after a fetch or login
REFETCH_WINDOW = (0.75, 0.90)
REPLACE_WINDOW = (0.75, 0.90)  # of a whole life bounded by max_ttl
RENEW_LEAD = 4.0  # a renewal is never planned later than this before the end
BACKOFF_FIRST = 0.5
BACKOFF_CAP = 10.0
MIN_DELAY = 0.5  # never schedule closer than this: no busy loop on a zero TTL
EXPIRY_MARGIN = 1.0  # a last try this long before expiry
SHORT_GRANT = 0.9  # a grant under 90 % of what was asked means max_ttl is near

Rng = Callable[[float, float], float]


def _at(now: float, start: float, length: float, window: tuple[float, float], rng: Rng) -> float:
    return max(now + MIN_DELAY, start + length * rng(*window))


def renew_at(now: float, start: float, ttl: float, rng: Rng = random.uniform,
             first: bool = False) -> float:
    """When to renew something granted `ttl` seconds at `start`; `first`: the first time since
    it was fetched (a wider window). Short TTLs: RENEW_LEAD seconds before the end at the
    latest, leaving time for the request and a retry."""
    at = start + ttl * rng(*(FIRST_RENEW_WINDOW if first else RENEW_WINDOW))
    return max(now + MIN_DELAY, min(at, start + ttl - RENEW_LEAD))


def refetch_at(now: float, start: float, ttl: float, rng: Rng = random.uniform) -> float:
    """When to replace something valid from `start` for `ttl` seconds."""
    return _at(now, start, ttl, REFETCH_WINDOW, rng)


def replace_at(now: float, born: float, end: float, rng: Rng = random.uniform) -> float:
    """When to replace something alive since `born` that cannot live past `end` (its max TTL):
    a random point of the last 10-25 % of its life, or of what is left of that window; at once
    (now) when the window has passed."""
    span = end - born
    lo, hi = (born + span * f for f in REPLACE_WINDOW)
    lo = max(lo, now)
    return rng(lo, hi) if lo < hi else now


def grant_is_short(asked: float, granted: float) -> bool:
    """A renewal that granted noticeably less than asked: max_ttl is near, renewing further
    cannot keep the secret alive."""
    return granted < asked * SHORT_GRANT


def backoff(attempt: int, now: float, deadline: float | None = None,
            rng: Rng = random.uniform) -> float:
    """When to retry after `attempt` consecutive failures (1, 2, ...): exponential with full
    jitter, capped, and never past `deadline - EXPIRY_MARGIN` while that is still ahead."""
    cap = min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** (attempt - 1))
    when = now + max(MIN_DELAY / 2, rng(cap / 2, cap))
    if deadline is not None and now < deadline - EXPIRY_MARGIN:
        when = min(when, deadline - EXPIRY_MARGIN)
    return when


MINTS_PER_MINUTE = 3  # for leases of LONG_LEASE or more
LONG_LEASE = 40.0


def next_mint(mints: list[float], lease: float) -> float:
    """The earliest time a new credential may be minted for a secret whose previous ones were
    minted at `mints` (ascending) and live `lease` seconds: at most one per half lease (2 to
    20 s apart), and for long leases at most 3 a minute."""
    if not mints:
        return 0.0
    earliest = mints[-1] + min(20.0, max(2.0, lease / 2))
    if lease >= LONG_LEASE and len(mints) >= MINTS_PER_MINUTE:
        earliest = max(earliest, mints[-MINTS_PER_MINUTE] + 60.0)
    return earliest


USEFUL = 1 / 3  # a lease or certificate found at start is reused with this much of it left


def useful(remaining: float, length: float) -> bool:
    """Worth reusing after a restart: something granted for `length` seconds (a lease's
    duration, a certificate's lifetime) with `remaining` seconds left still has at least a
    third of it, and more than the last try's margin."""
    return length > 0 and remaining >= max(length * USEFUL, EXPIRY_MARGIN * 2)


def renew_lease(client: VaultClient, token: str, lease_id: str, increment: float,
                timeout: float | None = None, commit=None) -> float:
    """PUT sys/leases/renew; return the granted duration in seconds. `commit`:
    VaultClient.request's."""
    answer = client.request("PUT", "sys/leases/renew", token=token, timeout=timeout,
                            body={"lease_id": lease_id, "increment": int(increment)},
                            commit=commit)
    return seconds(answer, "lease_duration", where="sys/leases/renew")


def lookup_lease(client: VaultClient, token: str, lease_id: str, timeout: float | None = None
                 ) -> float:
    """PUT sys/leases/lookup: the seconds the lease has left (0: it is gone or expired)."""
    answer = client.request("PUT", "sys/leases/lookup", token=token, timeout=timeout,
                            body={"lease_id": lease_id})
    return seconds(answer, "data", "ttl", where="sys/leases/lookup")


def revoke_lease(client: VaultClient, token: str, lease_id: str, timeout: float | None = None
                 ) -> None:
    client.request("PUT", "sys/leases/revoke", token=token, body={"lease_id": lease_id},
                   timeout=timeout)
