"""Configure a Vault/OpenBao server for rconfd: secrets engines, policy, JWT and Kubernetes auth.

Works against any server given an authenticated ``hvac.Client`` (the dev stack uses the root
token of ``bao server -dev``). Every step is idempotent: existing mounts are kept, existing CA
is reused, config and roles are overwritten.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .jwt import AUDIENCE, ISSUER, K8S_NAMESPACE, K8S_SA

if TYPE_CHECKING:
    import hvac

POLICY_NAME = "rconfd"
DEFAULT_ROLES: tuple[str, ...] = ("test-role", "default-role", "demo-role")
KV_SECRET_PATH = "test/mysecret"  # read back as kv/data/test/mysecret
KV_SECRET = {"username": "alice", "password": "s3cr3t", "api_key": "k-123"}
PKI_ROLES = ("example.com", "example.com-leased")
TRANSIT_KEY = "mysecret"
DB_CONNECTION = "postgres"
DB_ROLE = "mydb"

POLICY_HCL = """\
path "kv/data/*"              { capabilities = ["read", "list"] }
path "kv/metadata/*"          { capabilities = ["read", "list"] }
path "database/creds/*"       { capabilities = ["read"] }
path "pki/issue/*"            { capabilities = ["create", "update"] }
path "pki/cert/ca"            { capabilities = ["read"] }
path "transit/hmac/*"         { capabilities = ["update"] }
path "transit/encrypt/*"      { capabilities = ["update"] }
path "transit/decrypt/*"      { capabilities = ["update"] }
path "transit/sign/*"         { capabilities = ["update"] }
path "sys/leases/renew"       { capabilities = ["update"] }
path "sys/leases/renew/*"     { capabilities = ["update"] }
path "sys/renew"              { capabilities = ["update"] }
path "sys/renew/*"            { capabilities = ["update"] }
path "sys/leases/revoke"      { capabilities = ["update"] }
path "sys/leases/lookup"      { capabilities = ["update"] }
path "auth/token/renew-self"  { capabilities = ["update"] }
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
"""


@dataclass(frozen=True)
class Ttls:
    """Short lifetimes so renewal and re-issue paths run within seconds."""

    token_ttl: str = "20s"
    token_max_ttl: str = "60s"
    db_default_ttl: str = "10s"
    db_max_ttl: str = "60s"
    pki_ttl: str = "10s"
    pki_max_ttl: str = "30s"


DEFAULT_TTLS = Ttls()


@dataclass(frozen=True)
class PgTarget:
    """Where the database engine connects: a postgresql-database-plugin ``connection_url``
    (with ``{{username}}``/``{{password}}`` placeholders) and the admin credentials."""

    connection_url: str
    username: str = "postgres"
    password: str = "postgres"


@dataclass(frozen=True)
class SeedResult:
    """What :func:`seed` configured."""

    ca_pem: str
    roles: tuple[str, ...]
    jwt: bool
    kubernetes: bool
    database: bool


def _mounts(client: hvac.Client, auth: bool) -> dict[str, Any]:
    resp = client.sys.list_auth_methods() if auth else client.sys.list_mounted_secrets_engines()
    return dict(resp.get("data") or resp)


def mount_secrets(client: hvac.Client, path: str, backend: str, **kw: Any) -> None:
    """Enable secrets engine ``backend`` at ``path`` unless something is mounted there."""
    if f"{path}/" not in _mounts(client, auth=False):
        client.sys.enable_secrets_engine(backend, path=path, **kw)


def mount_auth(client: hvac.Client, path: str, method: str) -> None:
    """Enable auth method ``method`` at ``path`` unless already enabled."""
    if f"{path}/" not in _mounts(client, auth=True):
        client.sys.enable_auth_method(method, path=path)


def _wait_kv_ready(client: hvac.Client, mount: str, timeout: float = 5.0) -> None:
    """kv-v2 may answer 400 "Upgrading from non-versioned to versioned data" right after mount."""
    import hvac.exceptions

    deadline = time.monotonic() + timeout
    while True:
        try:
            client.read(f"{mount}/config")
            return
        except hvac.exceptions.VaultError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _pki_ca(client: hvac.Client) -> str:
    """The pki mount's CA certificate PEM, or "" when none was generated yet."""
    import hvac.exceptions

    try:
        resp = client.read("pki/cert/ca")
    except hvac.exceptions.VaultError:
        return ""
    return str(((resp or {}).get("data") or {}).get("certificate") or "")


