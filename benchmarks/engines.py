"""Scenario 4: rjsonnet (jrsonnet) vs the official jsonnet binding on one realistic template."""

from __future__ import annotations

import time
from pathlib import Path

from rconfd_py.render import render_files

from . import tools

TEMPLATE = Path(__file__).parent / "data" / "realistic.jsonnet"
SECRETS = {"db": {"username": "v-app-abc", "password": "p4ss:w0rd'x"}}


def run(runs: int) -> tuple[dict[str, list[float]], list[str]]:
    """Times per engine, and the output files on which the two engines differ (both valid:
    std.manifestYamlDoc quotes plain strings in the official engine, not in jrsonnet)."""
    jpath = [str(tools.ROOT / "templates" / "lib")]
    out: dict[str, list[float]] = {}
    first = render_files(TEMPLATE, SECRETS, jpath, "rjsonnet")
    for engine, n in (("rjsonnet", runs * 5), ("jsonnet", max(1, runs - 1))):
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            files = render_files(TEMPLATE, SECRETS, jpath, engine)
            times.append(time.perf_counter() - t0)
        out[engine] = times
    differ = sorted(name for name in first if files.get(name) != first[name])
    return out, differ
