"""Scenario: restarts (issue 13) — credentials minted over N restarts spread over S seconds, with
and without --state-dir, next to OpenBao Agent restarted alike; and the time to readiness of a
restart.

Each variant starts once (that start mints: a fresh state dir), then is restarted N times, one
restart every S/N seconds:

- rconfd-py -D under a real s6-svscan, restarted with `s6-svc -r` (SIGTERM, then s6 starts it
  again), with --state-dir and with --state-dir none;
- rconfd-py -D killed with SIGKILL and started again, with and without the state dir; readiness
  is the newline on its -r fd, timed from the spawn;
- `bao agent` (daemon config of tools.py) killed with SIGKILL and started again; "ready" is its
  db.json written anew.

Mints are counted after the first start: new PostgreSQL roles (`pg_roles` `v-%`) and
`pki/issue` requests in the audit log. Leases and certificates live 1 h here, so nothing but a
restart can cause a mint.
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rconfd_py.dev.seed import Ttls
from rconfd_py.dev.stack import start

from . import tools

LONG = Ttls(token_ttl="1h", token_max_ttl="24h", db_default_ttl="1h", db_max_ttl="24h",
            pki_ttl="1h", pki_max_ttl="24h")
ROLES = "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%'"


def env() -> dict[str, str]:
    """The tools' environment; run from a checkout (not the installed wheel), its rconfd_py."""
    e = tools.env()
    if tools.RCONFD[0] == sys.executable:
        e["PYTHONPATH"] = str(tools.ROOT)
    return e


def counts(stack) -> tuple[int, int]:
    users = int(stack.pg.psql(ROLES).strip())
    certs = sum(1 for line in stack.audit_log.read_text().splitlines()
                if '"type":"request"' in line.replace(" ", "")
                and json.loads(line)["request"]["path"] == tools.PKI)
    return users, certs


def wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise RuntimeError(f"timed out waiting for {what}")


def spawn_ready(argv: list[str], log) -> tuple[subprocess.Popen, float]:
    """rconfd-py -D with -r on a pipe: the process and its seconds to readiness."""
    r, w = os.pipe()
    t0 = time.monotonic()
    proc = subprocess.Popen([*argv, "-r", str(w)], pass_fds=(w,), stdout=log,
                            stderr=subprocess.STDOUT, env=env())
    os.close(w)
    try:
        if os.read(r, 1) != b"\n":
            raise RuntimeError(f"rconfd-py exited {proc.wait()} before readiness")
    finally:
        os.close(r)
    return proc, time.monotonic() - t0


def killed(stack, work: Path, state: bool, restarts: int, period: float) -> dict:
    out = work / "out"
    argv = tools.rconfd_argv(tools.rconfd_config(work, out), stack.addr, work / "jwt", "-D",
                             "--state-dir", str(work / "state") if state else "none")
    with open(work / "rconfd.log", "w") as log:
        before, ready = sigkilled(lambda: spawn_ready(argv, log), stack, restarts, period)
    return result(stack, before, ready)


def sigkilled(spawn, stack, restarts: int, period: float) -> tuple[tuple[int, int], list[float]]:
    """Start with `spawn` (-> the process, its seconds to readiness), then `restarts` times: wait
    `period`, SIGKILL, start again. The mint counts after the first start, each readiness."""
    proc, _ = spawn()
    before, ready = counts(stack), []
    try:
        for _ in range(restarts):
            time.sleep(period)
            proc.kill()
            proc.wait()
            proc, seconds = spawn()
            ready.append(seconds)
    finally:
        proc.kill()
        proc.wait()
    return before, ready


