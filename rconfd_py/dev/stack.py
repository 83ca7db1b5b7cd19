"""The throwaway development stack: OpenBao dev server + PostgreSQL + TokenReview stub, seeded.

Used by ``rconfd-py demo``, the test suite and the benchmarks::

    with start(Path("/tmp/work")) as stack:
        jwt = stack.mint_jwt()
        ...
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from . import jwt as jwtlib
from . import postgres as pglib
from . import tokenreview
from .bao import DEFAULT_ROOT_TOKEN, BaoServer, spawn_bao
from .procs import free_ports
from .seed import DEFAULT_ROLES, DEFAULT_TTLS, PgTarget, Ttls, seed, seed_database

if TYPE_CHECKING:
    import hvac
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey


@dataclass(eq=False)
class DevStack:
    """A running, seeded stack. Stop it with :meth:`stop` or use it as a context manager."""

    addr: str
    root_token: str
    workdir: Path
    ca_pem: str
    ca_path: Path
    k8s_url: str
    pg: pglib.Postgres | None
    audit_log: Path | None
    jwt_key_path: Path
    jwt_pub_path: Path
    ttls: Ttls
    roles: tuple[str, ...]
    startup_seconds: float
    bao: BaoServer = field(repr=False)
    k8s_stub: tokenreview.TokenReviewStub = field(repr=False)
    jwt_key: RSAPrivateKey = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def bao_pid(self) -> int:
        """PID of the ``bao server -dev`` process."""
        return self.bao.pid

    def mint_jwt(
        self, sub: str = jwtlib.DEFAULT_SUB, aud: str = jwtlib.AUDIENCE, ttl: int = 3600
    ) -> str:
        """A JWT accepted by ``auth/jwt`` (any of :attr:`roles`); negative ``ttl`` = expired."""
        return jwtlib.mint(self.jwt_key, jwtlib.gitlab_like_claims(sub, aud, ttl))

    def mint_k8s_jwt(self, ns: str = jwtlib.K8S_NAMESPACE, sa: str = jwtlib.K8S_SA) -> str:
        """A service-account token accepted by ``auth/kubernetes`` when ns/sa match the roles."""
        return jwtlib.mint(self.jwt_key, jwtlib.k8s_claims(ns, sa))

    def write_jwt(self, path: Path, *, k8s: bool = False, **kw: Any) -> Path:
        """Write :meth:`mint_jwt` (or :meth:`mint_k8s_jwt` if ``k8s``) to ``path`` (mode 0600)."""
        token = self.mint_k8s_jwt(**kw) if k8s else self.mint_jwt(**kw)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        return path

    def client(self, token: str | None = None) -> hvac.Client:
        """An ``hvac.Client`` for this server (root token unless ``token`` is given)."""
        import hvac

        return hvac.Client(url=self.addr, token=token or self.root_token)

    def env(self) -> dict[str, str]:
        """Environment describing the stack (no secrets besides the dev root token)."""
        out = {
            "VAULT_ADDR": self.addr,
            "BAO_ADDR": self.addr,
            "VAULT_URL": f"{self.addr}/v1",  # rconfd's -u default comes from $VAULT_URL, with /v1
            "VAULT_ROOT_TOKEN": self.root_token,
            "VAULT_PKI_CA": str(self.ca_path),
            "K8S_STUB_URL": self.k8s_url,
        }
        if self.pg is not None:
            out |= {"PGHOST": self.pg.host, "PGPORT": str(self.pg.port), "PGUSER": self.pg.user}
        return out

    def stop(self) -> None:
        """Stop everything this stack started (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        _stop_all(self.bao, self.k8s_stub, self.pg)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _stop_all(
    bao: BaoServer | None,
    stub: tokenreview.TokenReviewStub | None,
    pg: pglib.Postgres | None,
) -> None:
    """Stop bao and PostgreSQL concurrently (each takes 0.1-1.5 s), then the stub."""
    threads = [
        threading.Thread(target=obj.stop, name=f"stop-{type(obj).__name__}")
        for obj in (bao, pg)
        if obj is not None
    ]
    for t in threads:
        t.start()
    if stub is not None:
        stub.stop()
    for t in threads:
        t.join()


def _start_pg_async(workdir: Path, port: int) -> Future[pglib.Postgres]:
    """Start PostgreSQL in a daemon thread; the future carries the handle or the error."""
    fut: Future[pglib.Postgres] = Future()

    def run() -> None:
        try:
            fut.set_result(pglib.start(workdir, port=port))
        except BaseException as e:  # noqa: BLE001 - delivered to the caller via the future
            fut.set_exception(e)

    threading.Thread(target=run, name="devstack-postgres", daemon=True).start()
    return fut


def start(
    workdir: Path,
    *,
    postgres: bool = True,
    audit: bool = False,
    ttls: Ttls = DEFAULT_TTLS,
    roles: Sequence[str] = DEFAULT_ROLES,
    root_token: str = DEFAULT_ROOT_TOKEN,
    timeout: float = 30.0,
) -> DevStack:
    """Start and seed the whole stack under ``workdir``; PostgreSQL boots while bao does.

    ``postgres=True`` requires :func:`rconfd_py.dev.postgres.available`; ``audit`` declares a
    file audit device logging every request to ``workdir/audit.log``.
    """
    import hvac

    t0 = time.monotonic()
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    bao_port, pg_port = free_ports(2)
    pg_future = _start_pg_async(workdir, pg_port) if postgres else None
    bao: BaoServer | None = None
    stub: tokenreview.TokenReviewStub | None = None
    pg: pglib.Postgres | None = None
    try:
        bao = spawn_bao(workdir, port=bao_port, root_token=root_token, enable_audit=audit)
        stub = tokenreview.start()
        key = jwtlib.generate_key()  # ~0.1 s, overlaps the bao boot
        key_path, pub_path = jwtlib.write_keypair(key, workdir / "jwt")
        bao.wait_ready(timeout)
        client = hvac.Client(url=bao.addr, token=root_token)
        seeded = seed(
            client,
            jwt_pubkey_pem=jwtlib.public_pem(key),
            k8s_url=stub.url,
            ttls=ttls,
            roles=roles,
        )
        ca_path = workdir / "pki_ca.pem"
        ca_path.write_text(seeded.ca_pem)
        if pg_future is not None:
            pg = pg_future.result(timeout=90)
            seed_database(client, PgTarget(pg.vault_connection_url, pg.user, pg.password), ttls)
    except BaseException:
        if pg is None and pg_future is not None:
            try:
                pg = pg_future.result(timeout=90)
            except BaseException:  # noqa: BLE001 - already failing; just clean up
                pg = None
        _stop_all(bao, stub, pg)
        raise
    stack = DevStack(
        addr=bao.addr,
        root_token=root_token,
        workdir=workdir,
        ca_pem=seeded.ca_pem,
        ca_path=ca_path,
        k8s_url=stub.url,
        pg=pg,
        audit_log=bao.audit_log,
        jwt_key_path=key_path,
        jwt_pub_path=pub_path,
        ttls=ttls,
        roles=tuple(roles),
        startup_seconds=time.monotonic() - t0,
        bao=bao,
        k8s_stub=stub,
        jwt_key=key,
    )
    atexit.register(stack.stop)  # safety net; stop() unregisters
    return stack