def seed_secrets(client: hvac.Client, ttls: Ttls = DEFAULT_TTLS) -> str:
    """kv-v2 at ``kv/``, pki at ``pki/`` (EC root CA + two roles), transit at ``transit/``.

    Returns the PKI CA certificate PEM.
    """
    mount_secrets(client, "kv", "kv", options={"version": "2"})
    _wait_kv_ready(client, "kv")
    client.write_data(f"kv/data/{KV_SECRET_PATH}", data={"data": KV_SECRET})

    mount_secrets(client, "pki", "pki", config={"max_lease_ttl": "87600h"})
    ca_pem = _pki_ca(client)
    if not ca_pem:
        resp = client.write_data(
            "pki/root/generate/internal",
            data={
                "common_name": "rconfd dev root CA",
                "ttl": "87600h",
                "key_type": "ec",
                "key_bits": 256,
            },
        )
        ca_pem = resp["data"]["certificate"]
    role: dict[str, Any] = {
        "allowed_domains": ["example.com"],
        "allow_bare_domains": True,
        "allow_subdomains": True,
        "allow_localhost": True,
        "ttl": ttls.pki_ttl,
        "max_ttl": ttls.pki_max_ttl,
        "key_type": "ec",
        "key_bits": 256,
    }
    client.write_data("pki/roles/example.com", data=role)  # no lease at all
    client.write_data("pki/roles/example.com-leased", data={**role, "generate_lease": True})

    mount_secrets(client, "transit", "transit")
    client.write_data(f"transit/keys/{TRANSIT_KEY}", data={})
    return ca_pem


def seed_policy(client: hvac.Client, name: str = POLICY_NAME, policy: str = POLICY_HCL) -> None:
    """The ACL policy granted to every auth role."""
    client.sys.create_or_update_policy(name=name, policy=policy)


def seed_jwt_auth(
    client: hvac.Client,
    *,
    pubkey_pem: str | None = None,
    issuer: str = ISSUER,
    audience: str = AUDIENCE,
    roles: Sequence[str] = DEFAULT_ROLES,
    ttls: Ttls = DEFAULT_TTLS,
    mount: str = "jwt",
    jwks_url: str | None = None,
    bound_claims: Mapping[str, str] | None = None,
) -> None:
    """``auth/jwt`` validating RS256 tokens with ``pubkey_pem``, or with the keys published at
    ``jwks_url`` (GitLab: ``<gitlab>/-/jwks``); one identical role per name, accepting only
    tokens whose claims match ``bound_claims`` (GitLab: ``{"project_path": "group/project"}``).
    """
    if (pubkey_pem is None) == (jwks_url is None):
        raise ValueError("give exactly one of pubkey_pem and jwks_url")
    mount_auth(client, mount, "jwt")
    keys = {"jwks_url": jwks_url} if jwks_url else {"jwt_validation_pubkeys": [pubkey_pem]}
    client.write_data(f"auth/{mount}/config", data={**keys, "bound_issuer": issuer})
    for name in roles:
        client.write_data(
            f"auth/{mount}/role/{name}",
            data={
                "role_type": "jwt",
                "bound_audiences": [audience],
                "user_claim": "sub",
                **({"bound_claims": dict(bound_claims)} if bound_claims else {}),
                "token_ttl": ttls.token_ttl,
                "token_max_ttl": ttls.token_max_ttl,
                "token_policies": [POLICY_NAME],
            },
        )


