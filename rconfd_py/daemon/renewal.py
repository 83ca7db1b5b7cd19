"""One renewal (or CHECK lookup) at a time, racing an expiry: its timeout from the policy, its
body sent only when Vault asks for it and only while the policy says it is still worth it
(policy.worth_sending: a renewal of a lease that ended while the server was frozen is never
sent, it would fail there), the clock read after the answer, a late answer believed only if a
lookup says the lease or token lives, and the outcome recorded in the ledger entry (a timeout
leaves the renewal in doubt: it may still land, so the entry is looked up before it is
replaced)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..errors import VaultError
from . import policy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..ledger import Ledger
    from ..settings import Settings
    from .signals import Signals

log = logging.getLogger(__name__)


class Renewal:
    def __init__(self, ledger: Ledger, settings: Settings, signals: Signals,
                 clock: Callable[[], float]):
        self.ledger, self.settings, self.signals, self.clock = ledger, settings, signals, clock

    def wait_timeout(self, entry=None) -> float:
        """The timeout of a fetch, login or lookup replacing (or checking) `entry`
        (policy.wait_timeout)."""
        now = self.clock()
        return policy.wait_timeout(self.settings.timeout, now,
                                   self.ledger.soonest_end(now, but=entry),
                                   entry.timed_out if entry is not None else 0.0)

    def send(self, entry, what: str, renew: Callable | None, lookup: Callable,
             gone_status: int):
        """Send a renewal racing `entry`'s end (its timeout never outlasts it) and believe an
        answer that came late only if `lookup` says it lives; `renew` None: a CHECK, the lookup
        alone; it is called with the timeout and the commit (VaultClient.request's). Return
        (answer, ttl from the lookup or None, when it was sent, when it was answered); a
        failure is recorded (timed out: in doubt) and raised (VaultError)."""
        sent = self.clock()
        timeout = policy.request_timeout(self.settings.timeout, sent, entry.expires_at,
                                         self.ledger.soonest_end(sent, but=entry),
                                         entry.timed_out) \
            if renew else self.wait_timeout(entry)
        try:
            with self.signals:
                answer, ttl = (renew(timeout, lambda: policy.worth_sending(
                    entry.expires_at, self.clock())), None) if renew else \
                    (None, lookup(timeout))
                now = self.clock()  # the answer's time decides whether to believe it
                if renew and not policy.renewal_trusted(entry.expires_at, now):
                    timeout = self.wait_timeout(entry)
                    ttl = lookup(timeout)
                    log.info("%s: renewal answered %.1fs before its end: %s", what,
                             entry.expires_at - now, f"it lives {ttl:.0f}s" if ttl else "gone")
                if ttl is not None and not ttl:
                    raise VaultError(f"{what}: gone", status=gone_status)
        except VaultError as e:
            now = self.clock()
            self.ledger.observe("renew", now - sent)
            entry.failed(str(e), now, policy.timed_out(e, timeout))
            entry.in_doubt = renew is not None and policy.still_in_doubt(entry.in_doubt, e)
            raise
        self.ledger.observe("renew", now - sent)
        self.ledger.count("renewal", "ok")
        return answer, ttl, sent, now
