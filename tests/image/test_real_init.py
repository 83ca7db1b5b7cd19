"""The golden image under s6-overlay's real /init (issue 16): the chain base -> s6 layer ->
myservice on Debian bookworm with s6-overlay 3.1.5.0 built from source (s6overlay.py, cached),
run with podman + runc against the test OpenBao on loopback.

What the image's promises rest on, each checked under the real stage 1/2/3: CMD waits for
rconfd-py's readiness; with-contenv hands VAULT_ADDR/RCONFD_* to rconfd-py and LD_PRELOAD to the
services; the dependent service starts after its config exists and is HUPped on rotation;
`s6-svc -r` leaves one rconfd-py; a config error and a critical service's failure halt the
container with a non-zero code; `podman stop` ends everything in time, revoking on exit.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from chain import DEBIAN, STORE, run
from test_image import configmap_dir

pytestmark = pytest.mark.timeout(1800)  # the first test builds the chain (minutes)

DB = "vault:${VAULT_ROLE}:database/creds/mydb"
DB_CONFIG = {"db.jsonnet": {"dir": "/etc/db", "mode": "0600",
                            "secrets": {DB: "db"}}}
DB_TEMPLATE = "local s = std.extVar('secrets'); { 'user': s.db.username }\n"
# CMD: what it sees when it starts, then it waits like a long-running CMD would
CMD = ("sh", "-c", ('echo "cmd: start rconfd=$(s6-svstat -o up,ready /run/service/rconfd) '
                    'app.env=$(test -f /etc/app/app.env && echo yes || echo no)"; '
                    "exec sleep infinity"))
GRACE_MS = 3000  # S6_KILL_GRACETIME, s6-overlay's default


def rconfd_env(stack, vault_env) -> list[str]:
    return ["-e", f"VAULT_ADDR={stack.addr}", "-e", "RCONFD_LOGIN_PATH=/auth/jwt/login",
            "-e", "VAULT_ROLE=test-role", "-e", "POD_NAMESPACE=default",
            "-v", (f"{vault_env['VAULT_JWT_PATH']}:"
                   "/var/run/secrets/kubernetes.io/serviceaccount/token:ro")]


def config_mounts(cfg: Path) -> list[str]:
    """The files of ``cfg`` one by one (a ConfigMap's items) next to the image's own."""
    return [a for f in sorted(cfg.iterdir()) for a in ("-v", f"{f}:/etc/rconfd/{f.name}:ro")]


def wait_ready(c, timeout_ms: int = 60000) -> None:
    r = c.exec("s6-svwait", "-U", "-t", str(timeout_ms), "/run/service/rconfd",
               timeout=timeout_ms / 1000 + 30, check=False)
    assert r.returncode == 0, f"rconfd not ready: {r.stderr}\n" + "\n".join(c.logs()[-30:])


def proc_file(c, pid: str, what: str, user: str = "root") -> str:
    """/proc/PID/WHAT read as the process's own user (the container has no CAP_SYS_PTRACE)."""
    return c.exec("cat", f"/proc/{pid}/{what}", user=user).stdout


def test_services_cmd_reload_restart_and_stop_under_real_init(container, stack, vault_env, pg,
                                                              tmp_path, real_init_chain):
    stack.client().write_data("kv/data/app/config", data={"data": {"greeting": "hi"}})
    cfg = configmap_dir(tmp_path / "cfg")  # deploy/kubernetes/configmap.yaml, as is
    (cfg / "db.json").write_text(json.dumps(DB_CONFIG))
    (cfg / "db.jsonnet").write_text(DB_TEMPLATE)
    roles = "SELECT rolname FROM pg_roles WHERE rolname LIKE 'v-%'"
    before = set(pg.psql(roles).split())
    c = container.start(*rconfd_env(stack, vault_env), *config_mounts(cfg),
                        "-e", "RCONFD_REVOKE_ON_EXIT=1", "-e", f"S6_KILL_GRACETIME={GRACE_MS}",
                        cmd=CMD)
    wait_ready(c)
    # PID 1 is s6-overlay's: s6-svscan of stage 1, rconfd-py and myservice below it
    assert "s6-svscan" in proc_file(c, "1", "cmdline")
    svstat = c.exec("s6-svstat", "/run/service/rconfd").stdout
    assert svstat.startswith("up ") and "ready" in svstat, svstat

    # CMD started only once rconfd-py had signalled readiness (every file written)
    cmd = c.wait_for_line("cmd: start", 60)
    assert c.logs()[cmd] == "cmd: start rconfd=true true app.env=yes"
    assert c.exec("cat", "/etc/app/app.env").stdout == "GREETING='hi'\n"
    (user,) = set(pg.psql(roles).split()) - before
    assert c.exec("cat", "/etc/db/user").stdout == user + "\n"

    # with-contenv: VAULT_ADDR and RCONFD_* reach rconfd-py, LD_PRELOAD reaches both services
    rconfd_pid = c.pid("rconfd")
    environ = proc_file(c, rconfd_pid, "environ").split("\0")
    assert f"VAULT_ADDR={stack.addr}" in environ
    assert {"RCONFD_LOGIN_PATH=/auth/jwt/login", "RCONFD_REVOKE_ON_EXIT=1"} <= set(environ)
    started = c.wait_for_line("myservice: start uid=", 60)
    myservice_pid = c.pid("myservice")
    for pid, user_ in ((myservice_pid, "myservice"), (rconfd_pid, "root")):
        env = proc_file(c, pid, "environ", user_).split("\0")
        assert f"LD_PRELOAD={DEBIAN.mimalloc_library}" in env
        assert "libmimalloc.so" in proc_file(c, pid, "maps", user_)

    # myservice started after its config existed (rconfd-py rendered it first), as its user
    lines = c.logs()
    rendered = next(i for i, ln in enumerate(lines) if "rendered 3 template(s)" in ln)
    assert rendered < lines.index("myservice: starting") < started
    uid = c.exec("id", "-u", "myservice").stdout.strip()
    assert uid != "0" and f"uid={uid} " in lines[started]

    # the 10 s certificate rotates: rconfd-py rewrites the config and HUPs myservice
    config = lines[started].split("config=")[1]
    reload = c.wait_for_line("myservice: reload uid=", 60, after=started)
    assert config not in c.logs()[reload]
    assert sum("myservice: start uid=" in ln for ln in c.logs()) == 1  # not restarted

    # s6-svc -r: the old rconfd-py is gone, exactly one runs, ready again
    c.exec("s6-svc", "-r", "/run/service/rconfd")
    deadline = time.monotonic() + 60
    while c.pid("rconfd") in ("-1", rconfd_pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    wait_ready(c)
    assert c.pgrep("rconfd-py -D") == [c.pid("rconfd")]

    # podman stop: SIGTERM to /init; stage 3 stops the services, and rconfd-py's
    # --revoke-on-exit drops the database user before anything is killed
    (user,) = set(pg.psql(roles).split()) - before  # the restart reused nothing: one user
    # Stage 3 stops the services (rconfd-py: SIGTERM, revoke, exit), then s6-linux-init sends
    # what is left TERM and sleeps the whole S6_KILL_GRACETIME before KILL, even with nothing
    # left: podman's timeout must exceed S6_SERVICES_GRACETIME + S6_KILL_GRACETIME, or podman
    # SIGKILLs /init (exit status 137; seen with both at 10 s).
    run(["podman", *STORE, "stop", "-t", str(3 + GRACE_MS // 1000 + 14), c.name], timeout=120)
    code = c.wait()
    text = "\n".join(c.logs())
    assert code != 137, text[-3000:]  # /init ended on its own in time (0 here)
    assert "revoked" in text and user not in pg.psql(roles).split(), text[-3000:]
    print(f"image chain: {real_init_chain}, exit status after podman stop: {code}")


def test_config_error_halts_the_container(container, stack, vault_env, tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "bad.json").write_text('{"bad.jsonnet": {"dir": "/etc/bad", "unknown_key": 1}}')
    (cfg / "bad.jsonnet").write_text("{}")
    c = container.start(*rconfd_env(stack, vault_env), *config_mounts(cfg), cmd=CMD)
    code = c.wait(timeout=120)
    text = "\n".join(c.logs())
    # finish wrote 2, then exited 125: stage 2, still waiting for rconfd's readiness, fails and
    # s6-overlay's rc.init halts with s6-rc's status (1) in place of it
    assert code == 1, text[-3000:]
    assert "rconfd-py: config error (exit 2): halting the container" in text, text[-3000:]
    assert "cmd: start" not in text  # CMD never ran: rconfd-py never became ready


def test_critical_service_failure_stops_the_container_with_its_code(container, stack,
                                                                     vault_env):
    c = container.start(*rconfd_env(stack, vault_env))
    c.wait_for_line("myservice: start uid=", 90)
    c.exec("s6-svc", "-1", "/run/service/myservice")  # SIGUSR1: myservice exits 3
    assert c.wait(timeout=120) == 3, "\n".join(c.logs()[-30:])
