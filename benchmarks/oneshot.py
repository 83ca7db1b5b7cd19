"""Scenario 1: one-shot — JWT login + kv v2 + database creds + pki cert rendered to files."""

from __future__ import annotations

import shutil
from pathlib import Path

from . import measure, tools

FILES = ("kv.txt", "db.json", "cert.pem")


def run(stack, work: Path, runs: int) -> dict[str, list[measure.Sample]]:
    jwt = stack.write_jwt(work / "jwt")
    out = {"rconfd-py": work / "out-rconfd", "bao agent": work / "out-agent"}
    argv = {
        "rconfd-py": tools.rconfd_argv(tools.rconfd_config(work, out["rconfd-py"]), stack.addr,
                                       jwt),
        "bao agent": tools.agent_argv(tools.agent_config(work, out["bao agent"], stack.addr, jwt,
                                                         exit_after_auth=True)),
    }
    env = tools.env()
    samples: dict[str, list[measure.Sample]] = {name: [] for name in argv}
    for i in range(runs + 1):  # the first round warms caches and is dropped
        order = list(argv) if i % 2 == 0 else list(reversed(argv))
        for name in order:
            shutil.rmtree(out[name], ignore_errors=True)
            s = measure.run(argv[name], env=env)
            missing = [f for f in FILES if not (out[name] / f).is_file()]
            if missing:
                raise RuntimeError(f"{name} did not write {missing}")
            if i:
                samples[name].append(s)
    return samples
