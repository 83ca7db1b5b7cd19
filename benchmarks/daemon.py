"""Scenario 2: daemon for a fixed time with short TTLs — RSS, CPU after the first render, Vault
requests (file audit device), database credentials minted, and whether every rendered
credential was live at every second. The two tools alternate, `runs` times each."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from . import measure, tools


@dataclass
class DaemonResult:
    seconds: float
    first_render: float
    rss_end_mb: float
    cpu_after_first: float
    requests: int
    logins: int
    minted: int
    samples: int
    dead_samples: int
    cpu_method: str


def audit_paths(log: Path) -> list[str]:
    paths = []
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("type") == "request":
            paths.append(entry["request"]["path"])
    return paths


def run_one(name: str, argv: list[str], out: Path, stack, seconds: float) -> DaemonResult:
    shutil.rmtree(out, ignore_errors=True)
    before = len(audit_paths(stack.audit_log))
    meter = measure.CpuMeter(name.replace(" ", "-"))
    t0 = time.time()
    proc = subprocess.Popen(meter.wrap(argv), env=tools.env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    meter.pid = proc.pid
    try:
        while not all((out / f).exists() for f in ("kv.txt", "db.json", "cert.pem")):
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited {proc.returncode} before rendering")
            time.sleep(0.02)
        first = time.time() - t0
        cpu0 = meter.seconds()
        samples = dead = 0
        end = time.time() + seconds
        while time.time() < end:
            user = _user(out / "db.json")
            ok = user is not None and stack.pg.psql(
                f"SELECT rolvaliduntil > now() FROM pg_roles WHERE rolname = '{user}'"
            ).strip() == "t"
            samples += 1
            dead += not ok
            time.sleep(1)
        rss = measure.rss_mb(proc.pid)
        cpu = meter.seconds() - cpu0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        meter.close()
    paths = audit_paths(stack.audit_log)[before:]
    return DaemonResult(seconds, first, rss, cpu, len(paths),
                        sum(p.startswith("auth/jwt/login") for p in paths),
                        paths.count(tools.DB), samples, dead, meter.method)


def _user(path: Path) -> str | None:
    for _ in range(3):  # a reader may race a non-atomic writer
        try:
            return json.loads(path.read_text())["user"]
        except (OSError, ValueError, KeyError):
            time.sleep(0.05)
    return None


def run(stack, work: Path, seconds: float, runs: int = 1) -> dict[str, list[DaemonResult]]:
    jwt = stack.write_jwt(work / "jwt-daemon")
    out_r, out_a = work / "daemon-rconfd", work / "daemon-agent"
    contenders = {
        "rconfd-py": (tools.rconfd_argv(tools.rconfd_config(work / "d", out_r), stack.addr, jwt,
                                        "-D"), out_r),
        "bao agent": (tools.agent_argv(tools.agent_config(work, out_a, stack.addr, jwt,
                                                          exit_after_auth=False)), out_a),
    }
    results: dict[str, list[DaemonResult]] = {name: [] for name in contenders}
    for i in range(runs):
        for name, (argv, out) in contenders.items():
            print(f"  {name} run {i + 1}/{runs} ...", flush=True)
            results[name].append(run_one(name, argv, out, stack, seconds))
    return results
