"""The HTTP transport to Vault, on the standard library's http.client (no HTTP parsed by hand).

What it adds to http.client:
- one deadline per request: `timeout` bounds the connect, the TLS handshake, the send and the
  complete answer (redirects included); before every read the socket timeout is set to the time
  left, so a server dripping one byte a second fails at the deadline;
- patience: a request sent whose answer has not begun by the deadline asks the caller's
  `patience` whether to wait longer (the daemon probes whether Vault answers at all: a frozen
  server processes the request when it wakes, and one given up on fails there then); an answer
  that begins that late gets the request's timeout again for the rest of it;
- interim 1xx answers are all skipped (http.client skips only 100 Continue);
- a truncated body (chunked or Content-Length), an answer larger than MAX_BODY, headers that
  never end: TransportError (no complete answer, transient for the caller);
- 307/308 redirects (301/302/303 only for GET/HEAD) followed at most MAX_REDIRECTS times, keeping
  the method, the body and the headers (X-Vault-Token included: a Vault standby redirects to the
  active node's api_addr, and the token is what the request needs there), never from https to
  http;
- after a kept-alive connection the server had dropped, a request is sent again only when the
  caller says it is safe to repeat (`idempotent`): a request that mints (a login, pki/issue,
  database/creds) may have been done by the server, sending it again would mint twice;
- the commit (`commit`, for a request with a body): the headers go with `Expect: 100-continue`
  and the body is held until Vault's `100 Continue` shows it is reading this request now; then
  `commit()` decides whether it is still worth sending (a renewal whose lease ended while the
  server was frozen is not: sent, it would fail there). A body never sent is a request Vault
  never saw (OpenBao audits nothing of it). Until a 100 has been seen on this client, the body
  goes after EXPECT_WAIT without one, if commit() agrees (RFC 9110 15.2.1: a proxy may not
  pass it on); FALLBACKS requests in a row whose body went so, or a 417, end the commit on
  this client. A wait given up with the body held, while the patience heard Vault answer
  (`heard`), leaves the 100 to be proven again.

Cost (README, "Dependencies"): http.client imports ssl and email; measured on a one-shot run.
One persistent connection per thread and per origin (the engine fetches from a few threads).
"""

from __future__ import annotations

import http.client
import io
import os
import select
import socket
import ssl  # http.client imports it anyway
import threading
import time
from collections import namedtuple
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .proxy import Proxies

MAX_BODY = 64 * 1024 * 1024
MAX_REDIRECTS = 3
REDIRECTS = (301, 302, 303, 307, 308)
EXPECT_WAIT = 1.0  # s: the wait for a 100 Continue before the body goes anyway, until one came
FALLBACKS = 3  # requests in a row whose body went without a 100 before the commit is given up


class TransportError(Exception):
    """No (complete) answer: connection refused or reset, timeout, TLS failure, cut short.
    `unsent`: the body was held back (the commit), so Vault never saw the request; `withheld`:
    held back because `commit()` said so (Vault had asked for it)."""

    def __init__(self, message: str, timeout: bool = False, unsent: bool = False,
                 withheld: bool = False):
        super().__init__(message)
        self.timeout, self.unsent, self.withheld = timeout, unsent or withheld, withheld


class _Withheld(Exception):
    """Vault asked for the body (100 Continue) and commit() said it is no longer worth it."""


Response = namedtuple("Response", "status reason body")


