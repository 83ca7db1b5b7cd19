"""What the daemon tells the outside while it runs: the status file (status.py) and, with
--metrics-addr, the /metrics and /healthz endpoint (metrics.py, imported only then). Both are
built from the ledger after each wake-up, and cost nothing when nothing changed."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..errors import ConfigError, RconfdError
from .timers import STATUS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..ledger import Ledger
    from ..settings import Settings
    from .timers import Timers

log = logging.getLogger(__name__)


class Reporting:
    def __init__(self, ledger: Ledger, settings: Settings, timers: Timers,
                 clock: Callable[[], float], outage_since: Callable[[], float | None]):
        self.ledger = ledger
        self.settings = settings
        self.timers = timers
        self.clock = clock
        self.outage_since = outage_since
        self.reporter = None  # status.Reporter: the status file and the metrics' snapshot
        self.exporter = None  # metrics.Exporter (--metrics-addr)

    def start(self) -> None:
        """The status file and, with --metrics-addr, the HTTP endpoint. A port that cannot be
        bound is a config error (exit 2)."""
        s = self.settings
        if s.status_file is None and s.metrics_addr is None:
            return
        from ..status import Reporter

        publish = None
        if s.metrics_addr is not None:
            try:
                from ..metrics import Exporter
            except ImportError as e:
                raise ConfigError(f"--metrics-addr needs prometheus_client (pip install "
                                  f"'rconfd-py[metrics]'): {e}") from None
            self.exporter = Exporter(s.metrics_addr, self.clock)
            publish = self.exporter.publish
            log.info("metrics: serving /metrics and /healthz on %s:%d",
                     self.exporter.server.server_address[0], self.exporter.port)
        self.reporter = Reporter(self.ledger, s.status_file, self.clock, self.outage_since,
                                 publish)
        self.report()

    def stop(self) -> None:
        """No daemon, no status: the file goes, the endpoint closes."""
        if self.exporter is not None:
            self.exporter.close()
            self.exporter = None
        if self.reporter is not None:
            self.reporter.remove()
            self.reporter = None

    def report(self, _=None) -> None:
        """After each wake-up: publish what changed. A failure here is logged; it never stops
        the daemon."""
        if self.reporter is None:
            return
        try:
            again = self.reporter.update()
        except Exception as e:
            if isinstance(e, RconfdError):
                log.error("%s", e)
            else:
                log.error("internal error in reporting: %s: %s", type(e).__name__, e)
                log.debug("traceback", exc_info=True)
            return
        if again is not None and STATUS not in self.timers:
            self.timers.set(STATUS, again)
