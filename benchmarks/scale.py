"""Scenario 3: one rconfd-py daemon with N templates, each with its own kv secret: time to
readiness (the -r newline) and RSS once ready."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from . import measure, tools


@dataclass
class ScaleResult:
    templates: int
    ready_s: list[float]
    rss_mb: list[float]


def seed(stack, n: int) -> None:
    client = stack.client()
    for i in range(n):
        client.secrets.kv.v2.create_or_update_secret(
            path=f"bench/s{i}", secret={"user": f"u{i}", "password": f"p{i}"}, mount_point="kv")


def config(work: Path, n: int) -> Path:
    cfg = work / f"scale-{n}"
    cfg.mkdir(parents=True, exist_ok=True)
    out = work / f"scale-out-{n}"
    body = {}
    for i in range(n):
        (cfg / f"t{i}.jsonnet").write_text(
            "local s = std.extVar('secrets').kv.data;\n"
            f"{{ 'app{i}.ini': std.manifestIni({{ sections: {{ db: s }} }}) }}\n")
        body[f"t{i}.jsonnet"] = {"dir": str(out), "secrets": {
            f"vault:test-role:kv/data/bench/s{i}": "kv"}}
    (cfg / "scale.json").write_text(json.dumps(body))
    return cfg


def ready_once(argv: list[str]) -> tuple[float, float]:
    r, w = os.pipe()
    t0 = time.perf_counter()
    proc = subprocess.Popen([*argv, "-r", str(w)], env=tools.env(), pass_fds=(w,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    try:
        if os.read(r, 1) != b"\n":
            raise RuntimeError(f"no readiness (exit {proc.wait()})")
        ready = time.perf_counter() - t0
        time.sleep(0.2)  # settle: the first pass's garbage is freed
        return ready, measure.rss_mb(proc.pid)
    finally:
        os.close(r)
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def run(stack, work: Path, sizes: list[int], runs: int) -> list[ScaleResult]:
    seed(stack, max(sizes))
    jwt = stack.write_jwt(work / "jwt-scale")
    results = {n: ScaleResult(n, [], []) for n in sizes}
    argvs = {n: tools.rconfd_argv(config(work, n), stack.addr, jwt, "-D", "--poll", "3600")
             for n in sizes}
    for _ in range(runs):
        for n in sizes:
            ready, rss = ready_once(argvs[n])
            results[n].ready_s.append(ready)
            results[n].rss_mb.append(rss)
    return list(results.values())
