"""RS256 JWT minting for the dev stack's ``auth/jwt`` and ``auth/kubernetes`` logins."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

ISSUER = "rconfd-dev"  # auth/jwt bound_issuer
AUDIENCE = "rconfd"  # auth/jwt roles' bound_audiences
KID = "rconfd-dev"
DEFAULT_SUB = "rconfd-test"
K8S_NAMESPACE = "default"
K8S_SA = "rconfd"
K8S_UID = "00000000-0000-0000-0000-0000000000aa"
K8S_ISSUER = "kubernetes/serviceaccount"


def generate_key() -> RSAPrivateKey:
    """A fresh 2048-bit RSA signing key."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: RSAPrivateKey) -> bytes:
    """PKCS#8 PEM of the private key (unencrypted)."""
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: RSAPrivateKey) -> str:
    """SubjectPublicKeyInfo PEM of the public key (what ``jwt_validation_pubkeys`` wants)."""
    from cryptography.hazmat.primitives import serialization

    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def write_keypair(key: RSAPrivateKey, directory: Path) -> tuple[Path, Path]:
    """Write ``key.pem`` (mode 0600) and ``pub.pem`` into ``directory``; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    priv, pub = directory / "key.pem", directory / "pub.pem"
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem(key))
    priv.chmod(0o600)
    pub.write_text(public_pem(key))
    return priv, pub


def load_key(path: Path) -> RSAPrivateKey:
    """Load an unencrypted PEM RSA private key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, RSAPrivateKey):
        raise TypeError(f"{path} is not an RSA private key")
    return key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def mint(key: RSAPrivateKey, claims: dict[str, Any], *, kid: str = KID) -> str:
    """Compact RS256 JWT of ``claims`` signed with ``key``."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    header = {"alg": "RS256", "typ": "JWT", "kid": kid}
    signing_input = f"{_b64url(_json(header))}.{_b64url(_json(claims))}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"


def gitlab_like_claims(
    sub: str = DEFAULT_SUB,
    aud: str = AUDIENCE,
    ttl: int = 3600,
    iss: str = ISSUER,
    *,
    now: int | None = None,
) -> dict[str, Any]:
    """CI-style claims (iss, sub, aud, iat, nbf = iat - 5, exp = iat + ttl); ttl may be negative."""
    iat = int(time.time()) if now is None else now
    return {"iss": iss, "sub": sub, "aud": aud, "iat": iat, "nbf": iat - 5, "exp": iat + ttl}


def k8s_claims(
    ns: str = K8S_NAMESPACE,
    sa: str = K8S_SA,
    uid: str = K8S_UID,
    *,
    ttl: int = 86400,
    aud: tuple[str, ...] = (AUDIENCE,),
    now: int | None = None,
) -> dict[str, Any]:
    """Projected service-account token claims, as the kubernetes auth plugin parses them."""
    iat = int(time.time()) if now is None else now
    return {
        "iss": K8S_ISSUER,
        "sub": f"system:serviceaccount:{ns}:{sa}",
        "aud": list(aud),
        "iat": iat,
        "nbf": iat,
        "exp": iat + ttl,
        "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": sa, "uid": uid}},
    }