def seed_kubernetes_auth(
    client: hvac.Client,
    *,
    k8s_url: str,
    ca_pem: str,
    namespaces: Sequence[str] = (K8S_NAMESPACE,),
    service_accounts: Sequence[str] = (K8S_SA,),
    roles: Sequence[str] = DEFAULT_ROLES,
    ttls: Ttls = DEFAULT_TTLS,
    mount: str = "kubernetes",
    audience: str | None = None,
) -> None:
    """``auth/kubernetes`` reviewing tokens at ``k8s_url``; one identical role per name.

    ``disable_local_ca_jwt`` makes ``kubernetes_ca_cert`` mandatory even for an http host (any
    PEM will do). Without ``token_reviewer_jwt`` the client's own JWT authenticates the review.
    ``audience``: the roles accept only tokens for it (a projected token's ``audience``).
    """
    mount_auth(client, mount, "kubernetes")
    client.write_data(
        f"auth/{mount}/config",
        data={
            "kubernetes_host": k8s_url,
            "kubernetes_ca_cert": ca_pem,
            "disable_local_ca_jwt": True,
        },
    )
    for name in roles:
        client.write_data(
            f"auth/{mount}/role/{name}",
            data={
                "bound_service_account_names": list(service_accounts),
                "bound_service_account_namespaces": list(namespaces),
                "token_ttl": ttls.token_ttl,
                "token_max_ttl": ttls.token_max_ttl,
                "token_policies": [POLICY_NAME],
                **({"audience": audience} if audience else {}),
            },
        )


def seed_database(client: hvac.Client, pg: PgTarget, ttls: Ttls = DEFAULT_TTLS) -> None:
    """Database engine at ``database/``: connection ``postgres`` and role ``mydb``."""
    mount_secrets(client, "database", "database")
    client.write_data(
        f"database/config/{DB_CONNECTION}",
        data={
            "plugin_name": "postgresql-database-plugin",
            "allowed_roles": [DB_ROLE],
            "connection_url": pg.connection_url,
            "username": pg.username,
            "password": pg.password,
            "verify_connection": True,
        },
    )
    client.write_data(
        f"database/roles/{DB_ROLE}",
        data={
            "db_name": DB_CONNECTION,
            "default_ttl": ttls.db_default_ttl,
            "max_ttl": ttls.db_max_ttl,
            "creation_statements": [
                (
                    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}'"
                    " VALID UNTIL '{{expiration}}';"
                ),
                'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{name}}";',
            ],
        },
    )


def seed(
    client: hvac.Client,
    *,
    jwt_pubkey_pem: str | None,
    k8s_url: str | None = None,
    k8s_ca_pem: str | None = None,
    pg: PgTarget | None = None,
    ttls: Ttls = DEFAULT_TTLS,
    roles: Sequence[str] = DEFAULT_ROLES,
    jwt_issuer: str = ISSUER,
) -> SeedResult:
    """Configure everything rconfd's tests and demo use; skip auth/database parts given ``None``.

    ``k8s_ca_pem`` defaults to the PKI CA (only a placeholder for an http TokenReview stub).
    """
    ca_pem = seed_secrets(client, ttls)
    seed_policy(client)
    if jwt_pubkey_pem is not None:
        seed_jwt_auth(client, pubkey_pem=jwt_pubkey_pem, issuer=jwt_issuer, roles=roles, ttls=ttls)
    if k8s_url is not None:
        seed_kubernetes_auth(
            client, k8s_url=k8s_url, ca_pem=k8s_ca_pem or ca_pem, roles=roles, ttls=ttls
        )
    if pg is not None:
        seed_database(client, pg, ttls)
    return SeedResult(
        ca_pem=ca_pem,
        roles=tuple(roles),
        jwt=jwt_pubkey_pem is not None,
        kubernetes=k8s_url is not None,
        database=pg is not None,
    )
