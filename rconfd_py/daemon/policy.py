"""The renewal policy: pure functions from (ledger entry, Vault's answer or error, now, random
source) to the next action and its time. No I/O, no clock of its own: the loop (loop.py) calls
Vault, records the answer in the ledger, asks here what to do next, and sets a timer.

The rules (README, "Daemon mode: how renewal works"); the numbers live in vault/leases.py:

| what                                   | next action                                          |
|----------------------------------------|------------------------------------------------------|
| token after login or renewal           | RENEW at 60-72 % of its TTL; RELOGIN at 85-90 % if   |
|                                        | it is not renewable                                  |
| renewal granted < 90 % of what was     | RELOGIN now (tokens); REFETCH at 85-90 % of the      |
| asked (max TTL near)                   | grant (leases)                                       |
| renewal refused (4xx)                  | RELOGIN now (tokens); REFETCH now (leases)           |
| renewal answered after (or within 1 s  | believed only if a lookup says it lives; else        |
| of) the known end                      | RELOGIN / REFETCH now                                |
| due inside the last 2 s                | RELOGIN / REFETCH instead of renewing                |
| transient failure (no answer, 5xx, 429)| the same action again, backoff racing the expiry     |
| renewable lease fetched                | RENEW at 60-72 % of the lease                        |
| non-renewable lease, PKI certificate   | REFETCH at 85-90 % of its lifetime                   |
| static secret (kv, env, file, exe)     | nothing (or --poll)                                  |
| fetch failed                           | REFETCH with backoff (transient) or 2 s doubling to  |
|                                        | 60 s (needs an operator); a 403 also RELOGINs        |
| a new credential minted too soon       | WAIT until the rate limit allows it                  |
| a template's render or write failed    | RENDER with backoff racing its files' expiry (writes)|
|                                        | or 2 s doubling to 60 s (templates)                  |
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import CheckError, OutputError, RconfdError, VaultError
from ..ledger import Plan, SecretEntry, TokenEntry
from ..vault import leases

Rng = Callable[[float, float], float]
PERMANENT_CAP = 60.0  # retry spacing for errors that need an operator (403 on a path, ...)
LAST_MARGIN = 2.0  # a lease or token this close to its end is replaced, not renewed
MIN_TIMEOUT = 0.5  # the shortest request timeout a deadline leaves


def request_timeout(default: float, now: float, deadline: float | None) -> float:
    """A renewal's timeout: never past the expiry it races (an answer after it is worthless)."""
    if deadline is None:
        return default
    return min(default, max(MIN_TIMEOUT, deadline - now))


def renewal_trusted(expires_before: float | None, answered_at: float) -> bool:
    """A renewal answered after, or within a second of, the end the lease or token was known
    to have may have reached Vault after Vault revoked it: Vault answers 200 and revokes it
    anyway. Such an answer is checked (lookup) before it is believed."""
    return expires_before is None or answered_at < expires_before - leases.EXPIRY_MARGIN


class Act:
    """What a plan does when its time comes."""

    RENEW = "renew"  # renew-self (token) or sys/leases/renew (secret)
    RELOGIN = "relogin"  # log in again, re-issue what the old token held
    REFETCH = "refetch"  # fetch a new value: a new credential for leased secrets
    RENDER = "render"  # render and write a template again


def transient(e: BaseException) -> bool:
    """Retrying soon may help: Vault did not answer, or answered 5xx/429; a write failed (a full
    disk, EACCES: they may heal any second). Not a rejected check: the same content fails the
    same way; it is retried slowly, like a template error."""
    if isinstance(e, CheckError):
        return False
    return isinstance(e, OutputError) or (isinstance(e, VaultError) and e.transient)


def retry_at(attempt: int, now: float, e: BaseException, deadline: float | None, rng: Rng
             ) -> float:
    """After `attempt` failures in a row: backoff racing `deadline` when retrying soon may help,
    else slower retries, up to once a minute."""
    if transient(e):
        return leases.backoff(attempt, now, deadline, rng)
    return now + min(PERMANENT_CAP, 2.0 ** attempt)


# -- tokens ----------------------------------------------------------------------------------
def token_plan(entry: TokenEntry, now: float, rng: Rng) -> Plan | None:
    """After a login: renew a renewable token, replace one that is not; None for a token that
    never expires (root, periodic without TTL)."""
    tok = entry.token
    if not tok.ttl:
        return None
    if not tok.renewable:
        return Plan(Act.RELOGIN, leases.refetch_at(now, tok.issued_at, tok.ttl, rng))
    return Plan(Act.RENEW, leases.renew_at(now, tok.issued_at, tok.ttl, rng))


