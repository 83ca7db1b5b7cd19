"""The daemon's thin loop: timers, a select() sleep, signals, and a dispatch table from timer
kind (timers.py) to handler. Each handler calls Vault, records the outcome in the ledger, asks
the policy (policy.py) what to do next and sets the timer it answers; re-rendering is
rerender.py's; the token handlers are tokens.py's. No polling, no threads: near-zero CPU while
idle. Files are never touched until a complete, successful render replaces them.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from contextlib import nullcontext

from ..config import load_config
from ..errors import EXIT_OK, ConfigError, RconfdError, VaultError
from ..ledger import Plan, SecretEntry, TemplateEntry
from ..refs import SecretRef
from ..vault import leases
from . import policy
from .outage import Outage
from .plans import Plans
from .policy import Act
from .renewal import Renewal
from .reporting import Reporting
from .rerender import Rerender
from .revoke import revoke_all
from .signals import Signals, Stop
from .timers import FIRST, FLUSH, POLL, STATUS, Kind, Timer, Timers
from .tokens import TokenHandlers

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..pipeline import Pipeline

log = logging.getLogger(__name__)


class Daemon(TokenHandlers):
    def __init__(self, pipeline: Pipeline, rng: policy.Rng = random.uniform,
                 clock: Callable[[], float] | None = None):
        self.pipeline = pipeline
        self.ledger = pipeline.ledger
        self.settings = pipeline.settings
        self.clock = clock or pipeline.clock
        self.rng = rng
        self.timers = Timers()
        self.rerender = Rerender(pipeline, self.timers, self.clock, rng)
        self.outage = Outage(lambda: self.clock())
        self.plans = Plans(self.ledger, self.timers, lambda: self.clock(), rng)
        self.signals = Signals()
        self.renewal = Renewal(self.ledger, self.settings, self.signals, lambda: self.clock())
        self._handlers: dict[Kind, Callable] = {
            Kind.TOKEN: self._token_due, Kind.SECRET: self._secret_due, Kind.POLL: self._poll,
            Kind.RENDER: self.rerender.retry, Kind.FLUSH: self.rerender.flush,
            Kind.FIRST: lambda _: None, Kind.STATUS: lambda _: self.reporting.report()}
        self.reporting = Reporting(self.ledger, self.settings, self.timers, self.clock,
                                   lambda: self.outage.since)

    # -- main loop -------------------------------------------------------------------------
    def run(self) -> int:
        self.reporting.start()
        self.signals.install()
        try:
            try:
                first = self._first_pass()
            except ConfigError:  # exits 2: still revoke what earlier attempts fetched
                if self.settings.revoke_on_exit:
                    revoke_all(self.pipeline)
                raise
            self.pipeline.save_state()  # after readiness: never delays it
            if not first:
                raise Stop()  # by a signal: what it fetched is revoked below if asked
            if not self.ledger.leased() and not self.settings.poll:
                log.info("Exiting daemon mode: no leased secrets used")
                self.reporting.stop()
                if self.settings.revoke_on_exit:
                    revoke_all(self.pipeline)  # the tokens: nothing will use them again
                if self.settings.idle_exec:
                    self._idle_exec(self.settings.idle_exec)
                return EXIT_OK
            self._schedule_all()
            log.info("daemon: watching %d leased secret(s), %d token(s)%s",
                     len(self.ledger.leased()), len(self.ledger.tokens),
                     f", polling every {self.settings.poll:g}s" if self.settings.poll else "")
            while not self.signals.stopping:
                if self.signals.take_reload():
                    self._guard(None, self._reload)
                for key in self.timers.pop_due(self.clock()):
                    self._dispatch(key)
                    if self.signals.stopping:
                        break
                if self.timers.first() == FLUSH and not self.signals.stopping:
                    self._dispatch(FLUSH)  # no timer can join this burst: no extra wake-up
                if not self.signals.stopping:
                    self.pipeline.save_state()  # when a handler changed the ledger
                    self.reporting.report()
                    self._sleep()
        except Stop:
            pass
        finally:
            self.signals.restore()
            self.reporting.stop()
        log.info("daemon: stopping")
        if self.settings.revoke_on_exit:
            revoke_all(self.pipeline)
        else:
            self.pipeline.save_state()
        return EXIT_OK

    def _idle_exec(self, command: str) -> None:
        """Become `command` (s6-pause): the service stays up and ready without rconfd-py's
        memory, and s6's signals keep reaching the supervised process itself."""
        self.pipeline.close()
        try:
            self.signals.exec_instead(command)
        except OSError as e:
            log.error("cannot run --idle-exec %s: %s; exiting 0", command, e.strerror)

    def _first_pass(self) -> bool:
        """pipeline.first_pass, retried until it succeeds: a daemon that exited on a transient
        failure would be restarted by s6 every second and mint credentials each time. Config
        errors still exit (exit code 2). Return False when stopped by a signal."""
        last = ""
        while not self.signals.stopping:
            if self.signals.take_reload():
                try:
                    self.pipeline.use_config(load_config(self.settings.dir))
                except RconfdError as e:
                    log.error("reload failed, keeping the current config: %s", e)
            try:
                self.pipeline.first_pass(network=lambda: self.signals)
                self.outage.succeeded()
                self.ledger.first.succeeded()
                self.ledger.first.next = None
                self.timers.cancel(FIRST)
                return True
            except ConfigError:
                raise
            except RconfdError as e:
                first, now = self.ledger.first, self.clock()
                attempt = first.failed(str(e), now, policy.timed_out(e, self.settings.timeout))
                when = policy.not_before(first, policy.retry_at(attempt, now, e, None, self.rng),
                                         now)
                self.ledger.first.next = Plan("first render", when)
                if isinstance(e, VaultError) and e.transient:
                    self.outage.failed("first render", e)  # one line when the outage starts
                elif str(e) != last:  # once per distinct error, not at every retry
                    log.error("%s", e)
                last, repeated = str(e), str(e) == last
                (log.debug if repeated else log.info)(
                    "first render failed (attempt %d); next attempt in %.1fs (SIGHUP retries "
                    "now)", attempt, when - self.clock())
                self.timers.set(FIRST, when)
            self.pipeline.save_state()  # what this attempt fetched is not minted again
            self.reporting.report()
            self._wait_first()
        return False

    def _wait_first(self) -> None:
        """Sleep until the first pass's retry is due or a signal arrives; a status write held
        back (STATUS) is done on the way, without retrying early."""
        while True:
            self._sleep()
            due = self.timers.pop_due(self.clock())
            if STATUS in due:
                self.reporting.report()
            if FIRST in due or FIRST not in self.timers or self.signals.stopping \
                    or self.signals.reload_requested:
                return

    def _dispatch(self, key: Timer) -> None:
        vault = key.kind == Kind.TOKEN or (key.kind == Kind.SECRET and key.subject.backend ==
                                           "vault")
        if vault and self._knocked(key):
            return
        with self._patient(key) if vault else nullcontext():
            failed = self._guard(key.subject, self._handlers[key.kind])
        if failed and key.kind in (Kind.TOKEN, Kind.SECRET, Kind.RENDER) and \
                key not in self.timers:
            self.timers.set(key, self.clock() + policy.PERMANENT_CAP)  # never lose a timer

    def _entry(self, key: Timer):
        """The ledger entry of a token or secret timer (None: not held yet)."""
        return (self.ledger.tokens if key.kind == Kind.TOKEN else self.ledger.secrets).get(
            key.subject)

    def _patient(self, key: Timer):
        """While a token or secret timer's requests run: each waits past its timeout while
        Vault gives no answer at all (outage.Wait), up to policy.longest_wait."""
        entry = self._entry(key)
        longest = policy.longest_wait(self.settings.timeout, self.clock(), entry)

        def silent(why: str) -> None:  # status and metrics show the wait, not a healthy entry
            if entry is not None:
                entry.waiting(f"waiting for an answer: {why}", self.clock())
            self.reporting.report()

        return self.pipeline.vault_patience(self.outage.waiting(
            self.pipeline.tokens.client, self.settings.timeout, longest, silent))

    def _knocked(self, key: Timer) -> bool:
        """True if Vault gave no answer to the probe before this request (outage.knock): the
        request is held back, its timer due again at once."""
        if not self.outage.silent:
            return False
        with self.signals:
            held = self.outage.knock(self.pipeline.tokens.client, self.renewal.wait_timeout())
        if held:
            now = self.clock()
            self.timers.set(key, now)
            entry = self._entry(key)
            if entry is not None:  # failing too, as status and metrics tell
                entry.failed(f"held back: {self.outage.probe_error}", now, entry.timed_out)
        return held

    def _guard(self, subject: object, handler: Callable) -> bool:
        """Run a handler; never exit on an error: log it, the timers go on. True if it
        failed."""
        try:
            handler(subject)
        except Stop:
            raise
        except Exception as e:
            if isinstance(e, RconfdError):
                log.error("%s", e)
            else:  # a bug must not kill the daemon and leave leases to expire
                log.error("internal error in %s: %s: %s", getattr(handler, "__name__", "?"),
                          type(e).__name__, e)
                log.debug("traceback", exc_info=True)
            return True
        return False

    def _sleep(self) -> None:
        deadline = self.timers.next_deadline()
        self.signals.sleep(None if deadline is None else max(0.0, deadline - self.clock()))

    def _schedule_all(self) -> None:
        """After the first pass: the plans, --poll, and each template's sources."""
        self.plans.all()
        if self.settings.poll:
            self.timers.set(POLL, self.clock() + self.settings.poll)
        for t in self.pipeline.config.templates:  # the first pass wrote them all
            entry = self.ledger.templates.get(t) or TemplateEntry()  # its render time, files
            entry.sources = self.rerender.sources_of(t)
            self.ledger.templates[t] = entry

    # -- shared by token and lease renewals -------------------------------------------------
    def _renewal_retried(self, entry, e: VaultError, plan_of, what: str, set_plan) -> bool:
        """A renewal failed: True if the policy retries it (the outage noted, the retry planned
        with `set_plan`); False if Vault refused it, for the caller to replace what it renews."""
        plan = plan_of(entry, e, self.clock(), self.rng)
        retried = plan.act == Act.RENEW
        self.ledger.count("renewal", "failed" if retried else "refused")
        if retried:
            self.outage.failed(what, e)
            set_plan(entry, plan)
        return retried

    # -- secrets ---------------------------------------------------------------------------
    def _secret_due(self, ref: SecretRef) -> None:
        entry = self.ledger.secrets.get(ref)
        if entry is None:
            return
        now = self.clock()
        act = policy.due(entry, now)
        if act == Act.REFETCH:
            self._refetch(ref)
        elif act == Act.RENEW and (later := policy.renew_after_relogin(
                entry, self.ledger.tokens.get(ref.role), now,
                self.pipeline.tokens.supplied is not None)) is not None:
            self.plans.secret(entry, Plan(Act.RENEW, later))  # the re-login replaces it
        else:
            self._renew_lease(entry, check=act == Act.CHECK)

    def _renew_lease(self, entry: SecretEntry, check: bool = False) -> None:
        """sys/leases/renew; `check`: only look the lease up (its last renewal timed out)."""
        ref, store = entry.ref, self.pipeline.tokens
        try:
            def token() -> str:  # inside the interruptible call: it may log in
                return store.get(ref.role).client_token

            granted, ttl, sent, now = self.renewal.send(
                entry, str(ref), None if check else
                lambda t, go: leases.renew_lease(store.client, token(), entry.lease_id,
                                                 entry.asked, timeout=t, commit=go),
                lambda t: leases.lookup_lease(store.client, token(), entry.lease_id, timeout=t),
                400)
        except VaultError as e:
            if not self._renewal_retried(entry, e, policy.lease_renewal_failed,
                                         f"{ref}: renewing", self.plans.secret):
                log.info("%s: lease renewal %s (%s): fetching a new secret", ref,
                         "not sent" if e.withheld else "refused", e)
                entry.renew = False
                self._refetch(ref)
            return
        if ttl is not None:
            granted, sent = ttl, now
        self.outage.succeeded()
        entry.succeeded()
        entry.expires_at = sent + granted  # the grant began at most when the request was sent
        self.ledger.changed()
        plan = policy.lease_checked(entry, granted, now, self.rng) if check else \
            policy.lease_renewed(entry, granted, now, self.rng, start=sent)
        if check:
            log.info("%s: the renewal that timed out %s", ref, "landed" if
                     plan.act == Act.RENEW else "did not land: fetching a new secret")
        if plan.act == Act.REFETCH:
            entry.renew = False
            if not check:
                log.info("%s: lease reaches its max TTL in %.0fs: new secret in %.0fs", ref,
                         granted, plan.at - now)
        else:
            log.debug("%s: lease renewed for %.0fs", ref, granted, extra=_fields(ref, granted))
        self.plans.secret(entry, plan)

    def _refetch(self, ref: SecretRef, forced: bool = False) -> None:
        """Fetch a new value (a new credential for dynamic secrets), rate-limited per secret."""
        entry = self.ledger.secrets.get(ref)
        now = self.clock()
        earliest = policy.mint_allowed_at(entry, now, forced)
        if entry is not None and earliest > now:
            log.warning("%s: not minting a new credential before %.0fs (rate limit)", ref,
                        earliest - now)
            self.plans.secret(entry, Plan(Act.REFETCH, earliest))
            return
        timeout = self.renewal.wait_timeout(entry)
        with self.signals, self.pipeline.vault_timeout(timeout):
            fetched, errors = self.pipeline.fetch_each([ref])
        self.ledger.observe("fetch", self.clock() - now)
        self.ledger.count("refetch", "failed" if errors else "ok")
        self.plans.new_tokens()
        if errors:
            e = errors[ref]
            self.outage.failed(str(ref), e)
            if ref.backend == "vault" and policy.relogin_after_fetch_error(
                    e, self.ledger.tokens.get(ref.role),
                    entry.error_since if entry is not None else None):
                self.plans.role(ref.role, Plan(Act.RELOGIN, now))  # the token may be gone
            if entry is not None:
                entry.failed(str(e), now, policy.timed_out(e, timeout))
                self.plans.secret(entry, policy.fetch_failed(entry, e, now, self.rng))
            return
        if ref.backend == "vault":  # an env, file or exe success says nothing of Vault
            self.outage.succeeded()
        secret = fetched[ref]
        changed = entry is None or entry.secret is None or entry.secret.value != secret.value
        entry = self.ledger.remember(secret, now)
        self.plans.secret(entry, policy.secret_plan(entry, now, self.rng))
        if changed:
            if forced:
                log.info("%s: new secret (re-issued)", ref, extra=_fields(ref))
            else:  # a planned rotation: at info, its "wrote" line says what changed
                log.debug("%s: new secret", ref, extra=_fields(ref))
            self.rerender.mark(ref)

    def _poll(self, _=None) -> None:
        """--poll: re-read static secrets; re-render only what really changed."""
        now = self.clock()
        self.timers.set(POLL, now + self.settings.poll)
        static = [r for r, e in self.ledger.secrets.items()
                  if e.secret is not None and not e.leased and not r.dynamic]
        with self.signals:
            fetched, errors = self.pipeline.fetch_each(static)
        for e in errors.values():
            self.outage.failed("polling", e)
        if not errors and any(r.backend == "vault" for r in fetched):
            self.outage.succeeded()
        for ref, secret in fetched.items():
            if self.ledger.value(ref) != secret.value:
                log.info("%s: changed at its source", ref, extra=_fields(ref))
                self.ledger.remember(secret, now)
                self.rerender.mark(ref)

    # -- reload --------------------------------------------------------------------------
    def _reload(self, _=None) -> None:
        """SIGHUP: re-read the config dir; keep valid leases, fetch only new secrets."""
        log.info("SIGHUP: reloading %s", self.settings.dir)
        try:
            config = load_config(self.settings.dir)
        except RconfdError as e:
            log.error("reload failed, keeping the current config: %s", e)
            return
        self.pipeline.use_config(config)
        wanted = {r for r in config.by_ref if not r.dynamic}
        for ref in [r for r in self.ledger.secrets if r not in wanted]:
            self.ledger.forget(ref)
            self.timers.cancel(Timer(Kind.SECRET, ref))
        new = [r for r in wanted if not self.ledger.has(r)]
        with self.signals:
            fetched, errors = self.pipeline.fetch_each(new)
        self.plans.new_tokens()
        now = self.clock()
        for secret in fetched.values():
            entry = self.ledger.remember(secret, now)
            self.plans.secret(entry, policy.secret_plan(entry, now, self.rng))
        for ref, e in errors.items():  # retried through the usual timer, as a new secret
            self.outage.failed("reload", e)
            entry = self.ledger.want(ref)
            entry.failed(str(e), now)
            self.plans.secret(entry, policy.fetch_failed(entry, e, now, self.rng))
        previous = {(t.source, t.name): entry for t, entry in self.ledger.templates.items()}
        for t in self.ledger.templates:
            self.timers.cancel(Timer(Kind.RENDER, t))
        # the files on disk are still those of the previous templates (same file, same key)
        self.ledger.templates = {
            t: _carried(previous.get((t.source, t.name))) for t in config.templates}
        self.rerender.dirty.update(config.templates)
        self.rerender.flush()


def _fields(ref, ttl: float | None = None) -> dict:
    """The structured fields of a log line about `ref` (--log-format json)."""
    fields = {"path": str(ref), "role": ref.role or None}
    if ttl is not None:
        fields["ttl"] = ttl
    return fields


def _carried(prev: TemplateEntry | None) -> TemplateEntry:
    """A reloaded template's entry: its files on disk are still those of the previous one."""
    entry = TemplateEntry(prev.sources if prev is not None else ())
    if prev is not None:
        entry.rendered_at, entry.files, entry.hook = prev.rendered_at, prev.files, prev.hook
        entry.failed_total = prev.failed_total  # a counter ("ever", metrics): not reset
    return entry
