#!/usr/bin/env python3
"""Configure a real Vault/OpenBao for rconfd-py: the `rconfd` policy, Kubernetes and JWT auth.

Runs the same code (rconfd_py.dev.seed) that seeds the test fixture and `make demo`; every step
is idempotent (mounts kept, config and roles overwritten). Needs hvac:
pip install 'rconfd-py[demo]'.

    # in-cluster workloads (deploy/kubernetes): the TokenReview is made with the pod's own token,
    # so its service account needs system:auth-delegator (deploy/kubernetes/serviceaccount.yaml)
    python deploy/vault/setup.py --kubernetes-host https://k8s.example.com:6443 \\
        --kubernetes-ca k8s-ca.pem --audience vault --namespace default --service-account rconfd

    # GitLab CI ID tokens (deploy/gitlab-ci.yml)
    python deploy/vault/setup.py --jwks-url https://gitlab.example.com/-/jwks \\
        --jwt-issuer https://gitlab.example.com --jwt-audience https://vault.example.com \\
        --jwt-role ci-role --jwt-bound-claim project_path=group/project
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

try:
    from rconfd_py.dev import seed
except ImportError:  # run from a checkout without rconfd-py installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from rconfd_py.dev import seed


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deploy/vault/setup.py",
        description=__doc__,
        epilog="Kubernetes auth is configured when --kubernetes-host is given, JWT auth when "
               "--jwt-pubkey or --jwks-url is. Every role gets the policy 'rconfd' "
               "(see rconfd_py/dev/seed.py, POLICY_HCL; --policy to replace it).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    v = p.add_argument_group("Vault")
    v.add_argument("--address", default=os.environ.get("VAULT_ADDR", "https://localhost:8200"),
                   help="Vault address ($VAULT_ADDR, else https://localhost:8200)")
    v.add_argument("--token", default=os.environ.get("VAULT_TOKEN"),
                   help="a token allowed to write policies and auth config ($VAULT_TOKEN)")
    v.add_argument("--ca-cert", default=os.environ.get("VAULT_CACERT"), metavar="FILE",
                   help="CA bundle for Vault's TLS certificate ($VAULT_CACERT)")
    v.add_argument("--policy", metavar="FILE", help="HCL policy to write instead of the default")
    v.add_argument("--token-ttl", default="1h", help="TTL of the tokens the roles issue (1h)")
    v.add_argument("--token-max-ttl", default="24h", help="their max TTL (24h)")
    k = p.add_argument_group("Kubernetes auth")
    k.add_argument("--kubernetes-host", metavar="URL", help="the API server, as Vault reaches it")
    k.add_argument("--kubernetes-ca", metavar="FILE", help="PEM CA of the API server (required "
                   "with --kubernetes-host)")
    k.add_argument("--kubernetes-mount", default="kubernetes", help="auth mount (kubernetes)")
    k.add_argument("--kubernetes-role", action="append", metavar="NAME",
                   help="role name, repeatable (rconfd)")
    k.add_argument("--namespace", action="append", metavar="NS",
                   help="bound namespace, repeatable (default)")
    k.add_argument("--service-account", action="append", metavar="SA",
                   help="bound service account, repeatable (rconfd)")
    k.add_argument("--audience", metavar="AUD", help="accept only projected tokens for this "
                   "audience (the Deployment's serviceAccountToken.audience, e.g. vault)")
    j = p.add_argument_group("JWT auth (GitLab CI ID tokens, any OIDC issuer)")
    j.add_argument("--jwt-pubkey", metavar="FILE", help="PEM public key validating the tokens")
    j.add_argument("--jwks-url", metavar="URL", help="or the issuer's JWKS (GitLab: "
                   "<gitlab>/-/jwks)")
    j.add_argument("--jwt-issuer", help="bound issuer (required with JWT auth)")
    j.add_argument("--jwt-audience",
                   help="bound audience, the tokens' aud (required with JWT auth)")
    j.add_argument("--jwt-bound-claim", action="append", metavar="CLAIM=VALUE", default=[],
                   help="accept only tokens with this claim, repeatable (GitLab: "
                        "project_path=group/project; without one, every project's token would do)")
    j.add_argument("--jwt-mount", default="jwt", help="auth mount (jwt)")
    j.add_argument("--jwt-role", action="append", metavar="NAME",
                   help="role name, repeatable (rconfd)")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    a = p.parse_args(argv)
    jwt = a.jwt_pubkey is not None or a.jwks_url is not None
    if a.jwt_pubkey and a.jwks_url:
        p.error("--jwt-pubkey and --jwks-url exclude each other")
    if jwt and not (a.jwt_issuer and a.jwt_audience):
        p.error("JWT auth needs --jwt-issuer and --jwt-audience")
    if any("=" not in c for c in a.jwt_bound_claim):
        p.error("--jwt-bound-claim takes CLAIM=VALUE")
    if a.kubernetes_host and not a.kubernetes_ca:
        p.error("--kubernetes-host needs --kubernetes-ca")
    if not a.token:
        p.error("no token: pass --token or set VAULT_TOKEN")
    try:
        import hvac
        import hvac.exceptions
    except ImportError:
        p.exit(2, "setup.py: hvac is missing: pip install 'rconfd-py[demo]'\n")

    def read(path: str, what: str) -> str:
        try:
            return Path(path).read_text()
        except OSError as e:
            p.exit(2, f"setup.py: cannot read {what} {path}: {e.strerror}\n")

    client = hvac.Client(url=a.address, token=a.token, verify=a.ca_cert or True)
    ttls = seed.Ttls(token_ttl=a.token_ttl, token_max_ttl=a.token_max_ttl)
    try:
        policy = read(a.policy, "--policy") if a.policy else seed.POLICY_HCL
        seed.seed_policy(client, policy=policy)
        print(f"policy {seed.POLICY_NAME} written")
        if a.kubernetes_host:
            roles = a.kubernetes_role or ["rconfd"]
            seed.seed_kubernetes_auth(
                client, k8s_url=a.kubernetes_host,
                ca_pem=read(a.kubernetes_ca, "--kubernetes-ca"),
                namespaces=a.namespace or ["default"],
                service_accounts=a.service_account or ["rconfd"],
                roles=roles, ttls=ttls, mount=a.kubernetes_mount, audience=a.audience)
            print(f"auth/{a.kubernetes_mount}: roles {', '.join(roles)}")
        if jwt:
            roles = a.jwt_role or ["rconfd"]
            seed.seed_jwt_auth(
                client, pubkey_pem=read(a.jwt_pubkey, "--jwt-pubkey") if a.jwt_pubkey else None,
                jwks_url=a.jwks_url, issuer=a.jwt_issuer, audience=a.jwt_audience,
                roles=roles, ttls=ttls, mount=a.jwt_mount,
                bound_claims=dict(c.split("=", 1) for c in a.jwt_bound_claim))
            print(f"auth/{a.jwt_mount}: roles {', '.join(roles)}")
    except (hvac.exceptions.VaultError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"setup.py: {a.address}: {first}", file=sys.stderr)
        return 4
    if not (a.kubernetes_host or jwt):
        print("no --kubernetes-host, --jwt-pubkey or --jwks-url: only the policy was written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
