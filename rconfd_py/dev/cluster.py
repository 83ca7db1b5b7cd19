"""A 3-node OpenBao raft cluster on loopback, started from config files (HA tests).

Each node is a real ``bao server -config``: integrated (raft) storage with ``retry_join`` to the
other nodes, a tcp listener without TLS, its own ``api_addr``/``cluster_addr`` ports and a file
audit device. The first node is initialised (one key share) and unsealed; it becomes the active
node, and unsealing the others completes their join. ``performance_multiplier = 1`` gives raft
its shortest timings, so a new leader is elected within seconds after the active node dies::

    with start(Path("/tmp/ha")) as cluster:
        cluster.active().kill()
        cluster.wait_active()
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from . import jwt as jwtlib
from .bao import api, find_bao
from .procs import LOCALHOST, free_ports, stop_process, wait_until
from .seed import DEFAULT_ROLES, DEFAULT_TTLS, PgTarget, Ttls, seed

if TYPE_CHECKING:
    import hvac
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

# /v1/sys/health answers (what a load balancer's health check, or the Kubernetes
# vault-active Service's readiness probe, routes on)
ACTIVE, STANDBY, SEALED, UNINITIALIZED = 200, 429, 503, 501
AUDIT_LOG = "audit.log"  # relative to each node's working directory


@dataclass(eq=False)
class RaftNode:
    """One ``bao server`` of the cluster."""

    name: str
    port: int
    cluster_port: int
    workdir: Path
    proc: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path
    audit_log: Path

    @property
    def addr(self) -> str:
        """The node's own API address (``api_addr``)."""
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def health(self) -> int:
        """``sys/health``'s status: ACTIVE, STANDBY, SEALED, UNINITIALIZED; 0 when no answer."""
        try:
            status, _ = api(self.addr, "", "GET", "sys/health")
        except OSError:
            return 0
        return status

    def kill(self) -> None:
        """SIGKILL: the node dies at once, as on a node failure (no step-down, no clean leave)."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        stop_process(self.proc, timeout)

    def log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"


@dataclass(eq=False)
class RaftCluster:
    """The running cluster. Stop it with :meth:`stop` or use it as a context manager."""

    nodes: list[RaftNode]
    root_token: str = field(repr=False)
    unseal_key: str = field(repr=False)
    workdir: Path
    startup_seconds: float = 0.0
    _stopped: bool = field(default=False, repr=False)

    def active(self) -> RaftNode:
        """The node answering ``sys/health`` with 200 (raises when there is none right now)."""
        for node in self.nodes:
            if node.alive() and node.health() == ACTIVE:
                return node
        raise LookupError("no active node")

    def standbys(self) -> list[RaftNode]:
        """The live nodes that answer as unsealed standbys."""
        return [n for n in self.nodes if n.alive() and n.health() == STANDBY]

    def wait_active(self, timeout: float = 60.0, *, not_: RaftNode | None = None) -> RaftNode:
        """Block until a node (other than ``not_``) is active, and return it."""
        found: list[RaftNode] = []

        def check() -> bool:
            for node in self.nodes:
                if node is not not_ and node.alive() and node.health() == ACTIVE:
                    found.append(node)
                    return True
            return False

        wait_until(check, timeout, interval=0.1, what="an active node")
        return found[0]

    def voters(self) -> dict[str, bool]:
        """node_id -> voter, from the active node's raft configuration."""
        status, body = api(self.active().addr, self.root_token, "GET",
                           "sys/storage/raft/configuration")
        if status != 200:
            raise RuntimeError(f"raft configuration: HTTP {status}: {body}")
        return {s["node_id"]: bool(s["voter"]) for s in body["data"]["config"]["servers"]}

    def api(self, method: str, path: str, body: dict[str, Any] | None = None,
            node: RaftNode | None = None) -> tuple[int, dict[str, Any]]:
        """A root-token API call to ``node`` (the active node by default)."""
        return api((node or self.active()).addr, self.root_token, method, path, body)

    def client(self, node: RaftNode | None = None) -> hvac.Client:
        """An ``hvac.Client`` with the root token, for ``node`` (the active node by default)."""
        import hvac

        return hvac.Client(url=(node or self.active()).addr, token=self.root_token)

    def restart(self, node: RaftNode, timeout: float = 60.0) -> RaftNode:
        """Start a dead ``node`` again on its data and config, unseal it, and wait until it is
        a standby again (it rejoins with its raft state; it never takes over on its own)."""
        if node.alive():
            raise RuntimeError(f"{node.name} is still running")
        new = _spawn(node.name, node.port, node.cluster_port, node.workdir, (), config=False)
        self.nodes[self.nodes.index(node)] = new
        _wait_answering(new, timeout)
        wait_until(lambda: _unsealed_standby(new, self.unseal_key), timeout, interval=0.2,
                   what=f"{new.name} unsealed again")
        return new

    def stop(self) -> None:
        """Stop every node (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        for node in self.nodes:  # SIGTERM all first: each takes a moment to shut down
            if node.alive():
                node.proc.terminate()
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def node_config(name: str, port: int, cluster_port: int, data: Path,
                peers: Sequence[int]) -> str:
    """The HCL config of one node: raft storage joining ``peers`` (their API ports).

    The audit device table is replicated, so its options must be the same on every node (a
    node whose config differs fails its post-unseal setup when it becomes active): the
    relative ``file_path`` puts each node's log in its own working directory.
    """
    joins = "".join(
        f'  retry_join {{\n    leader_api_addr = "http://{LOCALHOST}:{p}"\n  }}\n' for p in peers)
    return (
        'storage "raft" {\n'
        f"  path = {json.dumps(str(data))}\n"
        f'  node_id = "{name}"\n'
        "  performance_multiplier = 1\n"
        f"{joins}"
        "}\n"
        'listener "tcp" {\n'
        f'  address = "{LOCALHOST}:{port}"\n'
        f'  cluster_address = "{LOCALHOST}:{cluster_port}"\n'
        "  tls_disable = true\n"
        "}\n"
        f'api_addr = "http://{LOCALHOST}:{port}"\n'
        f'cluster_addr = "http://{LOCALHOST}:{cluster_port}"\n'
        # no disable_mlock: OpenBao 2 never mlocks and warns about the field
        'audit "file" "file" {\n'
        f"  options {{\n    file_path = {json.dumps(AUDIT_LOG)}\n  }}\n"
        "}\n"
    )


def _spawn(name: str, port: int, cluster_port: int, workdir: Path,
           peers: Sequence[int], *, config: bool = True) -> RaftNode:
    """Launch one node; ``config=False`` reuses the config file already written."""
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    audit_log = workdir / AUDIT_LOG
    config_path = workdir / "node.hcl"
    if config:
        config_path.write_text(node_config(name, port, cluster_port, data, peers))
    log_path = workdir / "bao.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([find_bao(), "server", f"-config={config_path}"],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=workdir, env=env, start_new_session=True)
    return RaftNode(name, port, cluster_port, workdir, proc, log_path, audit_log)


def _init(node: RaftNode) -> tuple[str, str]:
    """``bao operator init -key-shares=1 -key-threshold=1`` on ``node``: (unseal key, root
    token), read from its JSON output (never from a command line)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
    out = subprocess.run(
        [find_bao(), "operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json",
         f"-address={node.addr}"],
        check=False, env=env, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"bao operator init failed: {out.stderr.strip()}")
    answer = json.loads(out.stdout)
    return answer["unseal_keys_b64"][0], answer["root_token"]


