"""Reading fields of Vault's answers that rconfd-py computes with: a misbehaving node (or what
stands in front of it) answers junk, and junk must be a VaultError naming the request, not a
ValueError deep in the daemon, nor an infinite or NaN deadline."""

from __future__ import annotations

import math

from ..errors import VaultError


def seconds(answer: object, *keys: str, where: str) -> float:
    """The duration at answer[keys[0]][keys[1]]... (lease_duration, data.ttl): 0 when absent or
    null, or negative (the lookup of a lease past its end, not yet revoked, gives -3); else a
    finite number of seconds; anything else raises VaultError."""
    value = answer
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        kind = type(value).__name__ if not isinstance(value, (int, float)) else "out of range"
        raise VaultError(f"{where}: Vault's answer has a {'.'.join(keys)} that is not a "
                         f"number of seconds ({kind})")
    return max(0.0, float(value))