class _Deadline(io.RawIOBase):
    """The socket's reads (through http.client's own socket file, which keeps the descriptor
    open until the answer is read even when the connection object is closed), each with the
    socket timeout set to the time left."""

    def __init__(self, sock, raw, conn):
        self._sock, self._raw, self._conn = sock, raw, conn

    def readable(self):
        return True

    def readinto(self, b):
        if self._conn.sent and not self._conn.got and (
                self._conn.ask.patience is not None or self._conn.held is not None):
            n = self._await_answer(b)
            if n is not None:
                self._conn.got += n
                return n
        left = self._conn.ask.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline")
        self._sock.settimeout(left)
        n = self._raw.readinto(b)
        self._conn.got += n or 0
        return n

    def _await_answer(self, b):
        """The first bytes of the answer, read into `b` (their count; 0: closed), once they
        come; None if the deadline passed and `patience` (asked each time it passes) gave no
        more time (the read then times out at once), or if TLS holds bytes already decrypted
        (read as usual). The socket is polled, then read without blocking: a read that timed
        out cannot be tried again (socket.SocketIO), and a TLS socket polls readable for
        records that carry no answer (TLS 1.3 session tickets). An answer that begins after
        the request's first deadline gets its own timeout again for the rest of it. A body
        held for a 100 Continue not yet seen on this client goes at `conn.hold_until`."""
        conn, sock, poll = self._conn, self._sock, select.poll()
        poll.register(sock, select.POLLIN)
        late = False
        while not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
            wake = conn.ask.deadline
            fallback = conn.held is not None and conn.hold_until is not None \
                and conn.hold_until < wake  # never at the deadline: the patience decides then
            if fallback:
                wake = conn.hold_until
            left = wake - time.monotonic()
            n = self._now(sock, b) if poll.poll(max(left, 0.0) * 1000) else None
            if n is None and fallback and time.monotonic() >= wake:
                # no 100 yet: perhaps a proxy that does not pass it on
                if not conn.ask.commit():
                    raise _Withheld()
                conn.send_held(continued=False)
                continue
            if n is None and time.monotonic() >= conn.ask.deadline:
                late = True
                more = conn.ask.patience() if conn.ask.patience is not None else 0.0
                if more <= 0:  # one last look: an answer that came during the probe is taken
                    n = self._now(sock, b) if poll.poll(0) else None
                    if n is None:
                        return None
                else:
                    conn.ask.deadline = time.monotonic() + more
            if n is not None:
                if late:
                    conn.ask.deadline = max(conn.ask.deadline,
                                            time.monotonic() + conn.ask.timeout)
                return n
        return None

    @staticmethod
    def _now(sock, b):
        """What the socket holds now, without waiting (None: nothing of the answer yet)."""
        sock.settimeout(0)
        try:
            return sock.recv_into(b)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return None

    def close(self):
        if not self.closed:
            self._raw.close()
        super().close()


class _Response(http.client.HTTPResponse):
    def __init__(self, sock, conn, debuglevel=0, method=None, url=None):
        super().__init__(sock, debuglevel, method, url)
        self._conn = conn
        # read under the deadline, through the same socket file (unbuffered, nothing read yet)
        self.fp = io.BufferedReader(_Deadline(sock, self.fp.detach(), conn))

    def _read_status(self):
        conn = self._conn
        while True:  # every interim 1xx but 101; a 100 Continue lets a held body go
            version, status, reason = super()._read_status()
            if not 100 <= status < 200 or status == 101:
                return version, status, reason
            http.client._read_headers(self.fp)
            if status == 100 and conn.held is not None:  # (one after the body proves nothing)
                conn.client.expect, conn.client.fallbacks = True, 0
                if not conn.ask.commit():
                    raise _Withheld()
                conn.send_held(continued=True)
                conn.got = 0  # the answer gets the patience again


def _response_class(conn):
    return lambda sock, **kw: _Response(sock, conn, **kw)


class _Ask:
    """One request across its hops (redirects, a resend on a fresh connection): its deadline,
    moved on by its patience (HTTPClient.patience's callable, or None); its commit (None: the
    body goes with the headers); whether its body left on some hop (`bodied`: then no failure
    of it is "not sent")."""

    __slots__ = ("bodied", "commit", "deadline", "patience", "timeout")

    def __init__(self, timeout: float, patience: Callable[[], float] | None,
                 commit: Callable[[], bool] | None = None):
        self.timeout, self.patience, self.commit = timeout, patience, commit
        self.deadline = time.monotonic() + timeout
        self.bodied = False