def _unseal(node: RaftNode, key: str) -> None:
    status, body = api(node.addr, "", "PUT", "sys/unseal", {"key": key})
    if status != 200:
        raise RuntimeError(f"{node.name}: unseal: HTTP {status}: {body}")


def _wait_answering(node: RaftNode, timeout: float) -> None:
    def check() -> bool:
        if not node.alive():
            raise RuntimeError(f"{node.name} exited: {node.log_tail()}")
        return node.health() != 0

    wait_until(check, timeout, interval=0.05, what=f"{node.name} listening")


def start(workdir: Path, *, size: int = 3, timeout: float = 60.0) -> RaftCluster:
    """Start a ``size``-node raft cluster under ``workdir``; return once every node is an
    unsealed voter and one is active."""
    t0 = time.monotonic()
    workdir = workdir.resolve()
    ports = free_ports(2 * size)
    api_ports = ports[:size]
    nodes: list[RaftNode] = []
    try:
        for i in range(size):
            peers = [p for j, p in enumerate(api_ports) if j != i]
            nodes.append(_spawn(f"node{i + 1}", api_ports[i], ports[size + i],
                                workdir / f"node{i + 1}", peers))
        for node in nodes:
            _wait_answering(node, timeout)
        key, root = _init(nodes[0])
        cluster = RaftCluster(nodes, root, key, workdir)
        _unseal(nodes[0], key)
        cluster.wait_active(timeout)
        # new servers become voters once stable: make that quick (default 10 s)
        status, body = cluster.api("POST", "sys/storage/raft/autopilot/configuration",
                                   {"server_stabilization_time": "1s",
                                    "cleanup_dead_servers": False})
        if status not in (200, 204):
            raise RuntimeError(f"autopilot configuration: HTTP {status}: {body}")
        # the retry_join loop (every 2 s) needs the unseal key to finish joining; a node may
        # still be asking the leader for its challenge: unseal until every node is a standby
        def joined() -> bool:
            states = [_unsealed_standby(n, key) for n in nodes[1:]]  # each one, every time
            return all(states)

        wait_until(joined, timeout, interval=0.2, what="the other nodes joined and unsealed")
        wait_until(lambda: len(cluster.voters()) == size and all(cluster.voters().values()),
                   timeout, interval=0.2, what="every node a raft voter")
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    cluster.startup_seconds = time.monotonic() - t0
    atexit.register(cluster.stop)  # safety net; stop() unregisters
    return cluster


def _unsealed_standby(node: RaftNode, key: str) -> bool:
    if not node.alive():
        raise RuntimeError(f"{node.name} exited: {node.log_tail()}")
    health = node.health()
    if health == SEALED:
        try:
            api(node.addr, "", "PUT", "sys/unseal", {"key": key})
        except OSError:
            pass
        return False
    return health == STANDBY


def seed_cluster(cluster: RaftCluster, *, pg: PgTarget | None = None,
                 ttls: Ttls = DEFAULT_TTLS, roles: Sequence[str] = DEFAULT_ROLES
                 ) -> RSAPrivateKey:
    """Seed the cluster through its active node as the dev stack seeds its server (policy,
    kv, pki, transit, JWT auth, and the database engine when ``pg`` is given); return the key
    that signs the JWTs ``auth/jwt`` accepts (:func:`rconfd_py.dev.jwt.mint`)."""
    key = jwtlib.generate_key()
    seed(cluster.client(), jwt_pubkey_pem=jwtlib.public_pem(key), pg=pg, ttls=ttls, roles=roles)
    return key
