"""What a fetched secret is: its value and, for the daemon, how long it stays valid."""

from __future__ import annotations

from dataclasses import dataclass

from .refs import SecretRef


@dataclass(frozen=True, slots=True)
class Lease:
    """A Vault lease as granted: `duration` seconds from `Secret.fetched_at`."""

    id: str
    duration: float
    renewable: bool


@dataclass(frozen=True, slots=True)
class Secret:
    """A fetched value. `expires_at` (unix time) is the lease end or a certificate's expiration;
    None means the value stays valid until it changes at its source (kv, env, file, exe static)."""

    ref: SecretRef
    value: Any
    fetched_at: float
    lease: Lease | None = None
    expires_at: float | None = None
    role: str = ""  # vault: the role whose token created it
    accessor: str = ""  # vault: that token's accessor (a lease dies with its token)

    @property
    def leased(self) -> bool:
        """True when the value expires and must be renewed or fetched again."""
        return self.expires_at is not None
