"""Fault injection on the Vault client with a local HTTP server that misbehaves on purpose
(5xx, 429, timeouts, dropped connections, chunked answers, TLS). The same paths run against
the real OpenBao in test_daemon.py (a frozen server)."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from helpers import self_signed

from rconfd_py import redact
from rconfd_py.errors import VaultError
from rconfd_py.redact import MASK, Redactor
from rconfd_py.vault.client import MAX_ERROR, VaultClient, _errors, api_base


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list = []
    connections = 0  # one handler instance per TCP connection
    ttl: object = 0
    token: object = "s.good"

    def setup(self):
        Handler.connections += 1
        super().setup()

    def log_message(self, *a):
        pass

    def _json(self, status, obj, chunked=False, close=False):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if close:
            self.send_header("Connection", "close")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 7):
                part = body[i:i + 7]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        if close:
            self.close_connection = True

    def handle_one(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        Handler.seen.append((self.command, self.path, dict(self.headers), body))
        p = self.path.split("?")[0]
        if p.startswith("/v1/status/"):
            code = int(p.rsplit("/", 1)[1])
            self._json(code, {"errors": ["something bad"]} if code != 404 else {"errors": []})
        elif p == "/v1/echo":  # as Vault's field validation echoes a bad value
            sent = json.loads(body or b"{}")
            self._json(400, {"errors": [
                f'{sent.get("before", "")}Field validation failed: error converting input for '
                f'field "ttl": time: invalid duration "{sent.get("ttl")}"{sent.get("after", "")}'
            ]})
        elif p == "/v1/html":
            data = b"<html>bad gateway</html>"
            self.send_response(502)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif p == "/v1/hang":
            threading.Event().wait(3)
        elif p == "/v1/drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif p == "/v1/chunked":
            self._json(200, {"data": {"big": "x" * 1000}}, chunked=True)
        elif p == "/v1/deep":  # valid JSON, nested deeper than the parser recurses
            data = b"[" * 100_000 + b"]" * 100_000
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif p == "/v1/sys/leases/lookup":  # a misbehaving node: the TTL the test chose
            self._json(200, {"data": {"ttl": Handler.ttl}})
        elif p == "/v1/auth/jwt/login":  # a misbehaving node: the token the test chose
            self._json(200, {"auth": {"client_token": Handler.token, "accessor": ["a"]}})
        elif p == "/v1/close":
            self._json(200, {"data": {"n": 1}}, close=True)
        else:
            self._json(200, {"data": {"path": p}})

    do_GET = do_POST = do_PUT = handle_one


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_api_base_with_or_without_v1():
    assert api_base("https://v:8200") == "https://v:8200/v1"
    assert api_base("https://v:8200/v1/") == "https://v:8200/v1"


def test_token_namespace_body_and_list_as_get(server):
    c = VaultClient(server, namespace="team-a")
    Handler.seen.clear()
    assert c.request("LIST", "kv/metadata/", token="t0k") == {"data": {"path": "/v1/kv/metadata"}}
    assert c.request("POST", "pki/issue/x", body={"common_name": "a"})["data"]
    (m1, p1, h1, _), (m2, p2, h2, b2) = Handler.seen
    assert (m1, p1) == ("GET", "/v1/kv/metadata?list=true")
    assert h1["X-Vault-Token"] == "t0k" and h1["X-Vault-Namespace"] == "team-a"
    assert (m2, json.loads(b2)) == ("POST", {"common_name": "a"}) and "X-Vault-Token" not in h2


def test_keep_alive_survives_server_side_close_and_chunked_answers(server):
    c = VaultClient(server)
    before = Handler.connections
    assert c.request("GET", "close") == {"data": {"n": 1}}  # server closes after answering
    assert c.request("GET", "chunked")["data"]["big"] == "x" * 1000  # a new connection
    assert c.request("GET", "a") == {"data": {"path": "/v1/a"}}  # that one, kept alive
    assert c.request("GET", "b") == {"data": {"path": "/v1/b"}}
    assert Handler.connections - before == 2


@pytest.mark.parametrize("status,transient", [(500, True), (503, True), (429, True),
                                              (400, False), (403, False)])
def test_http_errors_carry_status_and_vault_message(server, status, transient):
    with pytest.raises(VaultError) as e:
        VaultClient(server).request("GET", f"status/{status}", token="t")
    assert e.value.status == status and e.value.transient is transient
    assert str(e.value) == f"GET /v1/status/{status}: HTTP {status}: something bad"


def test_404_without_message_and_non_json_answers(server):
    with pytest.raises(VaultError, match="HTTP 404: not found"):
        VaultClient(server).request("GET", "status/404")
    with pytest.raises(VaultError, match="HTTP 502: Bad Gateway") as e:
        VaultClient(server).request("GET", "html")
    assert e.value.transient


def test_an_answer_nested_thousands_deep_is_a_vault_error_not_a_crash(server):
    with pytest.raises(VaultError, match="HTTP 200: answer is not a JSON object"):
        VaultClient(server).request("GET", "deep")


@pytest.mark.parametrize("ttl", ["3600", float("inf"), True, [1], 10 ** 400, 1e300],
                         ids=["str", "inf", "bool", "list", "int-400-digits", "1e300"])
def test_a_junk_duration_in_an_answer_is_a_vault_error_naming_the_request(server, ttl,
                                                                          monkeypatch):
    from rconfd_py.vault.leases import lookup_lease

    monkeypatch.setattr(Handler, "ttl", ttl)
    with pytest.raises(VaultError, match=r"^sys/leases/lookup: Vault's answer has a data.ttl "
                                         r"that is not a number of seconds"):
        lookup_lease(VaultClient(server), "t", "lease/1")
    monkeypatch.setattr(Handler, "ttl", 42)
    assert lookup_lease(VaultClient(server), "t", "lease/1") == 42.0


@pytest.mark.parametrize("token", [["s.x"], 5, {"t": 1}, ""])
def test_a_token_that_is_not_a_string_is_a_vault_error(server, token, monkeypatch):
    from rconfd_py.vault.auth import login

    monkeypatch.setattr(Handler, "token", token)
    with pytest.raises(VaultError, match=r"^login as role 'r': no token in Vault's answer$"):
        login(VaultClient(server), "auth/jwt/login", "r", "jwt", 0.0)
    monkeypatch.setattr(Handler, "token", "s.good")
    assert login(VaultClient(server), "auth/jwt/login", "r", "jwt", 0.0).accessor == ""


def test_timeouts_dropped_and_refused_connections_are_transient(server):
    cases = [(VaultClient(server, timeout=0.5), "hang", "did not answer in time"),
             (VaultClient(server), "drop", "cannot reach Vault"),
             (VaultClient("http://127.0.0.1:9"), "x", "cannot reach Vault")]
    for client, path, needle in cases:
        with pytest.raises(VaultError, match=needle) as e:
            client.request("GET", path)
        assert e.value.status == 0 and e.value.transient
        # only a timeout leaves the request in doubt: the server may still process it
        assert e.value.timed_out is (path == "hang")


def test_tls_with_the_given_ca(tmp_path):
    ctx = self_signed(tmp_path)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"https://localhost:{srv.server_address[1]}"
    try:
        ok = VaultClient(url, cacert=str(tmp_path / "cert.pem"))
        assert ok.request("GET", "tls") == {"data": {"path": "/v1/tls"}}
        with pytest.raises(VaultError, match="cannot reach Vault") as e:  # not our CA
            VaultClient(url).request("GET", "tls")
        assert "unknown certificate authority" in str(e.value)
    finally:
        srv.shutdown()


# -- Vault's error text: masked before it is cut, one line --------------------------------------

JWT = ("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9." + "eyJzdWIiOiJyY29uZmQtdGVzdCJ9" * 9 + "."
       + "c2lnbmF0dXJlLXNpZ25hdHVyZQ" * 5)[:400]  # as long as a service-account JWT


@pytest.fixture
def fresh(monkeypatch):
    r = Redactor()
    monkeypatch.setattr(redact, "redactor", r)
    return r


def chunks(secret: str, n: int = 12) -> list[str]:
    return [secret[i:i + n] for i in range(0, len(secret) - n + 1)]


def test_a_jwt_echoed_in_a_400_is_masked_before_the_cut_wherever_it_falls(server, fresh):
    assert len(JWT) == 400
    fresh.add("jwt", JWT)
    client = VaultClient(server)
    for pad in range(0, 330, 7):  # the JWT starts before, across and after the 300th character
        with pytest.raises(VaultError) as e:
            client.request("POST", "echo", body={"ttl": JWT, "before": "x" * pad})
        msg = str(e.value)
        assert not any(c in msg for c in chunks(JWT)), (pad, msg)
        assert e.value.status == 400 and "\n" not in msg
        text = msg.split("HTTP 400: ", 1)[1]
        assert len(text) <= MAX_ERROR + 3 and (MASK in text or "<" not in text)


def test_without_the_fix_the_cut_would_print_most_of_the_jwt(fresh):
    """The attack the client defends against: cut first, and what remains of the JWT is too
    short for the redactor to recognise."""
    fresh.add("jwt", JWT)
    echoed = f"invalid duration \"{JWT}\""
    assert JWT[:200] in fresh.redact(echoed[:MAX_ERROR])  # the old order leaked
    assert JWT[:12] not in _errors({"errors": [echoed]}, 400, "Bad Request")


def test_a_multi_line_secret_echoed_raw_is_masked_before_its_newlines_go(fresh):
    secret = "line-one-of-it\nline-two-of-it\nab"
    fresh.add("s", secret)
    text = _errors({"errors": [f"bad value {secret!s} here", "second\nerror"]}, 400, "")
    assert text == f"bad value {MASK} here; second error"


def test_vault_error_text_cannot_forge_a_line_and_its_reason_is_quoted_too(fresh):
    text = _errors({"errors": ["bad\r\nrconfd-py: info: forged\x1b[2K\x00"]}, 400, "")
    assert text == "bad rconfd-py: info: forged\\x1b[2K\\x00"
    assert _errors(None, 502, "Bad\x1b[31m Gateway") == "Bad\\x1b[31m Gateway"
    fresh.add("pin", "735")
    assert _errors({"errors": ["pin 735 rejected"]}, 400, "") == f"pin {MASK} rejected"


def test_a_short_secret_is_not_left_standing_alone_by_the_cut(fresh):
    fresh.add("pin", "735")
    text = _errors({"errors": ["x" * (MAX_ERROR - 4) + " 7350 more"]}, 400, "")
    assert text == "x" * (MAX_ERROR - 4) + f" {MASK}..."  # what the cut left of "7350"


def test_a_quoted_piece_of_a_secret_in_vault_text_is_masked(fresh):
    """OpenBao's own answer to `ttl=hunter2longpassword`: the final "d" is taken for days and
    the rest echoed, a piece the whole-value redactor cannot recognise."""
    fresh.add("kwargs", ("hunter2longpassword", "ab"))
    text = _errors({"errors": ['Field validation failed: error converting input for field "ttl": '
                               'strconv.ParseInt: parsing "hunter2longpasswor": invalid syntax']},
                   400, "")
    assert text == ('Field validation failed: error converting input for field "ttl": '
                    f'strconv.ParseInt: parsing "{MASK}": invalid syntax')
    # a quoted piece of fewer than 4 characters, or of no secret, is kept
    assert _errors({"errors": ['bad "hun" in "unrelated text"']}, 400, "") == \
        'bad "hun" in "unrelated text"'


def test_a_quoted_piece_one_character_short_of_a_secret_is_masked(fresh):
    """OpenBao answers `ttl=wxyd` with `parsing "wxy"` (the "d" taken for days): a quoted
    piece lacking only the first or last character of a secret is masked, whatever its length
    (1+ characters); a shorter piece is no more than a guess and is kept."""
    fresh.add("kwargs", [{"ttl": "wxyd"}, {"pin": "q7"}])
    echo = 'parsing "wxy": invalid; "xyd"; pin "q" or "7"; kept "wx" "ab" "q7x"'
    text = _errors({"errors": [echo]}, 400, "")
    assert text == (f'parsing "{MASK}": invalid; "{MASK}"; pin "{MASK}" or "{MASK}"; kept "wx" '
                    '"ab" "q7x"')


def test_only_what_cannot_mint_is_sent_twice():
    from rconfd_py.vault.client import repeatable

    for path in ("database/creds/ro", "aws/creds/x", "aws/sts/deploy", "gcp/roleset/r/token",
                 "gcp/static-account/a/key"):
        assert not repeatable("GET", path), path
    for method, path in (("GET", "kv/data/app"), ("GET", "auth/token/lookup-self"),
                         ("PUT", "sys/leases/renew"), ("POST", "auth/token/renew-self")):
        assert repeatable(method, path), path
    assert not repeatable("POST", "pki/issue/example.com")
