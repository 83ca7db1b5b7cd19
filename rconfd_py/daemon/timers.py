"""Timer keys and the deadline heap of the daemon loop.

A key is a `Timer(kind, subject)`: a kind from `Kind` and what it is about (a role, a secret ref,
a template, or None). The loop dispatches on the kind through a table.
"""

from __future__ import annotations

import heapq
from collections import namedtuple
from enum import Enum


class Kind(Enum):
    TOKEN = "token"  # subject: role; the entry's plan says renew or log in again
    SECRET = "secret"  # subject: ref; renew its lease or fetch it anew
    RENDER = "render"  # subject: template; retry a failed render or write
    FLUSH = "flush"  # render the templates whose secrets changed (a burst is one flush)
    POLL = "poll"  # --poll: re-read static secrets
    FIRST = "first"  # retry a failed first pass
    STATUS = "status"  # write the status file held back by its once-a-second limit


Timer = namedtuple("Timer", "kind subject", defaults=(None,))
FLUSH = Timer(Kind.FLUSH)
POLL = Timer(Kind.POLL)
FIRST = Timer(Kind.FIRST)
STATUS = Timer(Kind.STATUS)


class Timers:
    """Deadlines by key; scheduling a key again replaces its previous deadline."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Timer]] = []
        self._live: dict[Timer, int] = {}
        self._seq = 0

    def set(self, key: Timer, when: float) -> None:
        self._seq += 1
        self._live[key] = self._seq
        heapq.heappush(self._heap, (when, self._seq, key))

    def cancel(self, key: Timer) -> None:
        self._live.pop(key, None)

    def __contains__(self, key: Timer) -> bool:
        return key in self._live

    def _drop_stale(self) -> None:
        while self._heap and self._live.get(self._heap[0][2]) != self._heap[0][1]:
            heapq.heappop(self._heap)

    def next_deadline(self) -> float | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def first(self) -> Timer | None:
        """The key due first."""
        self._drop_stale()
        return self._heap[0][2] if self._heap else None

    def pop_due(self, now: float) -> list[Timer]:
        due = []
        while (d := self.next_deadline()) is not None and d <= now:
            _, _, key = heapq.heappop(self._heap)
            del self._live[key]
            due.append(key)
        return due
