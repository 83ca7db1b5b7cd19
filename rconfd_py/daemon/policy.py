"""The renewal policy: pure functions from (ledger entry, Vault's answer or error, now, random
source) to the next action and its time. No I/O, no clock of its own: the loop (loop.py) calls
Vault, records the answer in the ledger, asks here what to do next, and sets a timer.

The rules (README, "Daemon mode: how renewal works"); the numbers live in vault/leases.py:

| what                                   | next action                                          |
|----------------------------------------|------------------------------------------------------|
| token after login                      | RENEW at 30-85 % of its TTL; RELOGIN at 75-90 % if   |
|                                        | it is not renewable                                  |
| token after renewal                    | RENEW at 60-85 % of its TTL (4 s before its end at   |
|                                        | the latest)                                          |
| renewal granted < 90 % of what was     | RELOGIN at a random point of the last 10-25 % of the |
| asked (max TTL near)                   | token's life since its login; REFETCH at 75-90 % of  |
|                                        | the grant (leases)                                   |
| renewal refused (4xx)                  | RELOGIN now (tokens); REFETCH now (leases)           |
| Vault asks for a renewal's body (100   | not sent (worth_sending), RELOGIN / REFETCH now: it  |
| Continue) inside its last 2 s          | would land after the end (a freeze) and fail there   |
| renewal answered after (or within 1 s  | believed only if a lookup says it lives; else        |
| of) the known end                      | RELOGIN / REFETCH now                                |
| due inside the last 2 s                | RELOGIN / REFETCH instead of renewing; CHECK first   |
|                                        | (lookup) if the last renewal timed out: it may have  |
|                                        | landed, then carry on with it                        |
| transient failure (no answer, 5xx, 429)| the same action again, backoff racing the expiry     |
| a request timed out                    | the same request no sooner than the timeout it had   |
|                                        | (the server may still process it; a renewal still    |
|                                        | becomes a CHECK at the last margin)                  |
| renewable lease fetched                | RENEW at 30-85 % of the lease, then 60-85 % of each  |
|                                        | grant                                                |
| lease renewal due, its token to log in | RENEW just after the re-login (which re-issues the   |
| again before the lease's window ends   | lease), if that is still inside the window; not for  |
|                                        | supplied or batch tokens, nor an overdue re-login    |
| non-renewable lease, PKI certificate   | REFETCH at 75-90 % of its lifetime                   |
| static secret (kv, env, file, exe)     | nothing (or --poll)                                  |
| fetch failed                           | REFETCH with backoff (transient) or 2 s doubling to  |
|                                        | 60 s (needs an operator); a 403 also RELOGINs, once  |
|                                        | per streak of denials                                |
| a new credential minted too soon       | WAIT until the rate limit allows it                  |
| a template's render or write failed    | RENDER with backoff racing its files' expiry (writes)|
|                                        | or 2 s doubling to 60 s (templates)                  |

Request timeouts: every request waits up to 3 x --timeout for its answer, so that a slow or
frozen server holds one request per lease or token, not one per retry; a renewal never past
the expiry it races (then a CHECK, not a second renewal); and no request, beyond --timeout,
so long that whatever else ends first no longer has one --timeout request before its last
margin. After a timeout the next attempt's timeout is doubled (up to 6 x --timeout, within the
same limits). While Vault gives no answer at all, a request waits on up to 6 x --timeout
whatever else ends (longest_wait; the probing is outage.Wait's): nothing else can be renewed
meanwhile.
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


LONG_TIMEOUT = 3  # x --timeout: how long a request with nothing alive to lose may wait


def wait_timeout(default: float, now: float, soonest: float | None,
                 timed_out: float = 0.0) -> float:
    """The timeout of a fetch, login or lookup: long (LONG_TIMEOUT x default), since a request
    the client gave up on may still be processed by a slow or frozen server and every retry
    would queue behind it; after an attempt that timed out, twice that attempt's (up to 2 x
    LONG_TIMEOUT x default: the copy is then more likely to be the one still waiting when a
    frozen server wakes). Beyond the default, it ends in time for one default-length request
    before the last margin of `soonest`, the first end of anything else the daemon holds: the
    loop is single-threaded, and what ends first must still be renewable when the wait is
    over."""
    longest = max(default * LONG_TIMEOUT, min(2 * timed_out, 2 * LONG_TIMEOUT * default))
    if soonest is not None:
        longest = min(longest, max(default, soonest - LAST_MARGIN - default - now))
    return longest


def longest_wait(default: float, now: float, entry: TokenEntry | SecretEntry | None) -> float:
    """How long in all the requests of `entry`'s timer may wait while Vault gives no answer at
    all (the patience, outage.Wait): as long as the longest wait_timeout, 2 x LONG_TIMEOUT x
    default, whatever else ends first (when nothing answers, nothing else can be renewed
    meanwhile; a request given up would be processed when the server wakes, and fail there);
    a renewal never past the end it races."""
    longest = 2 * LONG_TIMEOUT * default
    if entry is not None and entry.expires_at is not None and (
            token_due(entry, now) if isinstance(entry, TokenEntry) else due(entry, now)
    ) == Act.RENEW:
        longest = min(longest, entry.expires_at - now)  # > LAST_MARGIN: a RENEW
    return longest


def request_timeout(default: float, now: float, deadline: float | None,
                    soonest: float | None = None, timed_out: float = 0.0) -> float:
    """A renewal's timeout: a wait_timeout (one request per lease queued at a slow or frozen
    server, not one per retry), but never past the expiry it races: the lease or token is then
    looked up, not renewed again."""
    longest = wait_timeout(default, now, soonest, timed_out)
    if deadline is not None:
        longest = min(longest, deadline - now)
    return max(MIN_TIMEOUT, longest)


def worth_sending(expires_at: float | None, now: float) -> bool:
    """Whether a renewal's body still goes when Vault asks for it (its 100 Continue, after a
    freeze perhaps): not inside the last margin, where the lease or token is replaced instead
    (a renewal that lands after the end fails, and Vault would log the failure)."""
    return expires_at is None or now < expires_at - LAST_MARGIN


def not_before(entry: TokenEntry | SecretEntry, when: float, now: float,
               until: float | None = None) -> float:
    """A retry of a request that timed out: no sooner than the timeout it had, since the
    server may still be processing it (a copy would be processed too); but not past `until`,
    where the next action changes (a renewal's last margin: then a CHECK)."""
    if not entry.timed_out:
        return when
    later = now + entry.timed_out
    if until is not None:
        later = min(later, max(now, until))
    return max(when, later)


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
    CHECK = "check"  # look up a lease or token whose renewal timed out: it may have landed


def timed_out(e: BaseException, timeout: float) -> float:
    """What a failed attempt leaves in doubt: its timeout if it got no answer in time (the
    server may still process it), else 0."""
    return timeout if isinstance(e, VaultError) and e.timed_out else 0.0


def still_in_doubt(was: bool, e: BaseException) -> bool:
    """After a renewal failed: a timeout leaves it in doubt (it may land); an answer (a
    refusal) settles it; a transient error, or a renewal withheld (not sent), settles
    nothing."""
    return bool(timed_out(e, 1.0)) or (was and (transient(e) or _withheld(e)))


def _withheld(e: BaseException) -> bool:
    return isinstance(e, VaultError) and e.withheld


def _renewed_again(entry: TokenEntry | SecretEntry, e: BaseException) -> bool:
    """After a failed renewal: retry it (a transient failure), or let due()/token_due() CHECK
    an earlier renewal still in doubt (this one withheld); else replace what it renews."""
    return transient(e) or (_withheld(e) and entry.in_doubt)


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
    return Plan(Act.RENEW, leases.renew_at(now, tok.issued_at, tok.ttl, rng, first=True))


def token_renewed(entry: TokenEntry, now: float, rng: Rng) -> Plan | None:
    """After renew-self (entry.token is the renewed one): a token no longer renewable is
    replaced now; a grant short of what was asked means its max TTL is near: log in again at a
    random point of the last 10-25 % of its life (a fleet logged in together does not log in
    again together)."""
    tok = entry.token
    if not tok.ttl:
        return None
    if not tok.renewable:
        return Plan(Act.RELOGIN, now)
    if leases.grant_is_short(entry.asked, tok.ttl):
        return Plan(Act.RELOGIN, leases.replace_at(now, entry.born, tok.issued_at + tok.ttl,
                                                   rng))
    return Plan(Act.RENEW, leases.renew_at(now, tok.issued_at, tok.ttl, rng))


def token_renewal_failed(entry: TokenEntry, e: RconfdError, now: float, rng: Rng) -> Plan:
    """renew-self failed: retry with backoff while Vault is away (after a timeout, no sooner
    than the timeout); log in again if refused, or if withheld (not sent: inside the last
    margin), unless an earlier renewal is in doubt: token_due then CHECKs it first."""
    if _renewed_again(entry, e):
        return Plan(Act.RENEW, _renewal_retry(entry, now, rng))
    return Plan(Act.RELOGIN, now)


def token_checked(entry: TokenEntry, now: float, rng: Rng) -> Plan:
    """lookup-self after a renewal that timed out (entry.token carries the TTL it reported): a
    token with more than the last margin left was renewed after all (carry on with it); else
    log in again now."""
    tok = entry.token
    if tok.expires_at is not None and tok.expires_at - now > LAST_MARGIN:
        return Plan(Act.RENEW, leases.renew_at(now, tok.issued_at, tok.ttl, rng))
    return Plan(Act.RELOGIN, now)


def login_failed(entry: TokenEntry | None, e: RconfdError, now: float, rng: Rng,
                 failures: int) -> Plan:
    deadline = entry.expires_at if entry is not None else None
    when = retry_at(failures, now, e, deadline, rng)
    return Plan(Act.RELOGIN, when if entry is None else not_before(entry, when, now))


# -- secrets ---------------------------------------------------------------------------------
def secret_plan(entry: SecretEntry, now: float, rng: Rng) -> Plan | None:
    """After a fetch: renew a renewable lease, replace what cannot be renewed, nothing for a
    static secret."""
    if not entry.leased:
        return None
    if entry.renew:
        return Plan(Act.RENEW, leases.renew_at(now, entry.fetched_at, entry.length, rng,
                                               first=True))
    return Plan(Act.REFETCH, leases.refetch_at(now, entry.fetched_at, entry.length, rng))


def lease_renewed(entry: SecretEntry, granted: float, now: float, rng: Rng,
                  start: float | None = None) -> Plan:
    """After sys/leases/renew granted `granted` seconds: a short grant means max_ttl is near, so
    a new secret will be needed before the end, at 75-90 % of the grant (the entry then stops
    renewing: a REFETCH plan for a lease means renew=False). Not earlier: a lease whose
    max_ttl is its token's is re-issued by the token's re-login (spread over the last 10-25 %
    of the token's life), and an earlier refetch would mint it twice."""
    start = now if start is None else start  # when the grant began: the request's sending
    if leases.grant_is_short(entry.asked, granted):
        return Plan(Act.REFETCH, leases.refetch_at(now, start, granted, rng))
    return Plan(Act.RENEW, leases.renew_at(now, start, granted, rng))


RELOGIN_GRACE = 1.0  # a renewal held back for a re-login is due this long after it


def renew_after_relogin(entry: SecretEntry, token: TokenEntry | None, now: float,
                        supplied: bool = False) -> float | None:
    """A lease renewal falling due while the token that holds the lease is set to log in again
    soon: the re-login re-issues every lease of the old token, so renewing this one would be
    a request for a lease about to be replaced. Return when to renew it instead, just after
    the re-login (in case that fails), if that still leaves the lease what a renewal at the end
    of its window would; None: renew now. Not for a supplied token (its "re-login" re-reads
    the same token and re-issues nothing), a token without accessor (batch), nor a re-login
    already overdue (it is failing, or its plan is stale)."""
    plan = token.next if token is not None else None
    if plan is None or plan.act != Act.RELOGIN or plan.at < now or supplied \
            or entry.expires_at is None or entry.secret is None \
            or not entry.secret.accessor or entry.secret.accessor != token.token.accessor:
        return None
    at = max(now, plan.at) + RELOGIN_GRACE
    latest = entry.expires_at - max(leases.RENEW_LEAD,
                                    entry.asked * (1 - leases.RENEW_WINDOW[1]))
    return at if at <= latest else None


def lease_renewal_failed(entry: SecretEntry, e: RconfdError, now: float, rng: Rng) -> Plan:
    """Retry a transient failure (racing the end); else a new secret now: refused, or withheld
    (not sent: inside the last margin), unless an earlier renewal is in doubt (due() then
    CHECKs it first: it may have landed)."""
    if _renewed_again(entry, e):
        return Plan(Act.RENEW, _renewal_retry(entry, now, rng))
    return Plan(Act.REFETCH, now)  # refused (lease gone, max TTL reached): a new secret, now


def lease_checked(entry: SecretEntry, ttl: float, now: float, rng: Rng) -> Plan:
    """sys/leases/lookup after a renewal that timed out: a lease with more than the last margin
    left was renewed after all (carry on with it, no new credential); else a new secret now."""
    if ttl > LAST_MARGIN:
        return Plan(Act.RENEW, leases.renew_at(now, now, ttl, rng))
    return Plan(Act.REFETCH, now)


def _renewal_retry(entry: TokenEntry | SecretEntry, now: float, rng: Rng) -> float:
    """A failed renewal's retry: backoff racing the expiry; after a timeout, no sooner than the
    timeout, but no later than the last margin (where it turns into a CHECK, then a
    replacement): inside the last margin, at once."""
    end = entry.expires_at
    if end is not None and now >= end - LAST_MARGIN:
        return now  # nothing left to race: due()/token_due() check or replace it now
    when = leases.backoff(entry.failures, now, end, rng)
    return not_before(entry, when, now, None if end is None else end - LAST_MARGIN)


def due(entry: SecretEntry, now: float) -> str:
    """What a secret's timer does now: renew its lease while it lives, else fetch anew (also
    inside its last LAST_MARGIN seconds, where a renewal could land after the end); but first
    CHECK a lease whose last renewal timed out (it may have landed)."""
    if entry.renew and entry.secret is not None and entry.expires_at is not None \
            and now < entry.expires_at - LAST_MARGIN:
        return Act.RENEW
    return Act.CHECK if entry.in_doubt and entry.lease_id else Act.REFETCH


def token_due(entry: TokenEntry | None, now: float) -> str:
    """What a token's timer does now: as planned, but a token inside its last LAST_MARGIN
    seconds is replaced (log in again), not renewed; CHECKed first if its last renewal timed
    out."""
    if entry is None or entry.next is None:
        return Act.RELOGIN
    if entry.next.act == Act.RELOGIN or (entry.expires_at is not None
                                          and now >= entry.expires_at - LAST_MARGIN):
        return Act.CHECK if entry.in_doubt else Act.RELOGIN
    return Act.RENEW


def mint_allowed_at(entry: SecretEntry | None, now: float, forced: bool = False) -> float:
    """The earliest time a new credential may be minted for this secret (<= now: at once).
    A re-issue forced by a token change is never held back."""
    if entry is None or forced or not entry.mints:
        return now
    lease = entry.asked or entry.length
    return max(now, leases.next_mint(list(entry.mints), lease))


def fetch_failed(entry: SecretEntry, e: RconfdError, now: float, rng: Rng) -> Plan:
    """A fetch failed: retry (a mint that timed out: no sooner than its timeout, it may still
    mint)."""
    deadline = entry.expires_at if entry.secret is not None else None
    return Plan(Act.REFETCH, not_before(entry, retry_at(entry.failures, now, e, deadline, rng),
                                        now))


def relogin_after_fetch_error(e: RconfdError, token: TokenEntry | None = None,
                              denied_since: float | None = None) -> bool:
    """A 403 on a secret: the token may be gone (revoked, expired during an outage), so log in
    again; but only with a token older than the first failure of this streak (`denied_since`):
    a fresh token denied as well means a policy denial, and logging in again at every retry
    would re-issue every lease of the role each time."""
    if not (isinstance(e, VaultError) and e.status == 403):
        return False
    return token is None or denied_since is None or token.token.issued_at < denied_since


# -- templates -------------------------------------------------------------------------------
def render_failed(failures: int, e: BaseException, now: float, deadline: float | None,
                  rng: Rng) -> Plan:
    """A template whose render or write failed: its files keep the previous secrets, so retry
    racing the first of those to expire."""
    return Plan(Act.RENDER, retry_at(failures, now, e, deadline, rng))
