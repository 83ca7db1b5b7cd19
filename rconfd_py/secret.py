"""What a fetched secret is: its value and, for the daemon, how long it stays valid."""

from __future__ import annotations

from collections import namedtuple

Lease = namedtuple("Lease", "id duration renewable")
Lease.__doc__ = "A Vault lease as granted: `duration` seconds from `Secret.fetched_at`."


class Secret(namedtuple("Secret", "ref value fetched_at lease expires_at role accessor",
                        defaults=(None, None, "", ""))):
    """A fetched value (`ref`: its SecretRef; `fetched_at`: unix time; `lease`: a Lease or None).

    `expires_at` (unix time) is the lease end or a certificate's expiration; None means the value
    stays valid until it changes at its source (kv, env, file, exe static). `role` and `accessor`
    name the vault token that created it: a lease dies with its token.
    """

    __slots__ = ()

    @property
    def leased(self) -> bool:
        """True when the value expires and must be renewed or fetched again."""
        return self.expires_at is not None