class _Holding:
    """A connection's side of the commit: the body held until a 100 Continue (or hold_until),
    and whether the request asked for one."""

    client: HTTPClient
    held: bytes | None = None  # the body not sent yet
    hold_until: float | None = None  # when it goes without a 100 (None: only on a 100)
    expecting = False  # the request went with Expect: 100-continue
    continued: bool | None = None  # its body went on Vault's 100 (True) or without one (False)

    def hold(self, body: bytes | None, until: float | None) -> None:
        self.held, self.hold_until = body, until
        self.expecting, self.continued = body is not None, None

    def send_held(self, continued: bool) -> None:
        body, self.held, self.continued = self.held, None, continued
        self.ask.bodied = True
        left = self.ask.deadline - time.monotonic()
        self.sock.settimeout(max(left, 1e-3))
        self.sock.sendall(body)


class _HTTP(_Holding, http.client.HTTPConnection):
    ask: _Ask
    got = 0  # bytes of the current answer received
    sent = False  # the request is sent: Vault's answer is read (not a proxy's to CONNECT)
    proxy = None  # the Proxy this connection goes to (absolute-URI requests), or None
    through = True  # False while connecting to the proxy (its failures name it)

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.response_class = _response_class(self)


class _HTTPS(_Holding, http.client.HTTPSConnection):
    ask: _Ask
    got = 0
    sent = False
    proxy = None  # the Proxy this connection tunnels through (CONNECT), or None
    through = True

    def __init__(self, *a, server_name: str | None = None, **kw):
        super().__init__(*a, **kw)
        self.response_class = _response_class(self)
        self.server_name = server_name

    def connect(self):
        http.client.HTTPConnection.connect(self)  # through a proxy: connect, then CONNECT
        self.through = True
        # the handshake gets what the connect left of the deadline, not a whole timeout again
        self.sock.settimeout(max(self.ask.deadline - time.monotonic(), 1e-3))
        # the name checked is Vault's (the tunnel's end), never the proxy's
        self.sock = self._context.wrap_socket(
            self.sock, server_hostname=self.server_name or self._tunnel_host or self.host)


class _Stale(Exception):
    """A kept-alive connection closed by the server before any answer."""


