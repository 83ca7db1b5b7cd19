"""HA: a real 3-node OpenBao raft cluster (rconfd_py.dev.cluster) behind a real HAProxy that
routes to the active node by health check (`/v1/sys/health`: active 200, standby 429, sealed
503), as a Kubernetes `vault-active` Service does. Short TTLs: database lease 30 s
(max 45 s), token 60 s (max 120 s), so renewals and new credentials happen during each test."""

from __future__ import annotations

import calendar
import contextlib
import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli import DaemonProc, rconfd
from helpers import audit_entries, audit_request_paths, require, require_binaries

from rconfd_py.dev import cluster as clusterlib
from rconfd_py.dev import jwt as jwtlib
from rconfd_py.dev.bao import api, find_bao
from rconfd_py.dev.procs import LOCALHOST, free_ports, stop_process, wait_until
from rconfd_py.dev.seed import PgTarget, Ttls

DB = "vault:test-role:database/creds/mydb"
KV = "vault:test-role:kv/data/test/mysecret"
# The cluster's TTLs. A failover takes ~5 s here (election, HAProxy's check): a lease must
# outlive one that starts just before its renewal is due (renewal at ~2/3 of 30 s leaves 10 s).
# Lease max TTL 45 s: a test of ~55 s crosses it (a new credential from the new leader). The
# token lives longer, so that its renewals and re-logins never coincide with the lease's.
TTLS = Ttls(token_ttl="60s", token_max_ttl="120s", db_default_ttl="30s", db_max_ttl="45s")
RENEW_IN = re.compile(r"mydb: renew in ([0-9.]+)s")
RENEWED = re.compile(r"mydb: lease (renewed for|reaches its max TTL)")  # capped or not
TEMPLATE = ("local s = std.extVar('secrets'); "
            "{ 'db.json': { user: s.db.username, password: s.db.password, kv: s.kv.data.username } }")

HAPROXY_CFG = """\
global
    log stdout format raw local0 info
    stats socket {sock} mode 600 level admin

defaults
    mode http
    log global
    option httplog
    timeout connect 1s
    timeout client 30s
    timeout server 30s

# what a vault-active Service is: only the node whose health check answers 200
frontend vault
    bind {host}:{port}
    default_backend vault-active

backend vault-active
    option httpchk GET /v1/sys/health
    http-check expect status 200
    default-server inter 500ms fall 1 rise 1 on-marked-down shutdown-sessions
{servers}

# one standby, told not to forward: it answers writes with a 307 to the active node
frontend standby-no-forwarding
    bind {host}:{redirect_port}
    http-request set-header X-Vault-No-Request-Forwarding true
    default_backend one-standby

backend one-standby
    server {standby.name} {host}:{standby.port}
"""


@dataclass
class HAProxy:
    proc: subprocess.Popen
    port: int
    redirect_port: int
    sock: Path
    log: Path

    @property
    def addr(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def redirect_addr(self) -> str:
        return f"http://{LOCALHOST}:{self.redirect_port}"

    def up_servers(self) -> set[str]:
        """The vault-active servers HAProxy routes to now (runtime API: show servers state)."""
        data = b""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)  # a HAProxy that accepts and never answers fails, never hangs
            try:
                s.connect(str(self.sock))
            except (FileNotFoundError, ConnectionRefusedError):  # not listening yet
                return set()
            s.sendall(b"show servers state vault-active\n")
            while chunk := s.recv(65536):
                data += chunk
        lines = [ln.split() for ln in data.decode().splitlines()[2:] if ln.strip()]
        return {f[3] for f in lines if f[5] == "2"}  # srv_name, srv_op_state 2: running


@dataclass
class HA:
    cluster: clusterlib.RaftCluster
    haproxy: HAProxy
    jwt_path: Path
    standby: clusterlib.RaftNode  # the one behind the no-forwarding frontend


def start_haproxy(workdir: Path, nodes: list[clusterlib.RaftNode],
                  standby: clusterlib.RaftNode) -> HAProxy:
    port, redirect_port = free_ports(2)
    sock = workdir / "haproxy.sock"
    servers = "\n".join(f"    server {n.name} {LOCALHOST}:{n.port} check" for n in nodes)
    cfg = workdir / "haproxy.cfg"
    cfg.write_text(HAPROXY_CFG.format(sock=sock, host=LOCALHOST, port=port, servers=servers,
                                      redirect_port=redirect_port, standby=standby))
    log = workdir / "haproxy.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdin=subprocess.DEVNULL,
                                stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    return HAProxy(proc, port, redirect_port, sock, log)


