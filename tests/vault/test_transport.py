"""The HTTP transport against a hostile local socket server: what no real server does on demand
(interim 1xx answers, truncated bodies, drip-feeding, headers that never end, oversized bodies,
redirect chains, kept-alive connections dropped between two requests)."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time

import pytest
from helpers import self_signed

from rconfd_py.dev.procs import wait_until
from rconfd_py.errors import VaultError
from rconfd_py.vault import http as transport
from rconfd_py.vault.client import VaultClient


class Raw:
    """A TCP server: `script(sock, n)` answers connection number n (0, 1, ...)."""

    def __init__(self, script, tls: ssl.SSLContext | None = None):
        self.script = script
        self.requests: list[tuple[str, str, dict, bytes]] = []
        self.connections = 0
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.tls = tls
        self.port = self.lsock.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://{'localhost' if tls else '127.0.0.1'}" \
                   f":{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                sock, _ = self.lsock.accept()
            except OSError:
                return
            n, self.connections = self.connections, self.connections + 1
            threading.Thread(target=self._run, args=(sock, n), daemon=True).start()

    def _run(self, sock, n):
        try:
            if self.tls:
                sock = self.tls.wrap_socket(sock, server_side=True)
            self.script(self, sock, n)
        except OSError:
            pass
        finally:
            sock.close()

    def read_request(self, sock):
        """One request off the socket, its body included (None when the client closed it)."""
        headers, body = read_head(sock)
        if not headers:
            return None
        method, path, _ = headers.pop("").split(" ")
        length = int(headers.get("content-length", 0))
        while len(body) < length and (got := sock.recv(65536)):
            body += got
        req = (method, path, headers, body)
        self.requests.append(req)
        return req

    def close(self):
        self.lsock.close()


def answer(obj, status="200 OK", extra=""):
    body = json.dumps(obj).encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@pytest.fixture
def raw():
    servers = []

    def make(script, tls=None):
        servers.append(Raw(script, tls))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


class Patience:
    """HTTPClient.patience: each request's wait past its deadline gets `more` seconds, at most
    `times` times."""

    def __init__(self, more: float, times: int = 100):
        self.more, self.times, self.asked = more, times, 0

    def __call__(self):
        def wait() -> float:
            self.asked += 1
            return self.more if self.asked <= self.times else 0.0
        return wait


def times_out(c: VaultClient, stop: threading.Event) -> tuple[float, VaultError]:
    """GET kv/data/x, which must time out: how long it took, and its error; then `stop` is
    set (the server's script ends)."""
    start = time.monotonic()
    try:
        with pytest.raises(VaultError, match="did not answer in time|timed out") as e:
            c.request("GET", "kv/data/x")
    finally:
        stop.set()
    assert e.value.timed_out, e.value  # a timeout that leaves the request in doubt
    return time.monotonic() - start, e.value


def echo_path(srv, sock, n):
    while (req := srv.read_request(sock)) is not None:
        sock.sendall(answer({"data": {"path": req[1], "n": n}}))


def test_interim_answers_are_skipped_and_the_connection_stays_in_step(raw):
    def script(srv, sock, n):
        while (req := srv.read_request(sock)) is not None:
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n"
                         b"HTTP/1.1 102 Processing\r\n\r\n"
                         b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n"
                         + answer({"data": {"path": req[1]}}))
    srv = raw(script)
    c = VaultClient(srv.url)
    assert c.request("POST", "auth/jwt/login", body={"jwt": "j"}) == \
        {"data": {"path": "/v1/auth/jwt/login"}}
    # the next answer is the next request's, on the same connection
    assert c.request("GET", "a")["data"]["path"] == "/v1/a"
    assert c.request("GET", "b")["data"]["path"] == "/v1/b"
    assert srv.connections == 1


