"""The pipeline of one pass: config -> secret refs -> fetch -> render -> write -> notify.

`Pipeline` holds the pieces a pass needs (and that daemon mode keeps between passes: the writer's
checksums, the readiness fd); what is fetched is kept in the ledger (ledger.py).
`Pipeline.first_pass` is rconfd without `-D`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager, nullcontext
from pathlib import Path

from . import notify
from .backends import Sources, fetch
from .config import RELOAD_SIGNALS, Config, TemplateConf, load_config
from .errors import OutputError, RconfdError, TemplateError
from .ledger import Ledger
from .redact import redactor
from .output import Writer, WriteResult, output_path, resolve_owner
from .refs import SecretRef
from .render import render_files
from .secret import Secret
from .settings import Settings

log = logging.getLogger(__name__)
MAX_WORKERS = 8


class Pipeline:
    """`clock` (unix time) is the one clock of the process: the backends, the logins and the
    daemon read it, nothing calls time.time() on its own."""

    def __init__(self, settings: Settings, config: Config | None = None,
                 clock: Callable[[], float] = time.time):
        self.settings = settings
        self.config = config if config is not None else load_config(settings.dir)
        self.clock = clock
        self.ledger = Ledger()
        self.sources = Sources(clock=clock)
        self.writer = Writer()
        self.readiness = notify.Readiness(settings.ready_fd)
        self._client = None
        self._owners: dict = {}  # template -> Owner | None, resolved at its first write
        self.state = None  # state.StateDir (--state-dir), opened by the first pass
        self._saved = None  # what it held, until resumed (a failed resume is tried again)
        self._state_opened = False

    def use_config(self, config: Config) -> None:
        """A config reloaded (SIGHUP): the templates rendered from now on."""
        self.config = config
        self._owners = {}  # keyed by the old templates: resolved again at their first write

    # -- fetch ---------------------------------------------------------------------------
    @property
    def tokens(self):
        """The Vault token store, created on first need (no Vault refs: no client at all)."""
        if self.sources.vault is None:
            from .vault.auth import TokenStore, jwt_source
            from .vault.client import VaultClient

            s = self.settings
            self._client = VaultClient(
                s.url, namespace=s.namespace, timeout=s.timeout,
                cacert=s.cacert if s.cacert_given else None,
                extra_ca=None if s.cacert_given else s.cacert, capath=s.capath,
                client_cert=s.client_cert, client_key=s.client_key,
                tls_server_name=s.tls_server_name, tls_skip_verify=s.tls_skip_verify)
            read_jwt = jwt_source(s.token, s.token_path)

            def jwt() -> str:
                value = read_jwt()
                redactor.add("jwt", value)
                return value

            supplied = None
            if s.vault_token_file or s.vault_token:  # a token from outside, no login
                from .vault.token_file import SuppliedToken

                supplied = SuppliedToken(s.vault_token, s.vault_token_file)
            self.sources.vault = TokenStore(self._client, s.login_path, jwt, self.ledger,
                                            self.clock, supplied)
        return self.sources.vault

    def vault_patience(self, factory):
        """Vault requests made meanwhile may wait past their timeout as `factory` decides
        (VaultClient.patience; the daemon's: daemon/outage.py)."""
        return self._on_client("patience", factory)

    def vault_timeout(self, seconds: float | None):
        """Vault requests made meanwhile time out after `seconds` (None: --timeout). The daemon
        waits longer for an answer when nothing it holds is about to expire (policy.py)."""
        return self._on_client("timeout", seconds)

    @contextmanager
    def _on_client(self, name: str, value):
        """The Vault client's `name` set to `value` meanwhile (None: left as it is, and so
        when there is no client yet)."""
        client = self._client
        if value is None or client is None:
            yield
            return
        before = getattr(client, name)
        setattr(client, name, value)
        try:
            yield
        finally:
            setattr(client, name, before)

    def fetch(self, refs: Iterable[SecretRef]) -> dict[SecretRef, Secret]:
        """Fetch each ref once, concurrently; store and return them. On failure, log every
        error and raise the first. What did arrive is kept: a retried first pass in daemon mode
        does not mint those credentials again."""
        results, errors = self.fetch_each(refs)
        now = self.clock()
        for secret in results.values():
            self.ledger.remember(secret, now)
        if errors:
            first, *rest = errors.values()
            for e in rest:
                log.error("%s", e)
            raise first
        return results

    def fetch_each(self, refs: Iterable[SecretRef]
                   ) -> tuple[dict[SecretRef, Secret], dict[SecretRef, RconfdError]]:
        """Fetch each ref once, concurrently; return what came and what failed (not stored)."""
        refs = list(dict.fromkeys(refs))
        for r in refs:  # request parameters (`input=${PASSWORD}`) are secrets too: masked in
            if r.kwargs:  # every line naming the ref, and in Vault's errors echoing them
                redactor.add(("kwargs", r), [{k: v} for k, v in r.kwargs])
        errors: dict[SecretRef, RconfdError] = {}
        for role in sorted({r.role for r in refs if r.backend == "vault"}):
            try:  # one login per role, before the concurrent reads share it
                redactor.add(("token", role), self.tokens.get(role).client_token)
            except RconfdError as e:
                errors.update((r, e) for r in refs if r.role == role and r.backend == "vault")
        refs = [r for r in refs if r not in errors]
        outcomes = _concurrently([lambda r=r: _attempt(r, self.sources) for r in refs])
        results: dict[SecretRef, Secret] = {}
        for ref, outcome in zip(refs, outcomes):
            if isinstance(outcome, RconfdError):
                errors[ref] = outcome
            else:
                redactor.add(ref, outcome.value)
                results[ref] = outcome
                log.debug("fetched %s%s", ref, _lease_text(outcome), extra={
                    "path": str(ref), "role": ref.role or None,
                    "ttl": outcome.lease.duration if outcome.lease is not None else None})
        return results, errors

    def valid(self, ref: SecretRef) -> bool:
        """Fetched, and not about to expire."""
        return self.ledger.valid(ref, self.clock())

    # -- render and write ----------------------------------------------------------------
    def render(self, t: TemplateConf) -> dict[Path, bytes]:
        """Evaluate one template with its secrets (re-running `exe dynamic` ones)."""
        dynamic = [r for r in t.refs if r.dynamic]
        if dynamic:
            self.fetch(dynamic)
        values = {var: self.ledger.value(ref) for ref, var in t.secrets}
        files = render_files(t.template, values, self.settings.jpath, self.settings.engine)
        out: dict[Path, bytes] = {}
        names: dict[Path, str] = {}
        for name, data in files.items():
            path = output_path(t.dir, name)
            if path in names:
                raise TemplateError(f"{t.template}: output keys {names[path]!r} and {name!r} "
                                    f"both name {path}")
            names[path] = name
            out[path] = data
        return out

    def owner(self, t: TemplateConf):
        if t not in self._owners:
            self._owners[t] = resolve_owner(t.user)
        return self._owners[t]

    def write(self, t: TemplateConf, files: dict[Path, bytes]) -> WriteResult:
        """Write one template's files (all staged, and checked, before any is renamed)."""
        batch = self.writer.batch()
        result = self.writer.stage(batch, files, t.mode, self.owner(t))
        self._check(t, batch, result, files)
        self.writer.commit(batch)
        self._log_written(t, result, files)
        return result

    def _check(self, t: TemplateConf, batch, result: WriteResult,
               files: dict[Path, bytes]) -> None:
        """Run the template's `check` on each of its files about to change, before any is
        renamed; on failure the whole batch is aborted (nothing renamed). The command is given
        a private copy (in a directory only root can enter), never the staged file itself: the
        staged file lies in a directory the service user may own, who could swap it for a link
        to whatever root's check would then read and print."""
        if not t.check:
            return
        paths = [path for path, _ in self.writer.staged(batch, result)]
        if not paths:
            return
        import shutil
        import tempfile

        private = tempfile.mkdtemp(prefix="rconfd-check-")  # 0700, ours
        try:
            for i, path in enumerate(paths):
                copy = os.path.join(private, str(i), path.name)
                os.mkdir(os.path.dirname(copy), 0o700)
                fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o400)
                try:
                    os.write(fd, files[path])  # a regular file: written whole
                finally:
                    os.close(fd)
                notify.run_check(t.label, t.check, copy, str(path))
        except OSError as e:
            self.writer.abort(batch)
            raise OutputError(f"{t.label}: cannot run its check: {e.strerror}") from None
        except BaseException:
            self.writer.abort(batch)
            raise
        finally:
            shutil.rmtree(private, ignore_errors=True)

    def write_all(self, rendered: list[tuple[TemplateConf, dict[Path, bytes]]]
                  ) -> list[WriteResult]:
        """Write every template's files: all are staged before any is renamed, so a failure
        in one template leaves every file of every template as it was."""
        batch = self.writer.batch()
        results = [self.writer.stage(batch, files, t.mode, self.owner(t))
                   for t, files in rendered]
        for (t, files), result in zip(rendered, results):
            self._check(t, batch, result, files)
        self.writer.commit(batch)
        for (t, files), result in zip(rendered, results):
            self._log_written(t, result, files)
        return results

    def _log_written(self, t: TemplateConf, result: WriteResult, files=()) -> None:
        for path in result.changed:
            log.info("%s: wrote %s", t.label, path, extra={"template": t.label, "file": path})
        self.ledger.rendered(t, tuple(str(p) for p in files), self.clock())

    def announce(self, t: TemplateConf, result: WriteResult, first: bool) -> None:
        """After a write that changed files: `modified` hook and s6 reload signals.

        On the first pass only files that existed before count (rconfd's rule: a restarted
        rconfd-py must still tell running services that their config changed)."""
        if not (result.replaced if first else result.changed):
            return
        outcome = []
        if "modified" in t.hooks:
            ok = notify.run_hook("modified", t.label, t.hooks["modified"])
            outcome.append(f"modified hook {'ok' if ok else 'failed'}")
        for service in t.reload:
            ok = notify.s6_control(service, RELOAD_SIGNALS[t.reload_signal])
            outcome.append(f"reload {service} {'ok' if ok else 'failed'}")
        if outcome and (entry := self.ledger.templates.get(t)) is not None:
            entry.hook = ", ".join(outcome)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # -- state (--state-dir) -------------------------------------------------------------
    def _resume(self, network) -> None:
        """Open the state dir (once), and put what it saved that still lives into the ledger
        (resume.py): the fetch then skips it."""
        s = self.settings
        vault = any(r.backend == "vault" for r in self.config.by_ref)
        if not self._state_opened and vault:  # nothing to save without Vault secrets
            self._state_opened = True
            if s.state_dir and not s.dry_run:
                from .state import StateDir

                self.state = StateDir.open(s.state_dir, vault_identity(s))
                self._saved = self.state.load() if self.state is not None else None
        saved = self._saved
        if saved is None or not (saved.tokens or saved.secrets):
            self._saved = None
            return
        from .resume import resume

        wanted = {r for r in self.config.by_ref if r.backend == "vault" and not r.dynamic}
        supplied = self.tokens.supplied
        if supplied is not None or saved.supplied:  # a supplied token: only the one supplied
            # now is used, and none is ever revoked as dropped (it belongs to whoever wrote it)
            roles = {r.role for r in wanted}
            current = supplied.read() if supplied is not None else None
            saved = saved._replace(tokens={r: e for r, e in saved.tokens.items()
                                           if r in roles and e.token.client_token == current})
        with network():
            tokens, secrets = resume(saved, wanted, self.ledger, self.tokens.client,
                                     self.clock(), s.timeout, s.revoke_on_exit)
        self._saved = None
        log.info("state: reused %d token(s) and %d leased secret(s) from %s", tokens, secrets,
                 self.state.file)

    def save_state(self) -> None:
        """Save the ledger if it changed (never fails the run: state.py warns)."""
        if self.state is not None and self._saved is None:
            self.state.save(self.ledger, self.clock(), self.tokens.supplied is not None)

    # -- one pass ------------------------------------------------------------------------
    def first_pass(self, network=nullcontext) -> None:
        """Fetch everything, render every template, stage every file, and only then rename
        them all: a single failure leaves every file on disk as it was. Then readiness, then
        hooks. Secrets already fetched and still valid (a retried first pass in daemon mode)
        are not fetched again. `network` wraps the Vault calls (the daemon makes them
        interruptible by SIGTERM)."""
        config = self.config
        self._resume(network)
        with network():
            self.fetch([r for r in config.by_ref if not r.dynamic and not self.valid(r)])
        rendered: list[tuple[TemplateConf, dict[Path, bytes]]] = []
        errors: list[RconfdError] = []
        for t in config.templates:
            try:
                rendered.append((t, self.render(t)))
            except RconfdError as e:
                errors.append(e)
        if errors:
            for e in errors[1:]:
                log.error("%s", e)
            raise errors[0]
        claimed: dict[Path, TemplateConf] = {}
        for t, files in rendered:
            for path in files:
                other = claimed.setdefault(path, t)
                if other is not t:
                    raise TemplateError(f"{other.label} and {t.label} both write {path}")
        if self.settings.dry_run:  # shown, not written: no readiness, no hook, no reload
            from .dryrun import show

            show(rendered)
            log.info("dry run: rendered %d template(s), nothing written", len(rendered))
            return
        results = [(t, r) for (t, _), r in zip(rendered, self.write_all(rendered))]
        if not config.templates:
            log.warning("no template in %s: nothing to render", config.dir)
        self.readiness.signal()
        self.ledger.ready_at = self.clock()
        for t, result in results:
            self.announce(t, result, first=True)
        for t in config.templates:
            if "ready" in t.hooks:
                notify.run_hook("ready", t.label, t.hooks["ready"])
        log.info("rendered %d template(s), %d file(s) changed", len(results),
                 sum(len(r.changed) for _, r in results))


def vault_identity(s: Settings) -> str:
    """The Vault a state file belongs to: its address (with or without /v1), and namespace if
    any."""
    url = s.url.rstrip("/").removesuffix("/v1").rstrip("/")
    return url if not s.namespace else f"{url} namespace={s.namespace}"


def _concurrently(calls: list) -> list:
    """Run the calls on up to MAX_WORKERS threads; results in order. (Plain threads: the
    concurrent.futures import alone costs ~10 ms of start-up.)"""
    if len(calls) <= 1:
        return [c() for c in calls]
    import threading

    results: list = [None] * len(calls)
    todo = iter(range(len(calls)))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            results[i] = calls[i]()

    threads = [threading.Thread(target=worker) for _ in range(min(MAX_WORKERS, len(calls)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _attempt(ref: SecretRef, sources: Sources) -> Secret | RconfdError:
    try:
        return fetch(ref, sources)
    except RconfdError as e:
        return e


def _lease_text(secret: Secret) -> str:
    if secret.lease is not None:
        return (f" (lease {secret.lease.duration:g}s, "
                f"{'renewable' if secret.lease.renewable else 'not renewable'})")
    if secret.expires_at is not None:
        return f" (expires at {secret.expires_at:.0f})"
    return ""


