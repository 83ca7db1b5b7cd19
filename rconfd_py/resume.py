"""At start, take back what a previous process saved (state.py): each saved token checked with
lookup-self, each saved lease with sys/leases/lookup, a certificate by its recorded expiry.
What lives with a useful time left (vault/leases.py `useful`: a third of it; a renewable
lease with less is renewed first) goes into the ledger as if just fetched, so the first pass fetches only what is missing, dead or about to
expire, and the daemon's plan carries on from the reused entries' expiry.

It talks to Vault and writes no file. A transient failure (Vault unreachable) is raised: the
first pass fails as it would have anyway, and the saved state is tried again at its retry.
"""

from __future__ import annotations

import logging

from .errors import VaultError
from .redact import redactor
from .vault import leases
from .vault.auth import lookup_self, revoke_self

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .ledger import Ledger, SecretEntry, TokenEntry
    from .refs import SecretRef
    from .state import Saved

log = logging.getLogger(__name__)


def resume(saved: Saved, wanted: set[SecretRef], ledger: Ledger, client, now: float,
           timeout: float, revoke_dropped: bool = False) -> tuple[int, int]:
    """Put what of `saved` is alive and useful into `ledger`; return (tokens, secrets) reused.
    `wanted`: the refs of the config (anything else saved is dropped, and revoked with
    `revoke_dropped`)."""
    roles = {r.role for r in wanted if r.backend == "vault"}
    tokens: dict[str, TokenEntry] = {}
    for role, entry in saved.tokens.items():
        # masked before any call: an answer (or a proxy's page) may echo the token
        redactor.add(("token", role), entry.token.client_token)
        if role not in roles:
            log.info("role %s: no longer configured: its saved token is dropped", role)
            if revoke_dropped:
                _quietly(lambda e=entry: revoke_self(client, e.token, timeout=timeout),
                         f"role {role}: cannot revoke its saved token")
            continue
        try:
            ttl = lookup_self(client, entry.token, timeout=timeout)
        except VaultError as e:
            if e.transient:
                raise
            log.info("role %s: the saved token is gone (%s): logging in", role, e.status)
            continue
        if entry.token.ttl and ttl <= 0:
            log.info("role %s: the saved token has expired: logging in", role)
            continue
        token = entry.token._replace(ttl=ttl, issued_at=now) if entry.token.ttl else entry.token
        restored = ledger.put_token(token)
        restored.asked, restored.born = entry.asked, entry.born  # its max TTL runs from the login
        tokens[role] = restored
    reused = 0
    for ref, entry in saved.secrets.items():
        token = tokens.get(ref.role)
        if ref not in wanted:
            log.info("%s: no longer configured: dropped from the state", ref)
            if revoke_dropped and token is not None and entry.lease_id:
                _quietly(lambda e=entry, t=token: leases.revoke_lease(
                    client, t.token.client_token, e.lease_id, timeout=timeout),
                    f"{ref}: cannot revoke its saved lease")
            continue
        if ref.kwargs:  # as pipeline.fetch_each registers them
            redactor.add(("kwargs", ref), [{k: v} for k, v in ref.kwargs])
        redactor.add(ref, entry.secret.value)
        if token is None or token.token.accessor != entry.secret.accessor:
            log.info("%s: its token is gone: fetching a new secret", ref)
            continue
        left = _left(entry, token, client, now, timeout)
        if left is None:
            continue
        remaining, length = left
        if not leases.useful(remaining, length) and entry.renew and remaining > 0:
            remaining = _renewed(entry, token, client, remaining, timeout)
            if token.expires_at is not None and not token.token.renewable:
                remaining = min(remaining, token.expires_at - now)
        if not leases.useful(remaining, length):
            log.info("%s: saved with %.0fs of %.0fs left: fetching a new secret", ref,
                     max(0.0, remaining), length)
            continue
        _restore(ledger, entry, remaining, length, now)
        log.info("%s: reused from the state (%.0fs left)", ref, remaining,
                 extra={"path": str(ref), "role": ref.role or None, "ttl": remaining})
        reused += 1
    return len(tokens), reused


def _left(entry: SecretEntry, token: TokenEntry, client, now: float, timeout: float
          ) -> tuple[float, float] | None:
    """(seconds left, seconds granted) of a saved secret; None when its lease is gone."""
    secret = entry.secret
    remaining, length = float("inf"), 0.0
    if entry.lease_id:
        try:
            ttl = leases.lookup_lease(client, token.token.client_token, entry.lease_id,
                                      timeout=timeout)
        except VaultError as e:
            if e.transient:
                raise
            log.info("%s: its saved lease is gone (%s): fetching a new secret", entry.ref,
                     e.status)
            return None
        if ttl <= 0:
            log.info("%s: its saved lease has expired: fetching a new secret", entry.ref)
            return None
        remaining, length = ttl, entry.asked or secret.lease.duration
    expiration = secret.value.get("expiration") if isinstance(secret.value, dict) else None
    if isinstance(expiration, (int, float)) and expiration > 0:  # a certificate's own end
        remaining = min(remaining, float(expiration) - now)
        length = max(length, float(expiration) - secret.fetched_at)
    elif not entry.lease_id:
        remaining, length = (entry.expires_at or now) - now, entry.length
    if token.expires_at is not None and not token.token.renewable:
        remaining = min(remaining, token.expires_at - now)  # its leases die with it
    return remaining, length


def _renewed(entry: SecretEntry, token: TokenEntry, client, remaining: float,
             timeout: float) -> float:
    """A renewable lease with too little left is renewed (a renewal, not a mint); the seconds
    it has now."""
    try:
        granted = leases.renew_lease(client, token.token.client_token, entry.lease_id,
                                     entry.asked, timeout=timeout)
    except VaultError as e:
        if e.transient:
            raise
        log.info("%s: its saved lease cannot be renewed (%s)", entry.ref, e.status)
        return 0.0
    log.info("%s: its saved lease, %.0fs from its end, renewed for %.0fs", entry.ref,
             remaining, granted)
    return granted


def _restore(ledger: Ledger, entry: SecretEntry, remaining: float, length: float,
             now: float) -> None:
    """A reused secret in the ledger. A renewable lease counts as granted its duration ending
    at its current end (its renewal comes when it would have); anything else keeps its times."""
    secret = entry.secret
    if entry.renew and entry.lease_id:
        end = now + remaining
        secret = secret._replace(fetched_at=end - length, expires_at=end)
    restored = ledger.remember(secret, now)
    restored.mints.clear()  # reused, not minted: the saved history, not a mint now
    restored.mints.extend(entry.mints)
    restored.renew, restored.asked = entry.renew, entry.asked
    end = now + remaining
    restored.expires_at = end if entry.expires_at is None else min(entry.expires_at, end)


def _quietly(call, what: str) -> None:
    try:
        call()
    except VaultError as e:
        log.warning("%s: %s", what, e)
