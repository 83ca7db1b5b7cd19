"""The knock (daemon/outage.py): while Vault gives no answer, a request waits behind an
unaudited sys/health probe. Pure, with a stand-in for the client's one call; the same rules
against a frozen OpenBao are in test_timeout_recovery.py."""

from __future__ import annotations

import pytest

from rconfd_py.daemon.outage import Outage
from rconfd_py.errors import VaultError


class Probe:
    def __init__(self, error: VaultError | None = None):
        self.error, self.calls = error, []

    def answers(self, timeout: float) -> None:
        self.calls.append(timeout)
        if self.error is not None:
            raise self.error


def hi(a: float, b: float) -> float:
    return b


def silent() -> Outage:
    o = Outage(lambda: 0.0)
    o.failed("renewing", VaultError("no answer", timed_out=True))
    return o


def test_no_probe_while_vault_answers_even_with_errors():
    o = Outage(lambda: 0.0)
    o.failed("renewing", VaultError("HTTP 503", status=503))  # it answers: no knocking
    probe = Probe()
    assert o.knock(probe, 30, hi) is None and probe.calls == []


def test_a_probe_answered_lets_the_request_go():
    o, probe = silent(), Probe()
    assert o.knock(probe, 30, hi) is None and probe.calls == [30] and o.knocks == 0


@pytest.mark.parametrize("error, waits", [
    (VaultError("timed out", timed_out=True), [0.0, 0.0, 0.0]),  # it waited: knock again now
    (VaultError("connection refused"), [0.5, 1.0, 2.0]),  # refused at once: backoff
])
def test_a_probe_without_answer_holds_the_request_back(error, waits):
    o, probe = silent(), Probe(error)
    assert [o.knock(probe, 30, hi) for _ in waits] == waits and o.knocks == len(waits)
    o.succeeded()  # the next real request got an answer
    assert not o.silent and o.knocks == 0
