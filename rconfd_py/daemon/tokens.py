"""The daemon's token handlers: a role's token timer renews the token (renew-self), looks it
up after a renewal that timed out, or logs in again, re-issuing under the new token the leased
secrets created under the old one and rendering them before the old token is let go. A part of
the loop (loop.py's Daemon), apart only to keep each file to one subject: the same state, the
same rules (policy.py)."""

from __future__ import annotations

import logging

from ..errors import ConfigError, VaultError
from ..ledger import TokenEntry
from ..redact import redactor
from ..vault.auth import lookup_self, renew_self
from . import policy
from .policy import Act

log = logging.getLogger(__name__)


class TokenHandlers:
    def _token_due(self, role: str) -> None:
        entry = self.ledger.tokens.get(role)
        act = policy.token_due(entry, self.clock())
        if act == Act.RELOGIN or self.pipeline.tokens.changed(role):  # a new token in the file
            self._relogin(role)
        else:
            self._renew_token(entry, check=act == Act.CHECK)

    def _renew_token(self, entry: TokenEntry, check: bool = False) -> None:
        """renew-self; `check`: only look the token up (its last renewal timed out)."""
        role, store = entry.role, self.pipeline.tokens
        try:
            new, ttl, sent, now = self.renewal.send(
                entry, f"role {role}: token", None if check else
                lambda t, go: renew_self(store.client, entry.token, entry.asked, self.clock(),
                                         t, go),
                lambda t: lookup_self(store.client, entry.token, timeout=t), 403)
        except VaultError as e:
            if not self._renewal_retried(entry, e, policy.token_renewal_failed,
                                         f"renewing the token of role {role}", self.plans.token):
                log.info("role %s: token renewal %s (%s): logging in again", role,
                         "not sent" if e.withheld else "refused", e)
                self._relogin(role)
            return
        if ttl is not None:
            new = (new or entry.token)._replace(ttl=ttl, issued_at=sent if check else now)
        self.outage.succeeded()
        entry.succeeded()
        entry = self.ledger.put_token(new)
        plan = (policy.token_checked if check else policy.token_renewed)(entry, now, self.rng)
        if check:
            log.info("role %s: token renewal that timed out %s", role, "landed" if
                     plan.act == Act.RENEW else "did not land: logging in again")
        if plan is not None and plan.act == Act.RELOGIN and plan.at > now:
            log.info("role %s: token reaches its max TTL in %.0fs: logging in again in %.0fs",
                     role, new.ttl, plan.at - now)
            self.plans.token(entry, plan)
        elif plan is not None and plan.act == Act.RELOGIN:
            log.info("role %s: token cannot be renewed further: logging in again", role)
            self._relogin(role)
        else:
            log.debug("role %s: token renewed for %.0fs", role, new.ttl,
                      extra={"role": role, "ttl": new.ttl})
            self.plans.token(entry, plan)

    def _relogin(self, role: str) -> None:
        """Log in again, re-issue what died with the old token, render before letting it go."""
        store, now = self.pipeline.tokens, self.clock()
        old = self.ledger.tokens.get(role)
        timeout = self.renewal.wait_timeout(old)
        try:
            with self.signals, self.pipeline.vault_timeout(timeout):
                store.relogin(role)
        except (VaultError, ConfigError) as e:
            self.ledger.observe("login", self.clock() - now)
            self.ledger.count("login", "failed")
            self.outage.failed(f"logging in as role {role}", e)
            n = old.failed(str(e), now, policy.timed_out(e, timeout)) if old is not None else 1
            self.plans.role(role, policy.login_failed(old, e, now, self.rng, n))
            return
        self.ledger.observe("login", self.clock() - now)
        self.ledger.count("login", "ok")
        self.outage.succeeded()
        entry = self.ledger.tokens[role]
        redactor.add(("token", role), entry.token.client_token)
        self.plans.token(entry, policy.token_plan(entry, now, self.rng))
        doomed = [e for e in self.ledger.secrets.values() if old is not None
                  and e.ref.role == role and e.lease_id
                  and e.secret.accessor == old.token.accessor != entry.token.accessor]
        if doomed:
            log.info("role %s: re-issuing %d leased secret(s) under the new token", role,
                     len(doomed))
        for e in doomed:
            self._refetch(e.ref, forced=True)
        if self.rerender.dirty:
            self.rerender.flush()  # the new secrets are on disk before the old token expires