@pytest.mark.parametrize("cut", [
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"dat\r\n",  # no last chunk
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n{\"data\": {}",  # chunk cut
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"data\": {}}",  # fewer bytes
], ids=["chunked-no-last-chunk", "chunked-mid-chunk", "content-length"])
def test_a_truncated_body_is_a_transient_transport_error(raw, cut):
    def script(srv, sock, n):
        srv.read_request(sock)
        sock.sendall(cut)
        sock.shutdown(socket.SHUT_WR)
    srv = raw(script)
    with pytest.raises(VaultError) as e:
        VaultClient(srv.url).request("GET", "kv/data/x")
    assert e.value.status == 0 and e.value.transient, str(e.value)
    assert "cut short" in str(e.value) and "not a JSON object" not in str(e.value)


@pytest.mark.parametrize("patient", [False, True], ids=["no-patience", "patience-not-asked"])
def test_a_server_dripping_bytes_fails_at_the_deadline(raw, patient):
    """With patience too: a server dripping its answer is not frozen (patience is asked only
    before the answer begins)."""
    stop = threading.Event()

    def script(srv, sock, n):
        srv.read_request(sock)
        data = answer({"data": {"x": "y" * 100}})
        for i in range(len(data)):
            if stop.wait(0.1):
                return
            sock.sendall(data[i:i + 1])
    srv = raw(script)
    c = VaultClient(srv.url, timeout=1.0)
    if patient:
        c.patience = patience = Patience(10.0)
    elapsed, e = times_out(c, stop)
    assert e.status == 0 and 0.9 < elapsed < 2.0, elapsed  # each read got bytes in time
    assert not patient or patience.asked == 0


def test_headers_that_never_end_are_refused(raw):
    stop = threading.Event()

    def script(srv, sock, n):
        srv.read_request(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\n")
        while not stop.is_set():
            sock.sendall(b"X-More: yes\r\n" * 50)
    srv = raw(script)
    try:
        with pytest.raises(VaultError) as e:
            VaultClient(srv.url, timeout=5).request("GET", "x")
    finally:
        stop.set()
    assert e.value.status == 0 and "headers" in str(e.value)


def test_an_oversized_body_is_refused(raw, monkeypatch):
    monkeypatch.setattr(transport, "MAX_BODY", 1000)

    def script(srv, sock, n):
        while srv.read_request(sock) is not None:
            if srv.requests[-1][1].endswith("chunked"):
                sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             + b"100\r\n" + b"x" * 256 + b"\r\n" * 1)
                for _ in range(5):
                    sock.sendall(b"100\r\n" + b"x" * 256 + b"\r\n")
                sock.sendall(b"0\r\n\r\n")
            else:
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n" + b"x" * 1001)
    srv = raw(script)
    for path in ("length", "chunked"):
        with pytest.raises(VaultError, match="answer too large") as e:
            VaultClient(srv.url).request("GET", path)
        assert e.value.status == 0


def test_a_307_chain_keeps_method_body_and_token(raw):
    def script(srv, sock, n):
        while (req := srv.read_request(sock)) is not None:
            hop = int(req[1].rsplit("/", 1)[1])
            if hop < 3:
                sock.sendall(f"HTTP/1.1 {307 if hop % 2 else 308} Redirect\r\n"
                             f"Location: /v1/hop/{hop + 1}\r\nContent-Length: 0\r\n\r\n".encode())
            else:
                sock.sendall(answer({"data": {"done": hop}}))
    srv = raw(script)
    c = VaultClient(srv.url)
    assert c.request("POST", "hop/0", token="t0k", body={"a": 1}) == {"data": {"done": 3}}
    assert [r[1] for r in srv.requests] == ["/v1/hop/0", "/v1/hop/1", "/v1/hop/2", "/v1/hop/3"]
    assert all(r[0] == "POST" and json.loads(r[3]) == {"a": 1}
               and r[2]["x-vault-token"] == "t0k" for r in srv.requests)


def test_a_fourth_redirect_is_refused_and_302_is_not_followed_for_post(raw):
    def script(srv, sock, n):
        while (req := srv.read_request(sock)) is not None:
            status = 302 if "found" in req[1] else 307
            sock.sendall(f"HTTP/1.1 {status} Redirect\r\nLocation: {req[1]}x\r\n"
                         f"Content-Length: 0\r\n\r\n".encode())
    srv = raw(script)
    with pytest.raises(VaultError, match="more than 3 redirects") as e:
        VaultClient(srv.url).request("GET", "loop")
    assert e.value.status == 0 and len(srv.requests) == 4
    with pytest.raises(VaultError, match="HTTP 302"):
        VaultClient(srv.url).request("POST", "found", body={})


@pytest.mark.parametrize("location", ["http://vault.example.com:8200x/v1/x", "http://[vault/v1/x"])
def test_a_redirect_to_an_invalid_url_is_a_transient_error(raw, location):
    """Not an internal error (a traceback, exit 1): a broken standby or proxy is an outage."""
    def script(srv, sock, n):
        while srv.read_request(sock) is not None:
            sock.sendall(f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\n"
                         f"Content-Length: 0\r\n\r\n".encode())
    srv = raw(script)
    with pytest.raises(VaultError, match="redirect to an invalid URL") as e:
        VaultClient(srv.url).request("GET", "x")
    assert e.value.transient


def test_a_redirect_to_another_server_is_followed(raw):
    target = raw(echo_path)

    def script(srv, sock, n):
        while (req := srv.read_request(sock)) is not None:
            sock.sendall(f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {target.url}{req[1]}\r\n"
                         f"Content-Length: 0\r\n\r\n".encode())
    standby = raw(script)
    c = VaultClient(standby.url)
    assert c.request("PUT", "sys/leases/renew", token="t", body={"lease_id": "l"})["data"][
        "path"] == "/v1/sys/leases/renew"
    assert target.requests[0][2]["x-vault-token"] == "t"


def test_a_redirect_from_https_to_http_is_refused(raw, tmp_path):
    plain = raw(echo_path)

    def script(srv, sock, n):
        while (req := srv.read_request(sock)) is not None:
            sock.sendall(f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {plain.url}{req[1]}\r\n"
                         f"Content-Length: 0\r\n\r\n".encode())
    srv = raw(script, tls=self_signed(tmp_path))
    c = VaultClient(srv.url, cacert=str(tmp_path / "cert.pem"))
    with pytest.raises(VaultError, match="refused a redirect from https") as e:
        c.request("GET", "kv/data/x", token="t0k")
    assert e.value.status == 0 and len(srv.requests) == 1 and plain.requests == []


def stale_after_first(srv, sock, n):
    """Connection 0 answers one request with keep-alive, then is closed by the server."""
    req = srv.read_request(sock)
    sock.sendall(answer({"data": {"path": req[1], "n": n}}))
    if n == 0:
        time.sleep(0.1)
        sock.shutdown(socket.SHUT_RDWR)
        return
    echo_path(srv, sock, n)


@pytest.mark.parametrize("method,path,resent", [
    ("PUT", "sys/leases/renew", True),
    ("POST", "auth/token/renew-self", True),
    ("GET", "kv/data/x", True),
    ("POST", "pki/issue/web", False),
    ("POST", "auth/jwt/login", False),
    ("GET", "database/creds/ro", False),  # a read that mints
])
def test_a_dropped_kept_alive_connection_resends_only_what_is_safe(raw, method, path, resent):
    srv = raw(stale_after_first)
    c = VaultClient(srv.url)
    assert c.request("GET", "first")["data"]["n"] == 0
    time.sleep(0.3)  # the server has closed connection 0
    if resent:
        assert c.request(method, path, body={} if method != "GET" else None)["data"] == \
            {"path": f"/v1/{path}", "n": 1}
    else:
        body = {} if method != "GET" else None
        with pytest.raises(VaultError, match="not safe to repeat") as e:
            c.request(method, path, body=body)
        assert e.value.status == 0 and e.value.transient
        assert srv.connections == 1  # never sent again
        # the caller may say it is safe
        assert c.request(method, path, body=body, idempotent=True)["data"]["path"] == \
            f"/v1/{path}"


def test_the_deadline_covers_the_connect_and_the_whole_request(raw):
    def script(srv, sock, n):
        srv.read_request(sock)
        time.sleep(0.6)
        sock.sendall(b"HTTP/1.1 200 OK\r\n")
        time.sleep(0.6)
        sock.sendall(b"Content-Length: 2\r\n\r\n{}")
    srv = raw(script)
    start = time.monotonic()
    with pytest.raises(VaultError, match="did not answer in time"):
        VaultClient(srv.url, timeout=1.0).request("GET", "x")  # each pause < 1 s, total > 1 s
    assert time.monotonic() - start < 1.5


def late(srv, sock, n):
    while (req := srv.read_request(sock)) is not None:
        time.sleep(0.8)  # a server frozen for a while: the request waits in it
        sock.sendall(answer({"data": {"path": req[1]}}))


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https-tls1.3"])
def test_patience_keeps_a_request_waiting_past_its_deadline_for_its_late_answer(raw, tmp_path,
                                                                                tls):
    """Over TLS 1.3 the server's session tickets make the socket readable before any answer:
    they must not end the wait."""
    context = None
    if tls:
        context = self_signed(tmp_path)
        context.minimum_version = ssl.TLSVersion.TLSv1_3  # and its session tickets
    srv = raw(late, tls=context)
    c = VaultClient(srv.url, timeout=0.5, cacert=str(tmp_path / "cert.pem") if tls else None)
    c.patience = patience = Patience(0.2)
    start = time.monotonic()
    assert c.request("PUT", "sys/leases/renew", body={"lease_id": "x"}) == \
        {"data": {"path": "/v1/sys/leases/renew"}}
    assert time.monotonic() - start >= 0.75 and patience.asked >= 2
    assert srv.connections == 1 and len(srv.requests) == 1  # one request, never sent again
    assert c.request("GET", "a")["data"]["path"] == "/v1/a"  # the connection still in step


def test_patience_that_gives_no_more_time_ends_the_request_at_its_deadline(raw):
    stop = threading.Event()

    def script(srv, sock, n):
        srv.read_request(sock)
        stop.wait(5)
    srv = raw(script)
    c = VaultClient(srv.url, timeout=0.3)
    c.patience = patience = Patience(0.2, times=1)
    elapsed, _ = times_out(c, stop)
    assert 0.45 < elapsed < 2.0  # 0.5 s: one more wait, not a second
    assert patience.asked == 2  # once more time, then none


@pytest.mark.parametrize("size", [1, 20000], ids=["one-read", "many-reads"])
def test_an_answer_that_came_during_the_last_probe_is_taken(raw, size):
    """Patience that gives no more time after a probe of its own: the answer that arrived
    meanwhile is read, all of it (a credential minted for nothing, a renewal in doubt
    otherwise), though the request's deadline has passed."""
    def script(srv, sock, n):
        srv.read_request(sock)
        time.sleep(0.5)
        data = answer({"data": {"v": "x" * size}})
        sock.sendall(data[:100])  # two sends, the body larger than one read
        time.sleep(0.05)
        sock.sendall(data[100:])
    srv = raw(script)
    c = VaultClient(srv.url, timeout=0.3)

    def probe_then_no_more():
        time.sleep(0.6)  # the probe: the answer comes meanwhile
        return 0.0
    c.patience = lambda: probe_then_no_more
    assert c.request("GET", "kv/data/x") == {"data": {"v": "x" * size}}


def test_a_redirect_after_a_patient_wait_keeps_the_time_it_was_given(raw):
    def script(srv, sock, n):
        while (req := srv.read_request(sock)) is not None:
            if req[1] == "/v1/a":
                time.sleep(0.8)
                sock.sendall(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /v1/b\r\n"
                             b"Content-Length: 0\r\n\r\n")
            else:
                sock.sendall(answer({"data": {"path": req[1]}}))
    srv = raw(script)
    c = VaultClient(srv.url, timeout=0.3)
    c.patience = Patience(0.3)
    assert c.request("GET", "a")["data"]["path"] == "/v1/b"


def test_a_proxy_slow_to_answer_connect_gets_no_patience(raw):
    """Patience is for Vault's answer to a request it holds; a proxy that does not answer
    CONNECT has queued nothing at Vault: it fails at the deadline."""
    stop = threading.Event()

    def script(srv, sock, n):
        srv.read_request(sock)
        stop.wait(5)
    proxy = raw(script)
    c = VaultClient("https://vault.example:8200", timeout=0.4,
                    proxy_env={"HTTPS_PROXY": proxy.url})
    c.patience = patience = Patience(0.3)
    elapsed, e = times_out(c, stop)
    assert "proxy" in str(e) and elapsed < 1.0 and patience.asked == 0
    assert proxy.requests[0][0] == "CONNECT"


# -- the commit: a body held until Vault asks for it (Expect: 100-continue) -----------------
def read_head(sock) -> tuple[dict, bytes]:
    """A request's head, without waiting for its body: its headers (its request line under
    ""; {} when the client closed the connection), and what came after."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        got = sock.recv(65536)
        if not got:
            return {}, b""
        buf += got
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    return {"": lines[0], **{k.strip().lower(): v.strip() for k, _, v in
                             (ln.partition(":") for ln in lines[1:])}}, rest


def read_rest(sock, rest: bytes, length: int, wait: float = 2.0) -> bytes:
    """The body after the head: what comes within `wait` s, up to `length` bytes (b"": the
    client closed the connection, or sent nothing)."""
    sock.settimeout(wait)
    try:
        while len(rest) < length and (got := sock.recv(65536)):
            rest += got
    except TimeoutError:
        pass
    return rest


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def server_got(got: list, wait: float = 5.0) -> list:
    """What the server's script recorded, once it did (the script runs on its own thread)."""
    wait_until(lambda: got, wait, what="the server's script")
    return got


BODY = {"lease_id": "database/creds/mydb/x", "increment": 60}


def renews(c: VaultClient, commit=lambda: True, **kw) -> dict:
    return c.request("PUT", "sys/leases/renew", body=BODY, commit=commit, **kw)


def test_a_held_body_goes_when_vault_asks_for_it(raw):
    seen = []

    def script(srv, sock, n):
        while (head := read_head(sock))[0]:
            headers, rest = head
            if headers.get("expect") == "100-continue":
                seen.append(rest)  # nothing of the body before the 100
                sock.sendall(CONTINUE)
            body = read_rest(sock, rest, int(headers["content-length"]))
            sock.sendall(answer({"data": {"body": json.loads(body)}}))
    srv = raw(script)
    c = VaultClient(srv.url, timeout=2.0)
    assert renews(c) == {"data": {"body": BODY}}
    assert seen == [b""] and c._http.expect is True
    assert renews(c) == {"data": {"body": BODY}}  # the connection stays in step
    assert seen == [b"", b""] and srv.connections == 1


def test_a_body_no_longer_worth_it_when_vault_asks_is_never_sent(raw):
    """A server frozen while the lease ran out: when it wakes and asks for the body, commit()
    says no. Vault gets nothing but the closed connection (OpenBao audits nothing of it)."""
    got = []

    def script(srv, sock, n):
        headers, rest = read_head(sock)
        time.sleep(0.5)  # frozen
        sock.sendall(CONTINUE)
        got.append(read_rest(sock, rest, int(headers["content-length"])))
    srv = raw(script)
    c = VaultClient(srv.url, timeout=2.0)
    c._http.expect = True
    asked = []
    with pytest.raises(VaultError, match="not sent") as e:
        renews(c, commit=lambda: asked.append(time.monotonic()) or False)
    assert e.value.withheld and not e.value.transient and not e.value.timed_out
    assert len(asked) == 1
    assert server_got(got) == [b""]


def test_without_a_100_the_body_goes_after_a_while_and_the_commit_ends(raw, monkeypatch):
    """A proxy that passes no 100 Continue on before the body (tinyproxy, an HTTP/1.0 server):
    until a 100 was seen on this client, the body goes after EXPECT_WAIT; FALLBACKS requests
    in a row so end the commit on this client (no more waits)."""
    monkeypatch.setattr(transport, "EXPECT_WAIT", 0.5)
    expects = []

    def script(srv, sock, n):
        while (head := read_head(sock))[0]:
            headers, rest = head
            expects.append(headers.get("expect"))
            read_rest(sock, rest, int(headers["content-length"]))
            if headers.get("expect"):
                sock.sendall(CONTINUE)  # a 100 after the body, as tinyproxy passes it on
            sock.sendall(answer({"data": {}}))
    srv = raw(script)
    c = VaultClient(srv.url, timeout=2.0)
    for _ in range(transport.FALLBACKS):
        start = time.monotonic()
        renews(c)
        assert 0.5 <= time.monotonic() - start < 2.0
    assert c._http.expect is False
    start = time.monotonic()
    renews(c)
    assert time.monotonic() - start < 0.5  # no wait for a 100 any more
    assert expects == ["100-continue"] * transport.FALLBACKS + [None]


def go_like(stalls: dict[int, float]):
    """OpenBao's net/http: the 100 when the handler reads the body; request i handled after
    `stalls[i]` s (a slow or frozen server); -1: never (frozen, the connection dropped)."""
    count = [0]

    def script(srv, sock, n):
        while (head := read_head(sock))[0]:
            headers, rest = head
            i, count[0] = count[0], count[0] + 1
            if stalls.get(i) == -1:
                time.sleep(3)
                return
            time.sleep(stalls.get(i, 0.0))
            if headers.get("expect"):
                sock.sendall(CONTINUE)
            read_rest(sock, rest, int(headers["content-length"]))
            sock.sendall(answer({"data": {"i": i, "expect": headers.get("expect")}}))
    return script


def test_a_server_once_slow_to_ask_for_the_body_keeps_the_commit(raw, monkeypatch):
    monkeypatch.setattr(transport, "EXPECT_WAIT", 0.2)
    srv = raw(go_like({0: 0.5}))
    c = VaultClient(srv.url, timeout=2.0)
    renews(c)  # the body went after EXPECT_WAIT, the 100 after it
    assert c._http.expect is None
    assert renews(c)["data"]["expect"] == "100-continue" and c._http.expect is True


def test_a_freeze_keeps_the_commit_proven(raw):
    """Proven, then frozen: a renewal given up with its body held while the probes got no
    answer (the patience did not hear Vault) keeps the commit: the next renewal still holds
    its body (a renewal that fell back to sending it would land after the lease's end)."""
    srv = raw(go_like({1: -1}))
    c = VaultClient(srv.url, timeout=0.3)
    renews(c)
    assert c._http.expect is True

    class Unheard:  # the patience: probes unanswered, then no more time
        heard = False

        def __call__(self):
            return 0.0
    c.patience = Unheard
    with pytest.raises(VaultError, match="not sent") as e:
        renews(c)
    assert not e.value.timed_out and c._http.expect is True
    Unheard.heard = True  # Vault answered the probe, yet asked for no body: prove it again
    srv2 = raw(go_like({0: -1}))
    c2 = VaultClient(srv2.url, timeout=0.3)
    c2._http.expect = True
    c2.patience = Unheard
    with pytest.raises(VaultError, match="not sent"):
        renews(c2)
    assert c2._http.expect is None


def test_a_fallback_asks_the_commit_first(raw, monkeypatch):
    """Unproven: the body would go after EXPECT_WAIT without a 100; if by then it is no longer
    worth it, it is withheld, not sent."""
    monkeypatch.setattr(transport, "EXPECT_WAIT", 0.2)
    got = []

    def script(srv, sock, n):
        _, rest = read_head(sock)
        got.append(read_rest(sock, rest, 1, wait=1.0))
    srv = raw(script)
    c = VaultClient(srv.url, timeout=2.0)
    with pytest.raises(VaultError, match="not sent") as e:
        renews(c, commit=lambda: False)
    assert e.value.withheld
    assert server_got(got) == [b""]


def test_expectation_failed_sends_the_request_again_without_the_commit(raw):
    expects = []

    def script(srv, sock, n):
        while (head := read_head(sock))[0]:
            headers, rest = head
            expects.append(headers.get("expect"))
            if headers.get("expect"):
                sock.sendall(b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n")
                continue
            read_rest(sock, rest, int(headers["content-length"]))
            sock.sendall(answer({"data": {"n": n}}))
    srv = raw(script)
    c = VaultClient(srv.url, timeout=2.0)
    assert renews(c) == {"data": {"n": 1}}  # on a fresh connection
    assert expects == ["100-continue", None] and c._http.expect is False


def test_an_answer_without_the_body_it_awaits_closes_the_connection(raw):
    """Vault answers (a 403, a standby's 307) before reading the body: the body must not go
    later on that connection, where it would be read as the next request."""
    after = []

    def script(srv, sock, n):
        while (head := read_head(sock))[0]:
            headers, rest = head
            if n == 0:
                sock.sendall(answer({"errors": ["permission denied"]}, "403 Forbidden"))
                after.append(read_rest(sock, rest, 1, wait=0.5))  # what came after
                continue
            sock.sendall(CONTINUE)
            read_rest(sock, rest, int(headers["content-length"]))
            sock.sendall(answer({"data": {"n": n}}))
    srv = raw(script)
    c = VaultClient(srv.url, timeout=2.0)
    c._http.expect = True
    with pytest.raises(VaultError, match="HTTP 403"):
        renews(c)
    assert renews(c) == {"data": {"n": 1}}  # on a second connection
    assert srv.connections == 2 and server_got(after) == [b""]  # the first got no body


def test_a_wait_given_up_with_the_body_held_leaves_nothing_in_doubt(raw):
    """Patience ends before the frozen server asked for the body: nothing was sent, so the
    request is not in doubt (a timeout, but not a timed_out one), and the commit is to be
    proven again on this client."""
    stop = threading.Event()
    got = []

    def script(srv, sock, n):
        _, rest = read_head(sock)
        stop.wait(5)
        got.append(read_rest(sock, rest, 1, wait=0.2))
    srv = raw(script)
    c = VaultClient(srv.url, timeout=0.3)
    c._http.expect = True
    c.patience = Patience(0.2, times=1)
    start = time.monotonic()
    try:
        with pytest.raises(VaultError, match="did not answer in time .not sent") as e:
            renews(c)
    finally:
        stop.set()
    assert 0.45 < time.monotonic() - start < 2.0  # 0.5 s: one more wait, not a second
    assert not e.value.timed_out and e.value.transient and not e.value.withheld
    assert c._http.expect is None
    assert server_got(got) == [b""]


def test_a_connection_closed_after_vault_took_the_body_is_not_a_stale_one(raw):
    """A kept-alive connection closed before any answer is stale (the request is sent again,
    when safe); but one closed after Vault asked for the body and got it is a server that
    failed while processing it: not sent again behind its back."""
    bodies = []

    def script(srv, sock, n):
        headers, rest = read_head(sock)  # the first request: answered
        sock.sendall(CONTINUE)
        read_rest(sock, rest, int(headers["content-length"]))
        sock.sendall(answer({"data": {}}))
        headers, rest = read_head(sock)  # the second: taken, then the server goes
        sock.sendall(CONTINUE)
        bodies.append(read_rest(sock, rest, int(headers["content-length"])))
    srv = raw(script)
    c = VaultClient(srv.url, timeout=2.0)
    renews(c)
    with pytest.raises(VaultError, match="closed") as e:
        renews(c)  # sys/leases/renew: safe to repeat, and still not repeated
    assert not e.value.withheld and e.value.transient
    assert srv.connections == 1 and server_got(bodies) == [json.dumps(BODY).encode()]


def test_a_body_that_left_on_an_earlier_hop_is_never_called_not_sent(raw, monkeypatch):
    """The body went (without a 100) on a kept-alive connection the server then closed with no
    answer: the request is sent again (safe to repeat), its body held again; if that copy
    times out, the request is in doubt (the first copy may have been processed), not "not
    sent"."""
    monkeypatch.setattr(transport, "EXPECT_WAIT", 0.35)  # the copy: too late for it
    bodies = []

    def script(srv, sock, n):
        if n == 0:
            renews_head, rest = read_head(sock)  # the first request, answered
            read_rest(sock, rest, int(renews_head["content-length"]))
            sock.sendall(answer({"data": {}}))
            headers, rest = read_head(sock)  # the second: its body comes, then the close
            bodies.append(read_rest(sock, rest, int(headers["content-length"])))
            return
        read_head(sock)  # the copy: frozen
        time.sleep(2)
    srv = raw(script)
    c = VaultClient(srv.url, timeout=0.6)
    renews(c)
    with pytest.raises(VaultError, match="did not answer in time") as e:
        renews(c)
    assert bodies and bodies[0] and srv.connections == 2
    assert e.value.timed_out and "not sent" not in str(e.value)
