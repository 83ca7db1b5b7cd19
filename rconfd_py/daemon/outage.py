"""Vault outages as the log tells them: one warning when the first transient failure starts
one, one line when Vault answers again; what is not transient is an error line each time."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..errors import RconfdError, VaultError

log = logging.getLogger(__name__)


class Outage:
    def __init__(self, clock: Callable[[], float]):
        self.clock = clock
        self.since: float | None = None  # when the current outage started (status, metrics)

    def failed(self, what: str, e: RconfdError) -> None:
        if isinstance(e, VaultError) and e.transient:
            if self.since is None:
                self.since = self.clock()
                log.warning("Vault unavailable (%s); retrying with backoff, files are kept as "
                            "they are", e)
            else:
                log.debug("%s: still failing: %s", what, e)
        else:
            log.error("%s", e)

    def succeeded(self) -> None:
        if self.since is not None:
            log.info("Vault available again after %.0fs", self.clock() - self.since)
            self.since = None
