"""Vault outages as the log tells them: one warning when the first transient failure starts
one, one line when Vault answers again; what is not transient is an error line each time.
And the knock: while Vault gives no answer at all, a request is sent only after an unaudited
probe (sys/health) is answered; and the patience (Wait): a request whose timeout passes without
an answer is kept waiting while such a probe gets no answer either."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..errors import RconfdError, VaultError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..vault.client import VaultClient

log = logging.getLogger(__name__)
MAX_KNOCKS = 3  # probes in a row without answer before a request goes anyway
SLACK = 0.1  # a request with less patience left than this (s) is not probed for: it ends
PAUSE = 1.0  # s: the least a request waits for its answer once Vault answered its probe


class Outage:
    def __init__(self, clock: Callable[[], float]):
        self.clock = clock
        self.since: float | None = None  # when the current outage started (status, metrics)
        self.silent = False  # the last failure got no answer at all: Vault down or frozen
        self.knocks = 0  # probes in a row that got no answer
        self.probe_error = ""  # the last probe's failure, for the entries it holds back

    def failed(self, what: str, e: RconfdError) -> None:
        if isinstance(e, VaultError) and e.withheld:  # Vault answered; no outage, no error
            self.silent = False
            log.info("%s: %s", what, e)
            return
        if isinstance(e, VaultError):
            self.silent = e.status == 0  # an HTTP answer, even an error, is not silence
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
        self.silent, self.knocks = False, 0
        if self.since is not None:
            log.info("Vault available again after %.0fs", self.clock() - self.since)
            self.since = None

    def knock(self, client: VaultClient, timeout: float) -> bool:
        """Before a request while Vault gives no answer: GET sys/health, which Vault never
        audits and which a frozen server may process late without harm. True: the probe got no
        answer within `timeout` either, hold the request back and knock again (at once: one
        probe is always waiting, so a server that wakes is seen at once), since each request
        sent would be one more queued at a frozen server, failing when it wakes ("context
        canceled", a renewal of a lease that died meanwhile). False: go ahead, when the server
        answers, and also when the probe failed otherwise (refused: nothing queues at a server
        that refuses, and the request's own retry rules race its expiry), or MAX_KNOCKS probes
        in a row timed out (a server that hangs on sys/health alone never blocks the rest)."""
        if not self.silent or self.knocks >= MAX_KNOCKS:
            self.knocks = 0
            return False
        try:
            client.answers(timeout)
        except VaultError as e:
            if e.timed_out:
                self.knocks += 1
                self.probe_error = str(e)
                log.debug("Vault still gives no answer: %s", e)
                return True
        except Exception as e:  # noqa: BLE001 - a probe must never stop the daemon
            log.debug("sys/health probe: %s: %s", type(e).__name__, e)
        self.knocks = 0
        return False

    def waiting(self, client: VaultClient, default: float, longest: float,
                silent: Callable[[str], None]) -> Callable[[], Wait]:
        """The patience of the requests sent meanwhile (VaultClient.patience): a Wait each,
        all of them ending `longest` seconds from now at the latest; `silent(why)` is told each
        time a probe gets no answer, so that status can show the wait."""
        until = time.monotonic() + longest
        return lambda: Wait(self, client.answers, default, until, silent)


class Wait:
    """One request's patience once its timeout passed before its answer began (vault/http.py
    asks it each time). A server that gives no answer at all may be frozen: the request is
    queued there and will be processed when it wakes, and if the client has gone by then it
    fails there ("context canceled"), while nothing else could be renewed meanwhile anyway. So
    it waits on, `default` seconds at a time, while a probe (sys/health, on a connection of its
    own, `default` seconds at most) gets no answer either, until `until` (time.monotonic) at
    the latest. A probe answered gives the request one more wait, once: `default` seconds when
    Vault had been silent (this request's probes, or the failure before it got none: the
    answer is queued behind at a server that just woke); otherwise twice as long as the probe
    took, at least PAUSE (Vault may have woken during the probe; if not, the node or backend
    holding the request is stuck alone, and that is all it costs). A probe that fails
    otherwise (refused: a server that restarted never answers the old connection) ends it."""

    # heard: Vault answered a probe of this wait (it got its one more wait; vault/http.py reads
    # it: a body still held then was not asked for by a server that answers)
    __slots__ = ("default", "heard", "outage", "probe", "silent", "tell", "until")

    def __init__(self, outage: Outage, probe: Callable[[float], None], default: float,
                 until: float, tell: Callable[[str], None] = lambda why: None):
        self.outage, self.probe, self.default, self.until = outage, probe, default, until
        self.tell = tell
        self.silent = self.heard = False

    def __call__(self) -> float:
        sent = time.monotonic()
        left = self.until - sent
        if left < SLACK or self.heard:
            return 0.0
        try:
            self.probe(min(self.default, left))
        except VaultError as e:
            if not e.timed_out:
                return 0.0
            self.silent = True
            log.debug("Vault still gives no answer (%s): waiting on", e)
            self.tell(str(e))
            return min(self.default, self.until - time.monotonic())
        except Exception as e:  # noqa: BLE001 - a probe must never stop the daemon
            log.debug("sys/health probe: %s: %s", type(e).__name__, e)
            return 0.0
        now = time.monotonic()
        self.heard = True
        more = self.default if self.silent or self.outage.silent else max(PAUSE, 2 * (now - sent))
        return min(self.default, more, self.until - now)
