"""The knock (daemon/outage.py): while Vault gives no answer, a request waits behind an
unaudited sys/health probe. Pure, with a stand-in for the client's one call; the same rules
against a frozen OpenBao are in test_timeout_recovery.py."""

from __future__ import annotations

import time

import pytest

from rconfd_py.daemon.outage import MAX_KNOCKS, PAUSE, Outage, Wait
from rconfd_py.errors import VaultError


class Probes:
    """The sys/health probe (the client's answers(), or a Wait's probe): answering (None) or
    failing (an exception) in turn, the last outcome repeated; each takes `takes` s."""

    def __init__(self, *outcomes, takes: float = 0.0):
        self.outcomes, self.calls, self.takes = list(outcomes) or [None], [], takes

    def __call__(self, timeout: float) -> None:
        self.calls.append(timeout)
        time.sleep(self.takes)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if outcome is not None:
            raise outcome

    answers = __call__


def silent() -> Outage:
    o = Outage(lambda: 0.0)
    o.failed("renewing", VaultError("no answer", timed_out=True))
    return o


def test_no_probe_while_vault_answers_even_with_errors():
    o = silent()
    o.failed("renewing", VaultError("HTTP 503", status=503))  # it answers: no knocking
    probe = Probes()
    assert not o.knock(probe, 30) and probe.calls == []
    o = silent()
    o.failed("fetching", VaultError("HTTP 403", status=403))  # an answer too, not transient
    assert not o.silent


def test_a_probe_answered_lets_the_request_go():
    o, probe = silent(), Probes()
    assert not o.knock(probe, 30) and probe.calls == [30] and o.knocks == 0


def test_a_probe_that_times_out_holds_the_request_back_a_few_times_at_most():
    """A frozen server: held back, knocking again at once; after MAX_KNOCKS probes in vain the
    request goes anyway (a server hanging on sys/health alone must not block everything)."""
    o, probe = silent(), Probes(VaultError("timed out", timed_out=True))
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
    assert not o.knock(Probes(error), 30) and o.knocks == 0


# -- the patience: a request past its timeout, while Vault gives no answer at all ------------

NO_ANSWER = VaultError("GET /v1/sys/health: Vault did not answer in time", timed_out=True)


def test_a_request_waits_on_while_the_probe_gets_no_answer_then_once_more_when_vault_wakes():
    probe = Probes(NO_ANSWER, NO_ANSWER, None)
    wait = Wait(Outage(lambda: 0.0), probe, default=2.0, until=time.monotonic() + 30.0)
    assert wait() == pytest.approx(2.0, abs=0.05)  # frozen: wait on, one timeout at a time
    assert wait() == pytest.approx(2.0, abs=0.05)
    assert wait() == pytest.approx(2.0, abs=0.05)  # woken: the answer queued behind the probe
    assert wait() == 0.0 and len(probe.calls) == 3  # then no more, and no more probes
    assert probe.calls == [pytest.approx(2.0, abs=0.05)] * 3


def test_each_unanswered_probe_is_told_so_that_status_shows_the_wait():
    told = []
    wait = Wait(Outage(lambda: 0.0), Probes(NO_ANSWER, NO_ANSWER, None), default=2.0,
                until=time.monotonic() + 30.0, tell=told.append)
    wait(), wait(), wait()
    assert told == [str(NO_ANSWER)] * 2  # not for the answered one


def test_a_request_waits_only_briefly_when_vault_answers_the_first_probe_at_once():
    """A server that answers while this request hangs (a node or a backend stuck): PAUSE more
    (in case it had just woken), then no more: waiting longer would only delay whatever else
    the daemon must renew."""
    probe = Probes(None)
    wait = Wait(Outage(lambda: 0.0), probe, default=2.0, until=time.monotonic() + 30.0)
    assert wait() == pytest.approx(PAUSE, abs=0.05) and wait() == 0.0 and len(probe.calls) == 1


def test_a_request_waits_twice_as_long_as_a_slow_first_probe():
    """A probe answered only after a while: the server may have woken during it, and the
    request's own answer, queued behind, comes about as late again."""
    wait = Wait(Outage(lambda: 0.0), Probes(None, takes=0.8), default=2.0,
                until=time.monotonic() + 30.0)
    assert 1.55 <= wait() <= 2.0 and wait() == 0.0
    wait = Wait(Outage(lambda: 0.0), Probes(None, takes=0.8), default=1.0,
                until=time.monotonic() + 30.0)
    assert wait() == pytest.approx(1.0, abs=0.05)  # never more than one timeout


def test_a_request_gets_its_grace_when_an_earlier_request_found_vault_silent():
    wait = Wait(silent(), Probes(None), default=2.0, until=time.monotonic() + 30.0)
    assert wait() == pytest.approx(2.0, abs=0.05) and wait() == 0.0


@pytest.mark.parametrize("error", [
    VaultError("cannot reach Vault: Connection refused"),  # restarted: never answers the old one
    RuntimeError("a bug in the probe"),
])
def test_a_probe_failing_otherwise_ends_the_wait(error):
    assert Wait(silent(), Probes(error), default=2.0, until=time.monotonic() + 30.0)() == 0.0


def test_the_wait_never_goes_past_its_end():
    probe = Probes(NO_ANSWER)
    wait = Wait(Outage(lambda: 0.0), probe, default=2.0, until=time.monotonic() + 0.5)
    assert 0 < wait() <= 0.5 and probe.calls[0] <= 0.5  # the probe's timeout too
    wait = Wait(Outage(lambda: 0.0), probe, default=2.0, until=time.monotonic() + 0.0)
    assert wait() == 0.0 and len(probe.calls) == 1  # nothing left: not even a probe