@pytest.fixture(scope="module")
def ha(tmp_path_factory, stack) -> Iterator[HA]:
    """The seeded cluster (database engine on the session's PostgreSQL) behind HAProxy."""
    require_binaries("haproxy")
    try:
        find_bao()
    except FileNotFoundError:
        require("OpenBao (bao binary)", False)
    require("PostgreSQL server binaries", stack.pg is not None)
    workdir = tmp_path_factory.mktemp("ha")
    cluster = clusterlib.start(workdir / "cluster")
    proxy = None
    try:
        key = clusterlib.seed_cluster(
            cluster, pg=PgTarget(stack.pg.vault_connection_url, stack.pg.user, stack.pg.password),
            ttls=TTLS)
        jwt_path = workdir / "token.jwt"
        jwt_path.write_text(jwtlib.mint(key, jwtlib.gitlab_like_claims(
            jwtlib.DEFAULT_SUB, jwtlib.AUDIENCE, 3600)) + "\n")
        jwt_path.chmod(0o600)
        standby = cluster.standbys()[0]
        proxy = start_haproxy(workdir, cluster.nodes, standby)
        active = cluster.active()
        wait_until(lambda: proxy.proc.poll() is None and proxy.up_servers() == {active.name},
                   15, interval=0.1, what="HAProxy routing to the active node only")
        yield HA(cluster, proxy, jwt_path, standby)
    finally:
        if proxy is not None:
            stop_process(proxy.proc)
        cluster.stop()


def config(tmp_path: Path) -> Path:
    cfg = tmp_path / "cfg"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "t.jsonnet").write_text(TEMPLATE)
    (cfg / "a.json").write_text(json.dumps({"t.jsonnet": {
        "dir": str(tmp_path / "out"), "secrets": {DB: "db", KV: "kv"}}}))
    return cfg


def login(ha: HA, addr: str) -> list[str]:
    return ["-u", addr, "-l", "/auth/jwt/login", "-t", str(ha.jwt_path)]


def role_valid(pg, user: str) -> bool:
    """The PostgreSQL role Vault created exists and its VALID UNTIL is in the future."""
    return pg.psql(f"SELECT rolvaliduntil > now() FROM pg_roles WHERE rolname = '{user}'"
                   ).strip() == "t"


def ok_paths(node: clusterlib.RaftNode, since: float) -> list[str]:
    """Paths the node answered without error after `since` (unix time), from its audit log."""
    out = []
    for e in audit_entries(node.audit_log, "response"):
        t = e["time"].rstrip("Z").split(".")[0]
        when = calendar.timegm(time.strptime(t, "%Y-%m-%dT%H:%M:%S"))
        if when >= int(since) and not e.get("error"):
            out.append(e["request"]["path"])
    return out


def test_cluster_is_three_voters_one_active_and_haproxy_routes_to_it(ha):
    cluster = ha.cluster
    assert cluster.voters() == {"node1": True, "node2": True, "node3": True}
    active = cluster.active()
    assert sorted(n.health() for n in cluster.nodes) == [200, 429, 429]
    assert ha.haproxy.up_servers() == {active.name}
    status, body = api(ha.haproxy.addr, "", "GET", "sys/leader")
    assert status == 200 and body["leader_address"] == active.addr and body["ha_enabled"]


def test_pointed_straight_at_a_standby_it_works(ha, tmp_path, pg):
    """A standby forwards what it cannot answer itself to the active node: logins, minted
    database credentials and renewals all reach the active node, and rconfd does not notice."""
    standby = ha.cluster.standbys()[0]
    active = ha.cluster.active()
    before = len(audit_request_paths(active.audit_log))
    r = rconfd("-d", config(tmp_path), *login(ha, standby.addr))
    assert r.rc == 0, r.err
    db = json.loads((tmp_path / "out" / "db.json").read_text())
    assert db["kv"] == "alice" and role_valid(pg, db["user"])
    forwarded = audit_request_paths(active.audit_log)[before:]
    assert "auth/jwt/login" in forwarded and "database/creds/mydb" in forwarded


def test_a_standby_that_redirects_is_followed(ha, tmp_path, pg):
    """The same standby, told not to forward (X-Vault-No-Request-Forwarding, set by HAProxy),
    answers what must run on the active node with a real 307 to the active node's api_addr:
    the transport follows it, keeping the method, the body and the token, in one-shot and in
    daemon mode (the lease renewals are redirected too)."""
    active = ha.cluster.active()
    log_before = ha.haproxy.log.read_text().count("\n")
    r = rconfd("-d", config(tmp_path), *login(ha, ha.haproxy.redirect_addr))
    assert r.rc == 0, r.err
    db = json.loads((tmp_path / "out" / "db.json").read_text())
    assert db["kv"] == "alice" and role_valid(pg, db["user"])

    def redirected() -> list[str]:  # HAProxy may log a request a moment after its answer
        lines = ha.haproxy.log.read_text().splitlines()[log_before:]
        return [ln for ln in lines if "standby-no-forwarding" in ln and " 307 " in ln]

    with contextlib.suppress(TimeoutError):
        wait_until(lambda: sum(p in "".join(redirected()) for p in (
            "/v1/auth/jwt/login", "/v1/database/creds/mydb")) == 2, 5, interval=0.1)
    seen = "\n".join(ha.haproxy.log.read_text().splitlines()[log_before:])  # for the message
    assert any("/v1/auth/jwt/login" in ln for ln in redirected()), f"{seen}\n{r.err}"
    assert any("/v1/database/creds/mydb" in ln for ln in redirected()), f"{seen}\n{r.err}"

    # daemon mode: the lease is renewed through the redirect
    since = time.time()
    d = DaemonProc("-d", config(tmp_path / "d"), *login(ha, ha.haproxy.redirect_addr), "-v",
                   log=tmp_path / "daemon.log")
    try:
        d.wait_for(lambda: RENEWED.search(d.text()), 40, "a lease renewal")
    finally:
        assert d.stop() == 0, d.text()
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: "/v1/sys/leases/renew" in "".join(redirected()), 5, interval=0.1)
    renewed = [ln for ln in redirected() if "/v1/sys/leases/renew" in ln]
    assert renewed and "sys/leases/renew" in ok_paths(active, since)
    assert "error" not in d.text().lower()