class HTTPClient:
    def __init__(self, base_url: str, *, timeout: float = 10.0,
                 headers: dict[str, str] | None = None, context: ssl.SSLContext | None = None,
                 server_name: str | None = None, proxies: Proxies | None = None):
        """`proxies`: which proxy each origin goes through (proxy.py; None: none)."""
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"unsupported URL {base_url!r} (expected http:// or https://)")
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.headers = {"Accept": "application/json", **(headers or {})}
        self._server_name = server_name
        self._proxies = proxies
        self._ssl = context
        self._lock = threading.Lock()
        self._local = threading.local()
        # called once per request: a callable asked each time the request's deadline passes
        # before its answer began, returning how many seconds more to wait (<= 0: no more)
        self.patience: Callable[[], Callable[[], float]] | None = None
        # the commit on this client: None until Vault's first 100 Continue (a held body goes
        # after EXPECT_WAIT without one), True since, False after FALLBACKS requests in a row
        # whose body went without one (a path that passes none on before the body), or a 417
        self.expect: bool | None = None
        self.fallbacks = 0  # requests in a row whose body went without a 100

    def sibling(self) -> HTTPClient:
        """A client with the same settings and connections of its own (a probe sent while a
        request of this one waits)."""
        return HTTPClient(self.base, timeout=self.timeout, headers=self.headers,
                          context=self._ssl, server_name=self._server_name,
                          proxies=self._proxies)

    def _context(self) -> ssl.SSLContext:
        """The TLS context given; for an http:// Vault redirected to https, the system's."""
        with self._lock:
            if self._ssl is None:
                self._ssl = tls_context()
            return self._ssl

    def _conns(self) -> dict:
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        return conns

    def close(self) -> None:
        """Close this thread's connections."""
        for conn in self._conns().values():
            conn.close()
        self._conns().clear()

    def _conn(self, scheme: str, host: str, port: int | None):
        key = (scheme, host, port)
        conn = self._conns().get(key)
        if conn is None:
            # a redirect's target is judged again: NO_PROXY may name it
            proxy = self._proxies.for_url(scheme, host, port) if self._proxies else None
            if scheme == "https":
                conn = _HTTPS(proxy.host if proxy else host, proxy.port if proxy else port,
                              context=self._context(), server_name=self._server_name)
                if proxy:
                    conn.set_tunnel(host, port or 443, headers={
                        "Proxy-Authorization": proxy.authorization} if proxy.authorization
                        else None)
            else:
                conn = _HTTP(proxy.host, proxy.port) if proxy else _HTTP(host, port)
            conn.proxy = proxy
            self._conns()[key] = conn
        return conn

    def request(self, method: str, path: str, *, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float | None = None,
                idempotent: bool = False, commit: Callable[[], bool] | None = None
                ) -> Response:
        """`commit`: hold the body until Vault asks for it, then send it only if `commit()`
        (module docstring); TransportError(withheld) if not."""
        ask = _Ask(self.timeout if timeout is None else timeout,
                   self.patience() if self.patience is not None else None,
                   commit if body is not None else None)
        hdrs = {**self.headers, **(headers or {})}
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        url = self.base + path
        for _ in range(MAX_REDIRECTS + 1):
            resp, location = self._once(method, url, body, hdrs, ask, idempotent)
            if location is None:
                return resp
            try:
                new = urljoin(url, location)
                urlsplit(new).port  # noqa: B018 - a port that is not a number raises here
            except ValueError:
                raise TransportError(f"redirect to an invalid URL {location!r}") from None
            if urlsplit(new).scheme not in ("http", "https"):
                raise TransportError(f"redirect to an unsupported URL {location!r}")
            if urlsplit(url).scheme == "https" and urlsplit(new).scheme != "https":
                raise TransportError(f"refused a redirect from https to {location!r}")
            url = new
        raise TransportError(f"more than {MAX_REDIRECTS} redirects")

    def _once(self, method, url, body, headers, ask, idempotent):
        u = urlsplit(url)
        target = (u.path or "/") + (f"?{u.query}" if u.query else "")
        try:
            return self._exchange(u, method, target, body, headers, ask)
        except _Stale:
            if not idempotent:
                raise TransportError("connection closed by the server before an answer (not "
                                     "sent again: the request is not safe to repeat)") from None
            # nothing was answered on a connection the server had closed: send again, fresh
            try:
                return self._exchange(u, method, target, body, headers, ask)
            except _Stale:
                raise TransportError("connection closed by the server") from None

    def _exchange(self, u, method, target, body, headers, ask):
        target0, headers0 = target, headers
        conn = self._conn(u.scheme, u.hostname, u.port)
        conn.ask, conn.got, conn.sent, conn.continued = ask, 0, False, None
        reused = conn.sock is not None
        plain_proxy = conn.proxy is not None and u.scheme == "http"
        if plain_proxy:  # an absolute URI to the proxy, its credentials on every request
            target = f"http://{u.netloc.rpartition('@')[2]}{target}"
            if conn.proxy.authorization:
                headers = {**headers, "Proxy-Authorization": conn.proxy.authorization}
        try:
            left = ask.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if not reused:
                conn.timeout = left  # connect (and CONNECT through a proxy), the TLS handshake
                conn.through = conn.proxy is None
                conn.connect()
                conn.through = True
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                left = ask.deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
            # Vault's answer from here on (not a proxy's answer to CONNECT), with patience
            conn.got, conn.sent = 0, True
            conn.sock.settimeout(left)  # the send (sendall's timeout is for the whole send)
            conn.client = self
            if ask.commit is not None and self.expect is not False:
                headers = {**headers, "Expect": "100-continue",
                           "Content-Length": str(len(body))}
                conn.hold(body, None if self.expect else
                          min(ask.deadline, time.monotonic() + EXPECT_WAIT))
                conn.request(method, target, body=None, headers=headers)
            else:
                conn.hold(None, None)
                ask.bodied = ask.bodied or body is not None
                conn.request(method, target, body=body, headers=headers)
            resp = conn.getresponse()
            # answered before the body it awaits: the body must never follow on this connection
            resp.will_close = resp.will_close or conn.held is not None
            if conn.expecting and resp.status == 417 and conn.held is not None:
                _read_body(resp)  # Expectation Failed: no commit on this client from now on
                conn.close()
                self.expect = False
                return self._exchange(u, method, target0, body, headers0, ask)
            if conn.continued is False and self.expect is None:
                self.fallbacks += 1  # its body went without a 100 (one may come after it)
                if self.fallbacks >= FALLBACKS:
                    self.expect = False
            if plain_proxy and _from_proxy(resp):
                _read_body(resp)
                conn.close()
                raise TransportError(f"proxy {conn.proxy.name} answered HTTP {resp.status} "
                                     f"{resp.reason}".rstrip())
            if resp.status in REDIRECTS and resp.getheader("Location") and (
                    resp.status in (307, 308) or method in ("GET", "HEAD")):
                location = resp.getheader("Location")
                _read_body(resp)
                if resp.will_close:
                    conn.close()
                return None, location
            data = _read_body(resp)
            if resp.will_close:
                conn.close()
            return Response(resp.status, resp.reason, data), None
        except TransportError:
            raise
        except _Withheld:
            conn.close()
            if ask.bodied:  # a copy went on an earlier hop: in doubt
                raise TransportError("timed out (not sent again: no longer worth it)",
                                     timeout=True) from None
            raise TransportError("not sent: no longer worth it when Vault asked for it",
                                 withheld=True) from None
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                ssl.SSLEOFError) as e:
            conn.close()
            if not conn.through:
                raise TransportError(_via(conn, e, u)) from None
            if reused and not (conn.got or conn.continued):  # before a byte of the answer
                raise _Stale() from None
            if u.scheme == "https" and not (conn.got or conn.continued):
                # TLS 1.3: a server refuses the client's certificate after the client has
                # finished the handshake; its alert is often lost to the reset that follows
                raise TransportError(
                    "TLS: Vault closed the connection after the handshake, before any answer "
                    "(client certificate refused? --client-cert/VAULT_CLIENT_CERT, "
                    "--client-key/VAULT_CLIENT_KEY)") from None
            raise TransportError(_text(e)) from None
        except TimeoutError:
            conn.close()
            if conn.held is not None and conn.sent and not ask.bodied:
                if self.expect and getattr(ask.patience, "heard", True):
                    self.expect = None  # Vault answers, yet asked for no body: prove it again
                raise TransportError("timed out before Vault asked for the body (not sent)",
                                     timeout=True, unsent=True) from None
            raise TransportError("timed out" if conn.through else
                                 f"proxy {conn.proxy.name}: timed out", timeout=True) from None
        except http.client.IncompleteRead:
            conn.close()
            raise TransportError("answer cut short") from None
        except (OSError, ValueError, http.client.HTTPException) as e:
            conn.close()
            raise TransportError(_text(e) if conn.through else _via(conn, e, u)) from None


