"""--metrics-addr: /metrics (Prometheus text format, prometheus_client) and /healthz, imported
only when the flag is set.

Threads: the daemon loop stays single-threaded; the HTTP server runs in prometheus_client's
kind of server (a ThreadingWSGIServer on daemon threads). The two share one thing: `snapshot`,
a status document (status.build, made of the ledger) that the loop builds anew after each
wake-up and publishes by one reference assignment. The server only reads that reference, once
per request, and never touches the ledger: no dict is ever read while the loop mutates it, and
no lock is needed. Times left are computed at each request, so /healthz turns 503 when a
credential expires even while the loop is blocked on a frozen Vault.
"""

from __future__ import annotations

import signal
import socket
import threading
from wsgiref.simple_server import WSGIRequestHandler

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.exposition import ThreadingWSGIServer

from . import status
from .errors import ConfigError
from .ledger import LATENCY_BUCKETS


def parse_addr(text: str) -> tuple[str, int]:
    """HOST:PORT, [V6]:PORT, or a bare PORT (127.0.0.1)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host = "127.0.0.1"
    host = host.strip("[]") if host.startswith("[") else host
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not host or not 0 <= number <= 65535:
        raise ConfigError(f"--metrics-addr {text!r}: expected HOST:PORT or PORT")
    return host, number


class Exporter:
    """The endpoint; `publish(doc)` hands it the loop's latest document."""

    def __init__(self, addr: str, clock):
        self.clock = clock
        self.snapshot: dict | None = None
        host, port = parse_addr(addr)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self))
        self._metrics = make_wsgi_app(registry)

        class Server(ThreadingWSGIServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        try:
            self.server = Server((host, port), _QuietHandler)
        except OSError as e:
            raise ConfigError(f"--metrics-addr {addr}: {e.strerror}") from None
        self.server.set_app(self._app)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self._serve, name="metrics", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        # the daemon's signals go to the loop's thread, whose select() and Vault requests they
        # interrupt; the request threads inherit this mask
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
        self.server.serve_forever()

    def publish(self, doc: dict) -> None:
        self.snapshot = doc  # one reference assignment: the server sees the old or the new

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _app(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            doc = self.snapshot
            ok = doc is not None and status.healthy(doc, self.clock())
            body = b"ok\n" if ok else (b"not ready\n" if doc is None or not doc["ready"]
                                       else b"expired\n")
            start_response("200 OK" if ok else "503 Service Unavailable",
                           [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
            return [body]
        if path == "/metrics":
            return self._metrics(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"/metrics or /healthz\n"]


class _QuietHandler(WSGIRequestHandler):
    timeout = 10  # a client that never finishes its request does not hold a thread for ever

    def log_message(self, format, *args):  # no access log on stderr
        pass


class _Collector:
    def __init__(self, exporter: Exporter):
        self.exporter = exporter

    def collect(self):
        doc = self.exporter.snapshot  # read once: the loop never mutates a published document
        ready = GaugeMetricFamily("rconfd_ready", "1 once the first render is done")
        ready.add_metric([], 1.0 if doc is not None and doc["ready"] else 0.0)
        yield ready
        if doc is None:
            return
        now = self.exporter.clock()
        expiry = GaugeMetricFamily("rconfd_expiry_timestamp_seconds",
                                   "When each token and secret held expires (unix time)",
                                   labels=["path", "role", "kind"])
        failing = GaugeMetricFamily("rconfd_failing", "1 while the last attempt at its next "
                                    "action failed", labels=["path", "role", "kind"])
        for e in (*doc["tokens"], *doc["secrets"]):
            labels = [e["path"], e["role"], e["kind"]]
            if e["expires_at"] is not None:
                expiry.add_metric(labels, e["expires_at"])
            failing.add_metric(labels, 1.0 if e["error"] else 0.0)
        yield expiry
        yield failing
        expired = GaugeMetricFamily("rconfd_expired", "Tokens, secrets and templates whose "
                                    "expiry has passed")
        expired.add_metric([], float(len(status.expired(doc, now))))
        yield expired
        families = {what: CounterMetricFamily(f"rconfd_{name}", f"Daemon {name} by result",
                                              labels=["result"])
                    for what, name in (("renewal", "renewals"), ("refetch", "refetches"),
                                       ("login", "logins"))}
        for c in doc["counts"]:
            if c["what"] in families:
                families[c["what"]].add_metric([c["result"]], c["n"])
        yield from families.values()
        rendered = GaugeMetricFamily("rconfd_last_render_timestamp_seconds",
                                     "The last successful render and write of each template",
                                     labels=["template"])
        failures = CounterMetricFamily("rconfd_template_failures",
                                       "Render and write failures of each template",
                                       labels=["template", "stage"])
        for t in doc["templates"]:
            if t["rendered_at"] is not None:
                rendered.add_metric([t["template"]], t["rendered_at"])
            for stage, n in t["failed_total"].items():
                failures.add_metric([t["template"], stage], n)
        yield rendered
        yield failures
        latency = HistogramMetricFamily("rconfd_vault_request_duration_seconds",
                                        "Latency of the daemon's Vault requests",
                                        labels=["operation"])
        for op, h in doc["latency"].items():
            total, buckets = 0, []
            for bound, n in zip((*LATENCY_BUCKETS, float("inf")), h[:-1]):
                total += n
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), total))
            latency.add_metric([op], buckets, h[-1])
        yield latency
