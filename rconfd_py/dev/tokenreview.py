"""In-process stand-in for the Kubernetes TokenReview API (no API server can run in tests).

``POST /apis/authentication.k8s.io/v1/tokenreviews`` answers ``authenticated: true`` for any
token; the service-account identity comes from the (unverified) JWT claims, falling back to
the defaults. OpenBao's kubernetes auth compares that user with the JWT's own claims, so a
token from :func:`rconfd_py.dev.jwt.k8s_claims` always matches.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .jwt import K8S_NAMESPACE, K8S_SA, K8S_UID
from .procs import LOCALHOST


def unverified_claims(token: str) -> dict[str, Any]:
    """Payload of a compact JWT without checking the signature ({} if not a JWT)."""
    try:
        part = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def review(spec: dict[str, Any], defaults: tuple[str, str, str]) -> dict[str, Any]:
    """TokenReview response body for a request ``spec`` (namespace, sa, uid defaults)."""
    claims = unverified_claims(str(spec.get("token", "")))
    k8s = claims.get("kubernetes.io") or {}
    sa_obj = k8s.get("serviceaccount") or {}
    ns = k8s.get("namespace") or claims.get("kubernetes.io/serviceaccount/namespace") or defaults[0]
    sa = sa_obj.get("name") or claims.get("kubernetes.io/serviceaccount/service-account.name")
    uid = sa_obj.get("uid") or claims.get("kubernetes.io/serviceaccount/service-account.uid")
    sa, uid = sa or defaults[1], uid or defaults[2]
    return {
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "spec": spec,
        "status": {
            "authenticated": True,
            "audiences": spec.get("audiences") or [],
            "user": {
                "username": f"system:serviceaccount:{ns}:{sa}",
                "uid": uid,
                "groups": [
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{ns}",
                    "system:authenticated",
                ],
            },
        },
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        spec = body.get("spec") if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            self._send(400, b'{"kind":"Status","status":"Failure","reason":"BadRequest"}')
            return
        with self.server.lock:
            self.server.reviews += 1
        self._send(201, json.dumps(review(spec, self.server.defaults)).encode())

    def do_GET(self) -> None:  # readiness probe
        self._send(200, b"ok\n", "text/plain")

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], defaults: tuple[str, str, str]) -> None:
        super().__init__(addr, _Handler)
        self.defaults = defaults
        self.reviews = 0
        self.lock = threading.Lock()


@dataclass
class TokenReviewStub:
    """A running stub; ``url`` is the ``kubernetes_host`` to configure in Vault."""

    url: str
    port: int
    _server: _Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def reviews(self) -> int:
        """Number of TokenReview requests answered so far."""
        return self._server.reviews

    def stop(self) -> None:
        """Shut the server down and close its socket."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()


def start(
    port: int = 0,
    *,
    namespace: str = K8S_NAMESPACE,
    service_account: str = K8S_SA,
    uid: str = K8S_UID,
) -> TokenReviewStub:
    """Serve the stub on 127.0.0.1:``port`` (0 = any free port) from a daemon thread."""
    server = _Server((LOCALHOST, port), (namespace, service_account, uid))
    real_port = int(server.server_address[1])
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        name="k8s-tokenreview-stub",
        daemon=True,
    )
    thread.start()
    return TokenReviewStub(f"http://{LOCALHOST}:{real_port}", real_port, server, thread)
