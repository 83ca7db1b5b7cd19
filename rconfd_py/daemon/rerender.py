"""Re-rendering in the daemon: the templates whose secrets changed, gathered into one flush,
and the retries of a template whose render or write failed.

A burst of changes (a re-login re-issuing several secrets) is one flush: one render, one
`modified` hook and one s6 reload per template. A failed template keeps its previous files and
is retried with backoff racing the expiry of what those files hold (policy.render_failed); a
retry renders with the secrets held, it never fetches them again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..errors import RconfdError
from ..ledger import SecretEntry, TemplateEntry
from . import policy
from .timers import FLUSH, Kind, Timer, Timers

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..pipeline import Pipeline
    from ..refs import SecretRef

log = logging.getLogger(__name__)
FLUSH_DELAY = 0.2  # gather a burst of changes into one render + one hook run


class Rerender:
    def __init__(self, pipeline: Pipeline, timers: Timers, clock: Callable[[], float],
                 rng: policy.Rng):
        self.pipeline = pipeline
        self.ledger = pipeline.ledger
        self.timers = timers
        self.clock = clock
        self.rng = rng
        self.dirty: set = set()  # templates to render at the next flush

    def mark(self, ref: SecretRef) -> None:
        """`ref` changed: its templates are rendered at the next flush."""
        self.dirty.update(self.pipeline.config.by_ref.get(ref, ()))
        if self.dirty and FLUSH not in self.timers:
            self.timers.set(FLUSH, self.clock() + FLUSH_DELAY)

    def flush(self, _=None) -> None:
        self.timers.cancel(FLUSH)
        dirty, self.dirty = self.dirty, set()
        for t in self.pipeline.config.templates:
            if t not in dirty:
                continue
            missing = [r for r in t.refs if not r.dynamic and not self.ledger.has(r)]
            if missing:
                log.error("%s: not rendered, secret %s unavailable", t.label, missing[0])
                continue
            stage = "render"
            try:
                files = self.pipeline.render(t)
                stage = "write"
                result = self.pipeline.write(t, files)
            except Exception as e:  # the previous files stay; retried with backoff
                self._failed(t, e, stage)
                continue
            self._written(t)
            self.pipeline.announce(t, result, first=False)

    def retry(self, t) -> None:
        """A failed template's retry timer: render it again with the secrets held."""
        if t in self.ledger.templates:  # not dropped by a reload
            self.dirty.add(t)
            self.flush()

    def sources_of(self, t) -> tuple[SecretEntry, ...]:
        return tuple(e for r in t.refs if (e := self.ledger.secrets.get(r)) is not None)

    def _written(self, t) -> None:
        """A successful write (or nothing to write): its files hold the current secrets."""
        entry = self.ledger.templates.get(t)
        if entry is None:
            entry = self.ledger.templates[t] = TemplateEntry()
        elif entry.failures:
            self.timers.cancel(Timer(Kind.RENDER, t))
            log.info("%s: written after %d failed attempt(s)", t.label, entry.failures)
        entry.succeeded()
        entry.next = None
        entry.sources = self.sources_of(t)

    def _failed(self, t, e: Exception, stage: str = "render") -> None:
        """Keep the previous files; retry with backoff racing the death of what they hold
        (slowly for errors that need an operator)."""
        entry = self.ledger.templates.get(t)
        if entry is None:
            entry = self.ledger.templates[t] = TemplateEntry()
        text = (str(e) if isinstance(e, RconfdError)
                else f"internal error rendering {t.label}: {type(e).__name__}: {e}")
        repeated = text == entry.error
        entry.failed_total[stage] += 1
        now = self.clock()
        n = entry.failed(text, now)
        entry.next = plan = policy.render_failed(n, e, now, entry.expires_at, self.rng)
        self.timers.set(Timer(Kind.RENDER, t), plan.at)
        if not repeated:  # once per distinct error, not at every retry
            log.error("%s (previous files kept); retrying in %.1fs", text, plan.at - now,
                      extra={"template": t.label})
            if not isinstance(e, RconfdError):
                log.debug("traceback", exc_info=e)
        else:
            log.debug("%s: still failing (attempt %d); retrying in %.1fs", t.label, n,
                      plan.at - now)