def _from_proxy(resp) -> bool:
    """An answer of the proxy itself, not Vault's (whose errors are all JSON): it asks for
    credentials, or it could not or would not forward the request."""
    if resp.status == 407:
        return True
    kind = (resp.getheader("Content-Type") or "").lower()
    return resp.status >= 400 and "json" not in kind


def _via(conn, e: BaseException, u) -> str:
    """A failure before the proxy put us through, naming the proxy (never its credentials)."""
    text = _text(e)
    if text.startswith("Tunnel connection failed: "):  # http.client's CONNECT answer not 200
        return (f"proxy {conn.proxy.name} refused the tunnel to {u.hostname}:{u.port or 443}: "
                f"HTTP {text.partition(': ')[2]}")
    return f"proxy {conn.proxy.name}: {text}"


def _read_body(resp) -> bytes:
    if resp.length is not None:
        if resp.length > MAX_BODY:
            raise ValueError("answer too large")
        return resp.read()  # IncompleteRead when cut short
    data = resp.read(MAX_BODY + 1)  # chunked: IncompleteRead when cut short; or up to the close
    if len(data) > MAX_BODY:
        raise ValueError("answer too large")
    if not resp.isclosed():
        data += resp.read(1)
        if not resp.isclosed():
            raise ValueError("answer too large")
    return data