def token_renewed(entry: TokenEntry, now: float, rng: Rng) -> Plan | None:
    """After renew-self (entry.token is the renewed one): a grant short of what was asked, or a
    token no longer renewable, means its max TTL is near: log in again now."""
    tok = entry.token
    if not tok.ttl:
        return None
    if not tok.renewable or leases.grant_is_short(entry.asked, tok.ttl):
        return Plan(Act.RELOGIN, now)
    return Plan(Act.RENEW, leases.renew_at(now, tok.issued_at, tok.ttl, rng))


def token_renewal_failed(entry: TokenEntry, e: RconfdError, now: float, rng: Rng) -> Plan:
    """renew-self failed: retry with backoff while Vault is away; log in again if refused."""
    if transient(e):
        return Plan(Act.RENEW, leases.backoff(entry.failures, now, entry.expires_at, rng))
    return Plan(Act.RELOGIN, now)


def login_failed(entry: TokenEntry | None, e: RconfdError, now: float, rng: Rng,
                 failures: int) -> Plan:
    deadline = entry.expires_at if entry is not None else None
    return Plan(Act.RELOGIN, retry_at(failures, now, e, deadline, rng))


# -- secrets ---------------------------------------------------------------------------------
def secret_plan(entry: SecretEntry, now: float, rng: Rng) -> Plan | None:
    """After a fetch: renew a renewable lease, replace what cannot be renewed, nothing for a
    static secret."""
    if not entry.leased:
        return None
    if entry.renew:
        return Plan(Act.RENEW, leases.renew_at(now, entry.fetched_at, entry.length, rng))
    return Plan(Act.REFETCH, leases.refetch_at(now, entry.fetched_at, entry.length, rng))


def lease_renewed(entry: SecretEntry, granted: float, now: float, rng: Rng,
                  start: float | None = None) -> Plan:
    """After sys/leases/renew granted `granted` seconds: a short grant means max_ttl is near, so
    a new secret will be needed before the end (the entry then stops renewing: a REFETCH plan
    for a lease means renew=False)."""
    start = now if start is None else start  # when the grant began: the request's sending
    if leases.grant_is_short(entry.asked, granted):
        return Plan(Act.REFETCH, leases.refetch_at(now, start, granted, rng))
    return Plan(Act.RENEW, leases.renew_at(now, start, granted, rng))


def lease_renewal_failed(entry: SecretEntry, e: RconfdError, now: float, rng: Rng) -> Plan:
    if transient(e):
        return Plan(Act.RENEW, leases.backoff(entry.failures, now, entry.expires_at, rng))
    return Plan(Act.REFETCH, now)  # refused (lease gone, max TTL reached): a new secret, now


def due(entry: SecretEntry, now: float) -> str:
    """What a secret's timer does now: renew its lease while it lives, else fetch anew (also
    inside its last LAST_MARGIN seconds, where a renewal could land after the end)."""
    if entry.renew and entry.secret is not None and entry.expires_at is not None \
            and now < entry.expires_at - LAST_MARGIN:
        return Act.RENEW
    return Act.REFETCH


def token_due(entry: TokenEntry | None, now: float) -> str:
    """What a token's timer does now: as planned, but a token inside its last LAST_MARGIN
    seconds is replaced (log in again), not renewed."""
    if entry is None or entry.next is None or entry.next.act == Act.RELOGIN:
        return Act.RELOGIN
    if entry.expires_at is not None and now >= entry.expires_at - LAST_MARGIN:
        return Act.RELOGIN
    return Act.RENEW


def mint_allowed_at(entry: SecretEntry | None, now: float, forced: bool = False) -> float:
    """The earliest time a new credential may be minted for this secret (<= now: at once).
    A re-issue forced by a token change is never held back."""
    if entry is None or forced or not entry.mints:
        return now
    lease = entry.asked or entry.length
    return max(now, leases.next_mint(list(entry.mints), lease))


def fetch_failed(entry: SecretEntry, e: RconfdError, now: float, rng: Rng) -> Plan:
    deadline = entry.expires_at if entry.secret is not None else None
    return Plan(Act.REFETCH, retry_at(entry.failures, now, e, deadline, rng))


def relogin_after_fetch_error(e: RconfdError) -> bool:
    """A 403 on a secret: the token may be gone (revoked, expired during an outage)."""
    return isinstance(e, VaultError) and e.status == 403


# -- templates -------------------------------------------------------------------------------
def render_failed(failures: int, e: BaseException, now: float, deadline: float | None,
                  rng: Rng) -> Plan:
    """A template whose render or write failed: its files keep the previous secrets, so retry
    racing the first of those to expire."""
    return Plan(Act.RENDER, retry_at(failures, now, e, deadline, rng))
