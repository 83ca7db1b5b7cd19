"""Durations read from Vault's answers (vault/answer.py): junk from a misbehaving node is a
VaultError naming the request, never a ValueError, an infinite or a NaN deadline."""

from __future__ import annotations

import pytest

from rconfd_py.errors import VaultError
from rconfd_py.vault.answer import seconds


@pytest.mark.parametrize("answer, expected", [
    ({"lease_duration": 3600}, 3600.0),
    ({"lease_duration": 1.5}, 1.5),
    ({"lease_duration": None}, 0.0),  # absent or null: no lease duration
    ({"lease_duration": -3}, 0.0),  # a lease past its end, not yet revoked: none left
    ({}, 0.0),
    ([], 0.0),  # not even an object where the field would be
])
def test_a_duration_is_a_finite_number_of_seconds(answer, expected):
    assert seconds(answer, "lease_duration", where="x") == expected


@pytest.mark.parametrize("value", ["60", float("inf"), float("nan"), True, {"s": 1},
                                   10 ** 400, 1e300],  # too large for a float, for select()
                         ids=["str", "inf", "nan", "bool", "object", "int-400-digits", "1e300"])
def test_anything_else_is_a_vault_error_naming_the_request(value):
    with pytest.raises(VaultError, match=r"^auth/token/lookup-self: Vault's answer has a "
                                         r"data.ttl that is not a number of seconds"):
        seconds({"data": {"ttl": value}}, "data", "ttl", where="auth/token/lookup-self")
