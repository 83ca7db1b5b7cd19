"""The knock (daemon/outage.py): while Vault gives no answer, a request waits behind an
unaudited sys/health probe. Pure, with a stand-in for the client's one call; the same rules
against a frozen OpenBao are in test_timeout_recovery.py."""

from __future__ import annotations

import pytest

from rconfd_py.daemon.outage import MAX_KNOCKS, Outage
from rconfd_py.errors import VaultError


class Probe:
    def __init__(self, error: Exception | None = None):
        self.error, self.calls = error, []

    def answers(self, timeout: float) -> None:
        self.calls.append(timeout)
        if self.error is not None:
            raise self.error


def silent() -> Outage:
    o = Outage(lambda: 0.0)
    o.failed("renewing", VaultError("no answer", timed_out=True))
    return o


def test_no_probe_while_vault_answers_even_with_errors():
    o = silent()
    o.failed("renewing", VaultError("HTTP 503", status=503))  # it answers: no knocking
    probe = Probe()
    assert not o.knock(probe, 30) and probe.calls == []
    o = silent()
    o.failed("fetching", VaultError("HTTP 403", status=403))  # an answer too, not transient
    assert not o.silent


def test_a_probe_answered_lets_the_request_go():
    o, probe = silent(), Probe()
    assert not o.knock(probe, 30) and probe.calls == [30] and o.knocks == 0


def test_a_probe_that_times_out_holds_the_request_back_a_few_times_at_most():
    """A frozen server: held back, knocking again at once; after MAX_KNOCKS probes in vain the
    request goes anyway (a server hanging on sys/health alone must not block everything)."""
    o, probe = silent(), Probe(VaultError("timed out", timed_out=True))
    held = [o.knock(probe, 30) for _ in range(MAX_KNOCKS + 2)]
    assert held == [True] * MAX_KNOCKS + [False, True]
    o.succeeded()  # the next real request got an answer
    assert not o.silent and o.knocks == 0 and not o.knock(probe, 30)


@pytest.mark.parametrize("error", [
    VaultError("GET /v1/sys/health: cannot reach Vault: connection refused"),  # nothing queues
    TypeError("a transport bug on a strange redirect"),  # never stops the daemon
])
def test_a_probe_failing_otherwise_lets_the_request_go(error):
    o = silent()
    assert not o.knock(Probe(error), 30) and o.knocks == 0
