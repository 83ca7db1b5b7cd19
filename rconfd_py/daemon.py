"""Daemon mode (-D): keep every rendered secret alive for as long as the process runs.

After the first pass (engine.first_pass) the daemon owns a timer per thing that expires:

- ("token", role): renew the role's token with renew-self at ~2/3 of its TTL; when renewal can
  no longer extend it (max TTL near, not renewable, 403), rotate: log in again (re-reading the
  JWT file), re-issue under the new token the leased secrets created under the old one, render,
  and only then let the old token go (it is not renewed any more and expires on its own).
- ("secret", ref): renew a renewable lease at ~2/3 of what remains; fetch a new secret at
  85-90 % of a non-renewable lease, a certificate's lifetime, or a short renewal grant.
- ("poll",): with --poll, re-read static secrets and re-render on real change.
- ("flush",): render the templates whose secrets changed, write what changed, then one
  `modified` hook and one s6 reload per template: a burst of changes is one flush. It runs
  FLUSH_DELAY after the first change, or at once when no other timer falls before that.
- ("render", template): retry a template whose render or write failed (disk full, ...), with
  backoff racing the expiry of the leases its files on disk were rendered from; it re-renders
  with the secrets held, it never fetches them again.

The loop sleeps in select() until the next deadline or a signal: no polling, no threads.
Transient Vault failures are retried with backoff (vault/leases.py); files are never touched
until a complete, successful render replaces them.
"""

from __future__ import annotations

import heapq
import logging
import os
import select
import signal
import time
from collections import deque
from collections.abc import Callable, Hashable

from .config import load_config
from .engine import Engine
from .errors import EXIT_OK, ConfigError, OutputError, RconfdError, VaultError
from .logs import redactor
from .refs import SecretRef
from .secret import Secret
from .vault import leases
from .vault.auth import Token, renew_self, revoke_self

log = logging.getLogger(__name__)
FLUSH_DELAY = 0.2  # gather a burst of changes into one render + one hook run
EXIT_TIMEOUT = 2.0  # per Vault call while revoking on exit
PERMANENT_CAP = 60.0  # retry spacing for errors that need an operator (403 on a path, ...)


class Stop(BaseException):
    """Raised from the signal handler to abandon a blocked Vault call on SIGTERM/SIGINT."""


class _VaultCall:
    """The context of Daemon._vault_call (one object, reused: no generator per call)."""

    __slots__ = ("daemon",)

    def __init__(self, daemon: Daemon):
        self.daemon = daemon

    def __enter__(self) -> None:
        self.daemon._interruptible = True  # first: a SIGTERM from now on raises Stop
        if self.daemon.stopping:
            self.daemon._interruptible = False
            raise Stop()

    def __exit__(self, *exc) -> None:
        self.daemon._interruptible = False


class Timers:
    """Deadlines by key; scheduling a key again replaces its previous deadline."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable]] = []
        self._live: dict[Hashable, int] = {}
        self._seq = 0

    def set(self, key: Hashable, when: float) -> None:
        self._seq += 1
        self._live[key] = self._seq
        heapq.heappush(self._heap, (when, self._seq, key))

    def cancel(self, key: Hashable) -> None:
        self._live.pop(key, None)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._live

    def _drop_stale(self) -> None:
        while self._heap and self._live.get(self._heap[0][2]) != self._heap[0][1]:
            heapq.heappop(self._heap)

    def next_deadline(self) -> float | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def first(self) -> Hashable | None:
        """The key due first."""
        self._drop_stale()
        return self._heap[0][2] if self._heap else None

    def pop_due(self, now: float) -> list[Hashable]:
        due = []
        while (d := self.next_deadline()) is not None and d <= now:
            _, _, key = heapq.heappop(self._heap)
            del self._live[key]
            due.append(key)
        return due


class Tracked:
    """A secret that expires, and what the daemon knows of its lease."""

    __slots__ = ("asked", "expires_at", "failures", "mints", "renew", "secret")

    def __init__(self, secret: Secret, renew: bool, asked: float, expires_at: float,
                 failures: int = 0):
        self.secret = secret
        self.renew = renew  # renew the lease (True) or fetch a new secret when due (False)
        self.asked = asked  # the lease duration to ask for at each renewal
        self.expires_at = expires_at
        self.failures = failures
        self.mints: deque = deque(maxlen=4)  # when its last credentials were minted

    @classmethod
    def of(cls, secret: Secret) -> Tracked:
        lease = secret.lease
        renew = bool(lease and lease.id and lease.renewable and lease.duration > 0)
        return cls(secret=secret, renew=renew, asked=lease.duration if lease else 0.0,
                   expires_at=secret.expires_at or secret.fetched_at)


class Rendering:
    """A template's files on disk, and the failed attempts to replace them."""

    __slots__ = ("error", "failures", "leases")

    def __init__(self, leases: tuple[Tracked, ...] = ()):
        # the leases its files on disk were rendered from: the same Tracked objects the daemon
        # renews (a renewal extends them); a replaced one keeps the expiry of the old lease
        self.leases = leases
        self.failures = 0  # consecutive failed renders or writes
        self.error = ""  # the last failure's message (logged once while it repeats)

    @property
    def expires_at(self) -> float | None:
        """When the first credential in its files on disk dies (None: none expires, or no
        successful write yet)."""
        return min((t.expires_at for t in self.leases), default=None)


