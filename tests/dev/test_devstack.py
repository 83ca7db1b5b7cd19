"""The development stack itself: OpenBao answers, auth methods log in, engines hand out secrets."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import hvac
import hvac.exceptions
import pytest
from helpers import audit_request_paths

from rconfd_py.dev.postgres import Postgres
from rconfd_py.dev.stack import DevStack


def jwt_login(stack: DevStack, role: str = "test-role", jwt: str | None = None) -> dict:
    """Log in on auth/jwt; returns the ``auth`` block."""
    resp = stack.client(token="none").auth.jwt.jwt_login(
        role=role, jwt=jwt or stack.mint_jwt(), use_token=False
    )
    return resp["auth"]


def test_root_token_lookup_self(stack: DevStack) -> None:
    data = stack.client().auth.token.lookup_self()["data"]
    assert data["policies"] == ["root"]
    os.kill(stack.bao_pid, 0)  # alive
    assert stack.addr.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("role", ["test-role", "default-role", "demo-role"])
def test_jwt_login_gives_short_token(stack: DevStack, role: str) -> None:
    auth = jwt_login(stack, role)
    assert auth["lease_duration"] == 20
    assert auth["renewable"] is True
    assert "rconfd" in auth["token_policies"]
    assert auth["client_token"].startswith("s.")
    secret = stack.client(auth["client_token"]).read("kv/data/test/mysecret")
    assert secret["data"]["data"]["username"] == "alice"
    assert secret["lease_duration"] == 0


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"ttl": -60}, "token is expired"),
        ({"aud": "someone-else"}, "invalid audience"),
    ],
)
def test_jwt_login_rejects_bad_tokens(stack: DevStack, kw: dict, message: str) -> None:
    with pytest.raises(hvac.exceptions.InvalidRequest, match=message):
        jwt_login(stack, jwt=stack.mint_jwt(**kw))


def test_kubernetes_login_via_stub(stack: DevStack) -> None:
    before = stack.k8s_stub.reviews
    client = stack.client(token="none")
    auth = client.auth.kubernetes.login("default-role", stack.mint_k8s_jwt(), use_token=False)[
        "auth"
    ]
    assert auth["lease_duration"] == 20
    assert auth["metadata"]["service_account_namespace"] == "default"
    assert stack.k8s_stub.reviews == before + 1
    with pytest.raises(hvac.exceptions.VaultError):
        client.auth.kubernetes.login("test-role", stack.mint_k8s_jwt(ns="other"), use_token=False)


def test_database_creds_create_expiring_role(stack: DevStack, pg: Postgres) -> None:
    creds = stack.client(jwt_login(stack)["client_token"]).read("database/creds/mydb")
    assert creds["lease_id"].startswith("database/creds/mydb/")
    assert creds["renewable"] is True
    assert 0 < creds["lease_duration"] <= 10
    name = creds["data"]["username"]
    assert "'" not in name
    row = pg.psql(f"SELECT rolvaliduntil IS NOT NULL FROM pg_roles WHERE rolname = '{name}'")
    assert row == "t"


def test_pki_issue_returns_expiration(stack: DevStack) -> None:
    client = stack.client(jwt_login(stack)["client_token"])
    plain = client.write_data("pki/issue/example.com", data={"common_name": "example.com"})
    assert plain["lease_id"] == ""
    assert time.time() < plain["data"]["expiration"] <= time.time() + 11
    assert plain["data"]["issuing_ca"].strip() == stack.ca_pem.strip()
    leased = client.write_data("pki/issue/example.com-leased", data={"common_name": "example.com"})
    assert leased["lease_id"].startswith("pki/issue/example.com-leased/")


def test_transit_hmac(stack: DevStack) -> None:
    client = stack.client(jwt_login(stack)["client_token"])
    data = {"input": base64.b64encode(b"s3cr3t").decode()}
    assert client.write_data("transit/hmac/mysecret", data=data)["data"]["hmac"].startswith(
        "vault:v1:"
    )


def test_audit_log_records_requests(stack: DevStack) -> None:
    assert stack.audit_log is not None and stack.audit_log.is_file()
    stack.client().read("kv/data/test/mysecret")
    paths = audit_request_paths(stack.audit_log)
    assert "kv/data/test/mysecret" in paths
    assert "auth/token/lookup-self" in paths


def test_write_jwt_is_private(stack: DevStack, vault_env: dict[str, str]) -> None:
    for key in ("VAULT_JWT_PATH", "VAULT_K8S_JWT_PATH"):
        path = vault_env[key]
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert Path(path).read_text().count(".") == 2
    assert vault_env["VAULT_ADDR"] == stack.addr


def test_wrong_token_is_forbidden(stack: DevStack) -> None:
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(url=stack.addr, token="s.bogus").read("kv/data/test/mysecret")
