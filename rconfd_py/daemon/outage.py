"""Vault outages as the log tells them: one warning when the first transient failure starts
one, one line when Vault answers again; what is not transient is an error line each time.
And the knock: while Vault gives no answer at all, a request is sent only after an unaudited
probe (sys/health) is answered."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..errors import RconfdError, VaultError
from ..vault import leases

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..vault.client import VaultClient

log = logging.getLogger(__name__)


class Outage:
    def __init__(self, clock: Callable[[], float]):
        self.clock = clock
        self.since: float | None = None  # when the current outage started (status, metrics)
        self.silent = False  # the last failure got no answer at all: Vault down or frozen
        self.knocks = 0  # probes in a row that got no answer

    def failed(self, what: str, e: RconfdError) -> None:
        if isinstance(e, VaultError) and e.transient:
            self.silent = e.status == 0
            if self.since is None:
                self.since = self.clock()
                log.warning("Vault unavailable (%s); retrying with backoff, files are kept as "
                            "they are", e)
            else:
                log.debug("%s: still failing: %s", what, e)
        else:
            log.error("%s", e)

    def succeeded(self) -> None:
        self.silent, self.knocks = False, 0
        if self.since is not None:
            log.info("Vault available again after %.0fs", self.clock() - self.since)
            self.since = None

    def knock(self, client: VaultClient, timeout: float, rng) -> float | None:
        """Before a request while Vault gives no answer: GET sys/health, which Vault never
        audits and which a frozen server may process late without harm. A server that answers
        gets the request (None: go ahead); else each request due would be one more queued at a
        frozen server, failing when it wakes ("context canceled", a renewal of a lease that died
        meanwhile), so return how long to wait before knocking again: at once after a probe
        that waited `timeout` in vain (one probe is always waiting, so a server that wakes is
        seen at once), with backoff when the connection is refused."""
        if not self.silent:
            return None
        try:
            client.answers(timeout)
        except VaultError as e:
            self.knocks += 1
            log.debug("Vault still gives no answer: %s", e)
            return 0.0 if e.timed_out else leases.backoff(self.knocks, 0.0, None, rng)
        self.knocks = 0
        return None
