"""Reading fields of Vault's answers that rconfd-py computes with: a misbehaving node (or what
stands in front of it) answers junk, and junk must be a VaultError naming the request, not a
ValueError deep in the daemon, nor an infinite or NaN deadline."""

from __future__ import annotations

import math

from ..errors import VaultError


def seconds(answer: object, *keys: str, where: str) -> float:
    """The duration at answer[keys[0]][keys[1]]... (lease_duration, data.ttl): 0 when absent or
    null, else a finite number of seconds, not negative; anything else raises VaultError."""
    value = answer
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value < 0:
        kind = type(value).__name__ if not isinstance(value, (int, float)) else "out of range"
        raise VaultError(f"{where}: Vault's answer has a {'.'.join(keys)} that is not a "
                         f"number of seconds ({kind})")
    return float(value)
