"""Fault injection on the Vault client with httpx's mock transport (5xx, timeouts, refusals).
The same paths run for real in test_daemon.py (a frozen OpenBao)."""

import httpx
import pytest

from rconfd_py.errors import VaultError
from rconfd_py.vault.client import VaultClient, api_base


def client(handler) -> VaultClient:
    return VaultClient("http://vault.test:8200", namespace="team-a",
                       transport=httpx.MockTransport(handler))


def test_api_base_with_or_without_v1():
    assert api_base("https://v:8200") == "https://v:8200/v1"
    assert api_base("https://v:8200/v1/") == "https://v:8200/v1"


def test_request_sends_token_namespace_and_list_as_get():
    seen = {}

    def handler(req: httpx.Request):
        seen.update(method=req.method, url=str(req.url), token=req.headers.get("x-vault-token"),
                    ns=req.headers.get("x-vault-namespace"))
        return httpx.Response(200, json={"data": {"keys": ["a"]}})

    assert client(handler).request("LIST", "kv/metadata/", token="t0k")["data"] == {"keys": ["a"]}
    assert seen == {"method": "GET", "url": "http://vault.test:8200/v1/kv/metadata/?list=true",
                    "token": "t0k", "ns": "team-a"}


@pytest.mark.parametrize("status,transient", [(500, True), (503, True), (429, True),
                                              (400, False), (403, False), (404, False)])
def test_http_errors_carry_status_and_vault_message(status, transient):
    c = client(lambda req: httpx.Response(status, json={"errors": ["something bad"]}))
    with pytest.raises(VaultError) as e:
        c.request("GET", "kv/data/x", token="t")
    assert e.value.status == status and e.value.transient is transient
    assert f"GET /v1/kv/data/x: HTTP {status}: something bad" == str(e.value)


def test_404_without_message_and_non_json_answers():
    with pytest.raises(VaultError, match="HTTP 404: not found"):
        client(lambda r: httpx.Response(404, json={"errors": []})).request("GET", "kv/data/x")
    with pytest.raises(VaultError, match="HTTP 502: Bad Gateway"):
        client(lambda r: httpx.Response(502, text="<html>")).request("GET", "kv/data/x")


def test_timeouts_and_refused_connections_are_transient():
    def timeout(req):
        raise httpx.ReadTimeout("read timed out", request=req)

    def refused(req):
        raise httpx.ConnectError("[Errno 111] Connection refused", request=req)

    for handler, needle in ((timeout, "did not answer in time"), (refused, "cannot reach")):
        with pytest.raises(VaultError, match=needle) as e:
            client(handler).request("GET", "sys/health")
        assert e.value.status == 0 and e.value.transient