class Daemon:
    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time):
        self.engine = engine
        self.clock = clock
        self.timers = Timers()
        self.tracked: dict[SecretRef, Tracked] = {}
        self.token_ttl: dict[str, float] = {}  # TTL asked at each renew-self, per role
        self.token_failures: dict[str, int] = {}
        self.dirty: set = set()  # templates to re-render
        self.rendering: dict = {}  # template -> Rendering
        self.outage_since: float | None = None
        self.stopping = False
        self.reload_requested = False
        self._interruptible = False
        self._wake_r = self._wake_w = -1
        self._vault_call_marker = _VaultCall(self)

    # -- main loop -------------------------------------------------------------------------
    def run(self) -> int:
        self._install_signals()
        try:
            if not self._first_pass():
                raise Stop()  # by a signal: what it fetched is revoked below if asked
            leased = any(s.leased for s in self.engine.secrets.values())
            if not leased and not self.engine.settings.poll:
                log.info("Exiting daemon mode: no leased secrets used")
                if self.engine.settings.revoke_on_exit:
                    self._revoke_all()  # the tokens: nothing will use them again
                if self.engine.settings.idle_exec:
                    self._idle_exec(self.engine.settings.idle_exec)
                return EXIT_OK
            self._schedule_all()
            log.info("daemon: watching %d leased secret(s), %d token(s)%s", len(self.tracked),
                     len(self.token_ttl),
                     f", polling every {self.engine.settings.poll:g}s"
                     if self.engine.settings.poll else "")
            while not self.stopping:
                if self.reload_requested:
                    self.reload_requested = False
                    self._dispatch(("reload",))
                for key in self.timers.pop_due(self.clock()):
                    self._dispatch(key)
                    if self.stopping:
                        break
                if self.timers.first() == ("flush",) and not self.stopping:
                    self._dispatch(("flush",))  # no timer can join this burst: no extra wake-up
                if not self.stopping:
                    self._sleep()
        except Stop:
            pass
        finally:
            self._restore_signals()
        log.info("daemon: stopping")
        if self.engine.settings.revoke_on_exit:
            self._revoke_all()
        return EXIT_OK

    def _idle_exec(self, command: str) -> None:
        """Become `command` (s6-pause): the service stays up and ready without rconfd-py's
        memory, and s6's signals keep reaching the supervised process itself."""
        import shlex

        argv = shlex.split(command)
        log.info("replacing rconfd-py with %s", argv[0])
        self.engine.close()
        for handler in logging.getLogger().handlers:
            handler.flush()
        self._restore_signals()
        try:
            os.execvp(argv[0], argv)
        except OSError as e:
            log.error("cannot run --idle-exec %s: %s; exiting 0", argv[0], e.strerror)
            self._install_signals()  # run()'s finally restores them

    def _first_pass(self) -> bool:
        """engine.first_pass, retried until it succeeds: a daemon that exited on a transient
        failure would be restarted by s6 every second and mint credentials each time. Config
        errors still exit (exit code 2). Return False when stopped by a signal."""
        from .engine import first_pass

        attempt = 0
        while not self.stopping:
            if self.reload_requested:
                self.reload_requested = False
                self.engine.config = load_config(self.engine.settings.dir)
            try:
                first_pass(self.engine, network=self._vault_call)
                self._succeeded()
                self.timers.cancel(("first",))
                return True
            except ConfigError:
                raise
            except RconfdError as e:
                attempt += 1
                self._failed("first render", e)
                when = self._retry_at(attempt, self.clock(), e)
                log.info("first render failed; next attempt in %.0fs (SIGHUP retries now)",
                         when - self.clock())
                self.timers.set(("first",), when)
            self._sleep()
            self.timers.pop_due(self.clock())
        return False

    def _dispatch(self, key) -> None:
        kind = key[0]
        try:
            if kind == "token":
                self._renew_token(key[1])
            elif kind == "rotate":
                self._rotate(key[1])
            elif kind == "secret":
                self._service_secret(key[1])
            elif kind == "poll":
                self._poll()
            elif kind == "flush":
                self._flush()
            elif kind == "render":
                self._retry_render(key[1])
            elif kind == "reload":
                self._reload()
        except Stop:
            raise
        except Exception as e:  # never exit on an error: log it, the timers go on
            if isinstance(e, RconfdError):
                log.error("%s", e)
            else:  # a bug must not kill the daemon and leave leases to expire
                log.error("internal error in %s: %s: %s", kind, type(e).__name__, e)
                log.debug("traceback", exc_info=True)
            if kind in ("token", "rotate", "secret", "render") and key not in self.timers:
                self.timers.set(key, self.clock() + PERMANENT_CAP)  # never lose a timer

    def _sleep(self) -> None:
        deadline = self.timers.next_deadline()
        timeout = None if deadline is None else max(0.0, deadline - self.clock())
        try:
            ready, _, _ = select.select([self._wake_r], [], [], timeout)
        except InterruptedError:
            return
        if ready:
            try:
                while os.read(self._wake_r, 512):
                    pass
            except BlockingIOError:
                pass

    # -- signals ---------------------------------------------------------------------------
    def _install_signals(self) -> None:
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._old_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)

        def stop(signum, frame):
            self.stopping = True
            if self._interruptible:  # a Vault call is blocking: abandon it now
                raise Stop()

        def hup(signum, frame):
            self.reload_requested = True

        self._old_handlers = {s: signal.signal(s, h) for s, h in (
            (signal.SIGTERM, stop), (signal.SIGINT, stop), (signal.SIGHUP, hup))}

    def _restore_signals(self) -> None:
        for s, h in self._old_handlers.items():
            signal.signal(s, h)
        signal.set_wakeup_fd(self._old_wakeup)
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _vault_call(self) -> _VaultCall:
        """`with self._vault_call():` marks a blocking Vault call: SIGTERM may abandon it
        (never a file write)."""
        return self._vault_call_marker

    # -- scheduling ------------------------------------------------------------------------
    def _schedule_all(self) -> None:
        now = self.clock()
        store = self.engine.sources.vault
        for tok in store.tokens() if store else ():
            self.token_ttl[tok.role] = tok.ttl
            self._schedule_token(tok, now)
        for secret in self.engine.secrets.values():
            if secret.leased:
                self._track(secret, now)
        if self.engine.settings.poll:
            self.timers.set(("poll",), now + self.engine.settings.poll)
        for t in self.engine.config.templates:  # the first pass wrote them all
            self.rendering[t] = Rendering(self._leases_of(t))

    def _schedule_new_tokens(self) -> None:
        """Roles first logged in after the first pass (a reload, a retried secret)."""
        now = self.clock()
        for tok in self.engine.sources.vault.tokens() if self.engine.sources.vault else ():
            if tok.role not in self.token_ttl:
                self.token_ttl[tok.role] = tok.ttl
                self._schedule_token(tok, now)

    def _schedule_token(self, tok: Token, now: float) -> None:
        if not tok.ttl:  # a token that never expires (root, periodic without TTL)
            return
        if tok.renewable:
            self.timers.set(("token", tok.role), leases.renew_at(now, tok.issued_at, tok.ttl))
        else:
            self.timers.set(("rotate", tok.role), leases.refetch_at(now, tok.issued_at, tok.ttl))

    def _track(self, secret: Secret, now: float) -> None:
        t = self.tracked[secret.ref] = Tracked.of(secret)
        length = t.expires_at - secret.fetched_at
        when = (leases.renew_at if t.renew else leases.refetch_at)(now, secret.fetched_at, length)
        self.timers.set(("secret", secret.ref), when)
        log.debug("%s: %s in %.1fs (valid %.0fs)", secret.ref,
                  "renew" if t.renew else "new secret", when - now, length)

    def _mark_dirty(self, ref: SecretRef) -> None:
        self.dirty.update(self.engine.config.refs().get(ref, ()))
        if self.dirty and ("flush",) not in self.timers:
            self.timers.set(("flush",), self.clock() + FLUSH_DELAY)

    # -- outage bookkeeping ----------------------------------------------------------------
    def _failed(self, what: str, e: RconfdError) -> None:
        if isinstance(e, VaultError) and e.transient:
            if self.outage_since is None:
                self.outage_since = self.clock()
                log.warning("Vault unavailable (%s); retrying with backoff, files are kept as "
                            "they are", e)
            else:
                log.debug("%s: still failing: %s", what, e)
        else:
            log.error("%s", e)

    def _succeeded(self) -> None:
        if self.outage_since is not None:
            log.info("Vault available again after %.0fs", self.clock() - self.outage_since)
            self.outage_since = None

    @staticmethod
    def _retry_at(attempt: int, now: float, e: BaseException, deadline: float | None = None
                  ) -> float:
        """Transient Vault failures and failed writes (disk full, EACCES: they may heal any
        second): backoff racing the deadline. Anything else needs an operator: slower
        retries, up to once a minute."""
        if isinstance(e, OutputError) or (isinstance(e, VaultError) and e.transient):
            return leases.backoff(attempt, now, deadline)
        return now + min(PERMANENT_CAP, 2.0 ** attempt)

    # -- tokens ----------------------------------------------------------------------------
    def _renew_token(self, role: str) -> None:
        store = self.engine.tokens
        tok = store.get(role)
        now = self.clock()
        try:
            with self._vault_call():
                new = renew_self(store.client, tok, self.token_ttl.get(role, tok.ttl))
        except VaultError as e:
            if e.transient:
                self._failed(f"renewing the token of role {role}", e)
                n = self.token_failures[role] = self.token_failures.get(role, 0) + 1
                self.timers.set(("token", role), leases.backoff(n, now, tok.expires_at))
                return
            log.info("role %s: token renewal refused (%s): logging in again", role, e)
            self._rotate(role)
            return
        self._succeeded()
        self.token_failures[role] = 0
        store.put(new)
        if not new.renewable or leases.grant_is_short(self.token_ttl[role], new.ttl):
            log.info("role %s: token reaches its max TTL in %.0fs: logging in again", role,
                     new.ttl)
            self._rotate(role)
        else:
            log.debug("role %s: token renewed for %.0fs", role, new.ttl)
            self._schedule_token(new, now)

    def _rotate(self, role: str) -> None:
        """Log in again, re-issue what died with the old token, render before letting it go."""
        store = self.engine.tokens
        old = store.get(role)
        now = self.clock()
        try:
            with self._vault_call():
                new = store.relogin(role)
        except (VaultError, ConfigError) as e:
            self._failed(f"logging in as role {role}", e)
            n = self.token_failures[role] = self.token_failures.get(role, 0) + 1
            self.timers.set(("rotate", role), self._retry_at(n, now, e, old.expires_at))
            return
        self._succeeded()
        redactor.add(("token", role), new.client_token)
        self.token_failures[role] = 0
        self.token_ttl[role] = new.ttl
        self.timers.cancel(("rotate", role))
        self._schedule_token(new, now)
        doomed = [t for t in self.tracked.values() if t.secret.role == role
                  and t.secret.lease and t.secret.lease.id and t.secret.accessor == old.accessor]
        if doomed:
            log.info("role %s: re-issuing %d leased secret(s) under the new token", role,
                     len(doomed))
        for t in doomed:
            self._refetch(t.secret.ref, forced=True)
        if self.dirty:
            self._flush()  # the new secrets are on disk before the old token expires

    # -- secrets ---------------------------------------------------------------------------
    def _service_secret(self, ref: SecretRef) -> None:
        t = self.tracked.get(ref)
        if t is None:
            return
        if t.renew and self.clock() < t.expires_at:
            self._renew_lease(t)
        else:
            self._refetch(ref)

    def _renew_lease(self, t: Tracked) -> None:
        ref, lease = t.secret.ref, t.secret.lease
        store = self.engine.tokens
        now = self.clock()
        try:
            with self._vault_call():
                granted = leases.renew_lease(store.client, store.get(ref.role).client_token,
                                             lease.id, t.asked)
        except VaultError as e:
            if e.transient:
                self._failed(f"{ref}: renewing", e)
                t.failures += 1
                self.timers.set(("secret", ref), leases.backoff(t.failures, now, t.expires_at))
                return
            log.info("%s: lease renewal refused (%s): fetching a new secret", ref, e)
            t.renew = False
            self._refetch(ref)
            return
        self._succeeded()
        t.failures = 0
        t.expires_at = now + granted
        if leases.grant_is_short(t.asked, granted):
            t.renew = False
            when = leases.refetch_at(now, now, granted)
            log.info("%s: lease reaches its max TTL in %.0fs: new secret in %.0fs", ref,
                     granted, when - now)
        else:
            when = leases.renew_at(now, now, granted)
            log.debug("%s: lease renewed for %.0fs", ref, granted)
        self.timers.set(("secret", ref), when)

    def _refetch(self, ref: SecretRef, forced: bool = False) -> None:
        """Fetch a new value (a new credential for dynamic secrets), rate-limited per secret."""
        t = self.tracked.get(ref)
        now = self.clock()
        if t is not None and not forced and t.mints:
            earliest = leases.next_mint(list(t.mints), t.asked or (t.expires_at -
                                                                   t.secret.fetched_at))
            if now < earliest:
                log.warning("%s: not minting a new credential before %.0fs (rate limit)", ref,
                            earliest - now)
                self.timers.set(("secret", ref), earliest)
                return
        with self._vault_call():
            fetched, errors = self.engine.fetch_each([ref])
        self._schedule_new_tokens()
        if errors:
            e = errors[ref]
            self._failed(str(ref), e)
            if isinstance(e, VaultError) and e.status == 403 and ref.backend == "vault":
                self.timers.set(("rotate", ref.role), now)  # the token may be gone: log in again
            if t is not None:
                t.failures += 1
                self.timers.set(("secret", ref), self._retry_at(t.failures, now, e,
                                                                t.expires_at))
            return
        self._succeeded()
        secret = fetched[ref]
        old = self.engine.secrets.get(ref)
        self.engine.secrets[ref] = secret
        mints = t.mints if t is not None else deque(maxlen=4)
        mints.append(now)
        if secret.leased:
            self._track(secret, now)
            self.tracked[ref].mints = mints
        else:
            self.tracked.pop(ref, None)
        if old is None or old.value != secret.value:
            if forced:
                log.info("%s: new secret (re-issued)", ref)
            else:  # a planned rotation: at info, its "wrote" line says what changed
                log.debug("%s: new secret", ref)
            self._mark_dirty(ref)

    def _poll(self) -> None:
        """--poll: re-read static secrets; re-render only what really changed."""
        now = self.clock()
        self.timers.set(("poll",), now + self.engine.settings.poll)
        static = [r for r, s in self.engine.secrets.items() if not s.leased and not r.dynamic]
        with self._vault_call():
            fetched, errors = self.engine.fetch_each(static)
        for e in errors.values():
            self._failed("polling", e)
        if fetched and not errors:
            self._succeeded()
        for ref, secret in fetched.items():
            if self.engine.secrets[ref].value != secret.value:
                log.info("%s: changed at its source", ref)
                self.engine.secrets[ref] = secret
                self._mark_dirty(ref)

    # -- render ----------------------------------------------------------------------------
    def _flush(self) -> None:
        self.timers.cancel(("flush",))
        dirty, self.dirty = self.dirty, set()
        for t in self.engine.config.templates:
            if t not in dirty:
                continue
            missing = [r for r in t.refs if not r.dynamic and r not in self.engine.secrets]
            if missing:
                log.error("%s: not rendered, secret %s unavailable", t.label, missing[0])
                continue
            try:
                result = self.engine.write(t, self.engine.render(t))
            except Exception as e:  # the previous files stay; retried with backoff
                self._render_failed(t, e)
                continue
            self._rendered(t)
            self.engine.announce(t, result, first=False)

    def _leases_of(self, t) -> tuple[Tracked, ...]:
        return tuple(tr for r in t.refs if (tr := self.tracked.get(r)) is not None)

    def _rendered(self, t) -> None:
        """A successful write (or nothing to write): its files hold the current secrets."""
        r = self.rendering.get(t)
        if r is None:
            r = self.rendering[t] = Rendering()
        elif r.failures:
            self.timers.cancel(("render", t))
            log.info("%s: written after %d failed attempt(s)", t.label, r.failures)
        r.failures, r.error, r.leases = 0, "", self._leases_of(t)

    def _render_failed(self, t, e: Exception) -> None:
        """Keep the previous files; retry with backoff racing the death of what they hold
        (slowly for errors that need an operator)."""
        r = self.rendering.get(t)
        if r is None:
            r = self.rendering[t] = Rendering()
        r.failures += 1
        now = self.clock()
        when = self._retry_at(r.failures, now, e, r.expires_at)
        self.timers.set(("render", t), when)
        text = (str(e) if isinstance(e, RconfdError)
                else f"internal error rendering {t.label}: {type(e).__name__}: {e}")
        if text != r.error:  # once per distinct error, not at every retry
            log.error("%s (previous files kept); retrying in %.1fs", text, when - now)
            if not isinstance(e, RconfdError):
                log.debug("traceback", exc_info=e)
        else:
            log.debug("%s: still failing (attempt %d); retrying in %.1fs", t.label,
                      r.failures, when - now)
        r.error = text

    def _retry_render(self, t) -> None:
        """A failed template's retry timer: render it again with the secrets held."""
        if t in self.rendering:  # not dropped by a reload
            self.dirty.add(t)
            self._flush()

    def _reload(self) -> None:
        """SIGHUP: re-read the config dir; keep valid leases, fetch only new secrets."""
        log.info("SIGHUP: reloading %s", self.engine.settings.dir)
        try:
            config = load_config(self.engine.settings.dir)
        except RconfdError as e:
            log.error("reload failed, keeping the current config: %s", e)
            return
        self.engine.config = config
        wanted = {r for r in config.refs() if not r.dynamic}
        for ref in [r for r in {*self.engine.secrets, *self.tracked} if r not in wanted]:
            self.engine.secrets.pop(ref, None)
            self.tracked.pop(ref, None)
            self.timers.cancel(("secret", ref))
        new = [r for r in wanted if r not in self.engine.secrets]
        with self._vault_call():
            fetched, errors = self.engine.fetch_each(new)
        self._schedule_new_tokens()
        now = self.clock()
        for ref, secret in fetched.items():
            self.engine.secrets[ref] = secret
            if secret.leased:
                self._track(secret, now)
        for ref, e in errors.items():  # retried through the usual timer, as a new secret
            self._failed("reload", e)
            self.tracked[ref] = Tracked(secret=Secret(ref, None, now), renew=False, asked=0.0,
                                        expires_at=now, failures=1)
            self.timers.set(("secret", ref), self._retry_at(1, now, e))
        previous = {(t.source, t.name): r for t, r in self.rendering.items()}
        for t in self.rendering:
            self.timers.cancel(("render", t))
        # the files on disk are still those of the previous templates (same file, same key)
        self.rendering = {t: Rendering(r.leases if (r := previous.get((t.source, t.name)))
                                       else ()) for t in config.templates}
        self.dirty.update(config.templates)
        self._flush()

    # -- exit ------------------------------------------------------------------------------
    def _revoke_all(self) -> None:
        store = self.engine.sources.vault
        if store is None:
            return
        # what is tracked, and what a first pass fetched before it was interrupted
        held = {s.lease.id: s for s in (*(t.secret for t in self.tracked.values()),
                                        *self.engine.secrets.values())
                if s.lease and s.lease.id}
        tokens = {tok.role: tok for tok in store.tokens()}  # no new login on the way out
        n = 0
        for lease_id, secret in held.items():
            if secret.role not in tokens:
                continue
            try:
                leases.revoke_lease(store.client, tokens[secret.role].client_token, lease_id,
                                    timeout=EXIT_TIMEOUT)
                n += 1
            except RconfdError as e:
                log.warning("%s: cannot revoke its lease: %s", secret.ref, e)
        for tok in store.tokens():
            try:
                revoke_self(store.client, tok, timeout=EXIT_TIMEOUT)
            except RconfdError as e:
                log.warning("role %s: cannot revoke the token: %s", tok.role, e)
        log.info("revoked %d lease(s) and %d token(s)", n, len(store.tokens()))