def test_killing_the_active_node_during_a_daemon_run(ha, tmp_path, pg):
    """SIGKILL the active node while rconfd -D renews its leases through HAProxy. A standby is
    elected, HAProxy switches to it, and meanwhile: every credential on disk stays a live
    PostgreSQL role, the file is never emptied, partial or rewritten by a failed request (its
    content changes only to new valid credentials), and renewals resume on the new leader."""
    cluster, proxy = ha.cluster, ha.haproxy
    out = tmp_path / "out" / "db.json"
    old = cluster.active()
    rfd, wfd = os.pipe()
    d = DaemonProc("-d", config(tmp_path), *login(ha, proxy.addr), "-v", "-r", wfd,
                   env={"RCONFD_TIMEOUT": "2"}, log=tmp_path / "daemon.log", pass_fds=(wfd,))
    os.close(wfd)
    seen: dict[int, tuple[bytes, int]] = {}  # inode -> (content, mtime): one per written file

    def sample() -> dict:
        st = out.stat()
        content = out.read_bytes()
        if out.stat().st_ino != st.st_ino:  # replaced between stat and read: sample again
            return sample()
        version = (content, st.st_mtime_ns)
        assert seen.setdefault(st.st_ino, version) == version, "a file touched in place"
        return json.loads(content)  # never empty or partial

    try:
        assert os.read(rfd, 10) == b"\n"
        # kill the active node 1 s before the first lease renewal is due, so that the renewal
        # meets the outage (a new leader takes a few seconds to be elected and become active)
        due = d.wait_for(lambda: RENEW_IN.search(d.text()), 20, "the renewal scheduled")
        time.sleep(max(0.0, float(due.group(1)) - 1.0))
        users = {sample()["user"]}
        killed = time.time()
        old.kill()
        new = cluster.wait_active(60, not_=old)
        elected = time.time() - killed
        wait_until(lambda: proxy.up_servers() == {new.name}, 10, interval=0.1,
                   what="HAProxy routing to the new leader")
        # past the max TTLs, on the new leader, and until the token was renewed there (its
        # renewal falls anywhere in 60-85 % of its 60 s TTL: within 51 s of the previous one)
        end, cap = time.time() + 35, time.time() + 95
        while time.time() < end or (time.time() < cap
                                    and "auth/token/renew-self" not in ok_paths(new, killed)):
            db = sample()
            if db["user"] not in users:
                users.add(db["user"])
            assert role_valid(pg, db["user"]), f"{db['user']} is not a live role on disk"
            assert db["kv"] == "alice"
            time.sleep(0.3)
        assert d.proc.poll() is None, d.text()
    finally:
        code = d.stop()
        os.close(rfd)
        if not old.alive():
            cluster.restart(old)  # back to three nodes for whatever runs next
    assert code == 0, d.text()
    # the killed node came back as a standby of the new leader (RaftCluster.restart)
    assert sorted(n.health() for n in cluster.nodes) == [200, 429, 429]
    assert cluster.active() is new and all(cluster.voters().values())
    after = ok_paths(new, killed)
    assert "sys/leases/renew" in after, after  # renewals resumed on the new leader
    assert "auth/token/renew-self" in after, after
    # past the lease's max TTL: a new credential, from the new leader
    assert "database/creds/mydb" in after, after
    assert len(users) >= 2 and len(seen) == len({c for c, _ in seen.values()}) == len(users)
    log = d.text()
    # the renewal due during the election failed, and was retried until the new leader answered
    assert "Vault unavailable" in log, log
    assert log.rindex("Vault available again") > log.rindex("Vault unavailable"), log
    assert "internal error" not in log and "Traceback" not in log
    print(f"new leader {new.name} active {elected:.1f}s after SIGKILL; "
          f"{len(users)} credential(s) rendered; {len(seen)} file version(s)")