def _text(e: BaseException) -> str:
    if isinstance(e, ssl.SSLError):
        return tls_failure(e)
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


# OpenSSL's verify codes (X509_V_ERR_*)
_UNKNOWN_CA = (2, 18, 19, 20, 21, 27)
_EXPIRED, _NOT_YET_VALID, _HOSTNAME = 10, 9, (62, 64)  # 64: an IP address
# alerts a server sends when it refuses the client's certificate (or its absence)
_CLIENT_REFUSED = ("CERTIFICATE_REQUIRED", "BAD_CERTIFICATE", "UNKNOWN_CA",
                   "CERTIFICATE_UNKNOWN", "UNSUPPORTED_CERTIFICATE", "HANDSHAKE_FAILURE",
                   "CERTIFICATE_EXPIRED", "CERTIFICATE_REVOKED", "ACCESS_DENIED")


def tls_failure(e: ssl.SSLError) -> str:
    """Which TLS failure it is, in one line."""
    if isinstance(e, ssl.SSLCertVerificationError):
        code = e.verify_code
        if code in _UNKNOWN_CA:
            return ("TLS: unknown certificate authority: Vault's certificate is not signed by a "
                    "trusted CA (-c/VAULT_CACERT, --capath/VAULT_CAPATH)")
        if code in _HOSTNAME:
            return (f"TLS: hostname mismatch: Vault's certificate is not valid for this name "
                    f"({e.verify_message}; --tls-server-name/VAULT_TLS_SERVER_NAME)")
        if code == _EXPIRED:
            return "TLS: Vault's certificate has expired"
        if code == _NOT_YET_VALID:
            return "TLS: Vault's certificate is not valid yet"
        return f"TLS: Vault's certificate was refused: {e.verify_message}"
    reason = (e.reason or "").upper()
    if "ALERT" in reason and any(a in reason for a in _CLIENT_REFUSED):
        return (f"TLS: client certificate refused by Vault ({e.reason}; "
                f"--client-cert/VAULT_CLIENT_CERT, --client-key/VAULT_CLIENT_KEY)")
    return f"TLS: {e.reason or e.strerror or e}"


def tls_context(*, cacert: str | None = None, capath: str | None = None,
                extra_ca: str | None = None, client_cert: str | None = None,
                client_key: str | None = None, skip_verify: bool = False) -> ssl.SSLContext:
    """The client TLS context as the Vault CLI builds it: an explicit CA file (else a CA
    directory) is the only trust anchor; otherwise the system store, plus `extra_ca` (the
    Kubernetes service-account CA, when the file exists). ValueError names the file at fault."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    what = cacert or capath or "the system CA store"
    try:
        if cacert:
            what = cacert
            ctx.load_verify_locations(cafile=cacert)
        elif capath:
            if not os.path.isdir(capath):
                raise ValueError(f"{capath}: not a directory")
            for name in sorted(os.listdir(capath)):
                what = os.path.join(capath, name)
                if os.path.isfile(what):
                    ctx.load_verify_locations(cafile=what)
        else:
            ctx.load_default_certs()
            if extra_ca and os.path.isfile(extra_ca):
                what = extra_ca
                ctx.load_verify_locations(cafile=extra_ca)
        if client_cert:
            what = f"{client_cert} / {client_key}"
            ctx.load_cert_chain(client_cert, client_key)
    except FileNotFoundError:
        raise ValueError(f"{what}: no such file") from None
    except (OSError, ssl.SSLError) as e:
        if isinstance(e, OSError) and not isinstance(e, ssl.SSLError):
            raise ValueError(f"{what}: {e.strerror or e}") from None
        raise ValueError(f"{what}: not a PEM certificate (or key) that can be used: "
                         f"{getattr(e, 'reason', None) or e}") from None
    return ctx