def s6(stack, work: Path, state: bool, restarts: int, period: float) -> dict:
    out = work / "out"
    argv = tools.rconfd_argv(tools.rconfd_config(work, out), stack.addr, work / "jwt", "-D",
                             "--state-dir", str(work / "state") if state else "none", "-r", "3")
    service = work / "scan" / "rconfd"
    service.mkdir(parents=True)
    (service / "notification-fd").write_text("3\n")
    (service / "run").write_text(f"#!/bin/sh\nexec {shlex.join(argv)} 2>>{work}/rconfd.log\n")
    (service / "run").chmod(0o755)
    svscan = subprocess.Popen(["s6-svscan", str(work / "scan")], env=env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def status() -> tuple[str, str]:
        text = subprocess.run(["s6-svstat", "-o", "pid,ready", str(service)],
                              capture_output=True, text=True, check=False).stdout.split()
        return (text[0], text[1]) if len(text) == 2 else ("", "")

    try:
        pid = wait(lambda: status()[1] == "true" and status()[0], 30, "first readiness")
        before, ready = counts(stack), []
        for _ in range(restarts):
            time.sleep(period)
            t0 = time.monotonic()
            subprocess.run(["s6-svc", "-r", str(service)], check=True)
            pid = wait(lambda old=pid: (s := status())[1] == "true" and s[0] not in ("", old)
                       and s[0], 30, "readiness after s6-svc -r")
            ready.append(time.monotonic() - t0)  # includes the 10 ms polling of s6-svstat
    finally:
        subprocess.run(["s6-svscanctl", "-t", str(work / "scan")], check=False)
        try:
            svscan.wait(20)
        finally:
            if svscan.poll() is None:
                svscan.kill()
                svscan.wait()
    return result(stack, before, ready)


def agent(stack, work: Path, restarts: int, period: float) -> dict:
    out = work / "out"
    argv = tools.agent_argv(tools.agent_config(work, out, stack.addr, work / "jwt", False))
    target = out / "db.json"

    def spawn(log) -> tuple[subprocess.Popen, float]:
        t0, wall = time.monotonic(), time.time()
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env())
        wait(lambda: target.exists() and target.stat().st_mtime >= wall, 30, "agent render")
        return proc, time.monotonic() - t0

    with open(work / "agent.log", "w") as log:
        before, ready = sigkilled(lambda: spawn(log), stack, restarts, period)
    time.sleep(1)  # the last render's requests reach the audit log
    return result(stack, before, ready)


def result(stack, before: tuple[int, int], ready: list[float]) -> dict:
    users, certs = counts(stack)
    return {"restarts": len(ready), "db_users": users - before[0], "certs": certs - before[1],
            "ready_median_s": statistics.median(ready), "ready_max_s": max(ready)}


VARIANTS = ("rconfd-py s6-svc -r, state", "rconfd-py s6-svc -r, no state",
            "rconfd-py SIGKILL, state", "rconfd-py SIGKILL, no state", "bao agent SIGKILL")


def run(work: Path, restarts: int = 20, seconds: float = 60.0) -> dict:
    period = seconds / restarts
    results: dict = {"restarts": restarts, "seconds": seconds}
    with start(work / "restarts-stack", postgres=True, audit=True, ttls=LONG) as stack:
        for i, name in enumerate(VARIANTS):
            w = work / f"restarts-{i}"
            w.mkdir(parents=True)
            stack.write_jwt(w / "jwt")
            print(f"restarts: {name} ...", flush=True)
            if name.startswith("bao agent"):
                results[name] = agent(stack, w, restarts, period)
            elif "s6" in name:
                results[name] = s6(stack, w, "no state" not in name, restarts, period)
            else:
                results[name] = killed(stack, w, "no state" not in name, restarts, period)
            print(f"  {results[name]}", flush=True)
    return results


def table(results: dict) -> str:
    lines = [(f"{results['restarts']} restarts in {results['seconds']:.0f} s, after a first "
              f"start (leases and certificates live 1 h):"), "",
             "| variant | new database users | new certificates | readiness (median / max) |",
             "|---|---|---|---|"]
    for name in VARIANTS:
        r = results[name]
        lines.append(f"| {name} | {r['db_users']} | {r['certs']} | "
                     f"{r['ready_median_s'] * 1000:.0f} / {r['ready_max_s'] * 1000:.0f} ms |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m benchmarks.restarts [RESTARTS SECONDS]
    import tempfile

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    s = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    with tempfile.TemporaryDirectory(prefix="rconfd-restarts-") as tmp:
        res = run(Path(tmp), n, s)
    print(table(res))
