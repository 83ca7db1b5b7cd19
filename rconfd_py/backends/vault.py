"""`vault:ROLE[,METHOD][,key=val]*:PATH` — a Vault API call with the role's token.

The template receives the answer's `data`. The lease (`lease_id`, `lease_duration`,
`renewable`) or, for PKI certificates, `data.expiration` tells the daemon when to act.
"""

from __future__ import annotations


from ..errors import VaultError
from ..refs import SecretRef
from ..secret import Lease, Secret
from ..vault.answer import seconds
from . import Sources


def fetch(ref: SecretRef, sources: Sources) -> Secret:
    store = sources.vault
    assert store is not None, "vault refs need a token store"
    token = store.get(ref.role)
    kwargs = dict(ref.kwargs)
    reads = ref.method in ("GET", "LIST")
    try:
        answer = store.client.request(ref.method, ref.path, token=token.client_token,
                                      params=kwargs if reads and kwargs else None,
                                      body=None if reads else kwargs)
    except VaultError as e:
        raise e.prefixed(str(ref)) from None
    return to_secret(ref, answer, sources.clock(), token.accessor)


def to_secret(ref: SecretRef, answer: dict, now: float, accessor: str = "") -> Secret:
    data = answer.get("data")
    if data is None:
        raise VaultError(f"{ref}: Vault's answer has no data")
    lease = None
    expires_at = None
    duration = seconds(answer, "lease_duration", where=str(ref))
    # Only a lease_id makes a lease: kv v1 sends a bare lease_duration as a refresh hint.
    if answer.get("lease_id"):
        lease = Lease(id=answer["lease_id"], duration=duration,
                      renewable=bool(answer.get("renewable")))
        if duration:
            expires_at = now + duration
    expiration = data.get("expiration") if isinstance(data, dict) else None
    if isinstance(expiration, (int, float)) and expiration > 0:  # PKI certificate
        expires_at = min(expires_at, float(expiration)) if expires_at else float(expiration)
    return Secret(ref=ref, value=data, fetched_at=now, lease=lease, expires_at=expires_at,
                  role=ref.role, accessor=accessor)
