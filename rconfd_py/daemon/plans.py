"""Where the policy's answers become timers: an entry's next action (its `next`, what `status`
shows) and the timer that carries it out (timers.py), set together so they never disagree."""

from __future__ import annotations

import logging
from collections.abc import Callable

from . import policy
from .timers import Kind, Timer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..ledger import Ledger, Plan, SecretEntry, TokenEntry
    from .timers import Timers

log = logging.getLogger(__name__)


class Plans:
    def __init__(self, ledger: Ledger, timers: Timers, clock: Callable[[], float],
                 rng: policy.Rng):
        self.ledger = ledger
        self.timers = timers
        self.clock = clock
        self.rng = rng

    def all(self) -> None:
        """After the first pass: every token and every leased secret."""
        now = self.clock()
        for entry in self.ledger.tokens.values():
            self.token(entry, policy.token_plan(entry, now, self.rng))
        for entry in self.ledger.leased():
            self.secret(entry, policy.secret_plan(entry, now, self.rng))

    def new_tokens(self) -> None:
        """Roles first logged in after the first pass (a reload, a retried secret)."""
        now = self.clock()
        for entry in self.ledger.tokens.values():
            if entry.next is None and Timer(Kind.TOKEN, entry.role) not in self.timers:
                self.token(entry, policy.token_plan(entry, now, self.rng))

    def role(self, role: str, plan: Plan) -> None:
        """A plan for a role's token, whether or not it has one yet (a login that failed)."""
        entry = self.ledger.tokens.get(role)
        if entry is not None:
            self.token(entry, plan)
        else:
            self.timers.set(Timer(Kind.TOKEN, role), plan.at)

    def token(self, entry: TokenEntry, plan: Plan | None) -> None:
        entry.next = plan
        if plan is not None:
            self.timers.set(Timer(Kind.TOKEN, entry.role), plan.at)

    def secret(self, entry: SecretEntry, plan: Plan | None) -> None:
        entry.next = plan
        key = Timer(Kind.SECRET, entry.ref)
        if plan is None:
            self.timers.cancel(key)
        else:
            self.timers.set(key, plan.at)
            log.debug("%s: %s in %.1fs", entry.ref, plan.act, plan.at - self.clock())
