"""Reading fields of Vault's answers that rconfd-py computes with: a misbehaving node (or what
stands in front of it) answers junk, and junk must be a VaultError naming the request, not a
ValueError deep in the daemon, nor an infinite or NaN deadline."""

from __future__ import annotations

import math

from ..errors import VaultError

MAX_SECONDS = 100 * 365 * 86400  # beyond any TTL (Vault's own limits are years): junk, and a
#                                  timer that far would overflow select()


def seconds(answer: object, *keys: str, where: str) -> float:
    """The duration at answer[keys[0]][keys[1]]... (lease_duration, data.ttl): 0 when absent or
    null, or negative (the lookup of a lease past its end, not yet revoked, gives -3); else a
    finite number of seconds up to MAX_SECONDS; anything else raises VaultError."""
    value = answer
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    if value is None:
        return 0.0
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    try:  # an int of hundreds of digits (JSON allows it) overflows a float
        fits = number and math.isfinite(value) and value <= MAX_SECONDS
    except OverflowError:
        fits = False
    if not fits:
        kind = "out of range" if number else type(value).__name__
        raise VaultError(f"{where}: Vault's answer has a {'.'.join(keys)} that is not a "
                         f"number of seconds ({kind})")
    return max(0.0, float(value))
