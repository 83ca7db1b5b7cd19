"""python -m benchmarks: see benchmarks/__init__.py."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from rconfd_py.dev import postgres
from rconfd_py.dev.stack import start

from . import daemon, engines, fleet, oneshot, report, restarts, scale, tools

SCENARIOS = ("oneshot", "daemon", "scale", "engines")
# not run by default: ~25 min at N=100 with the default windows (--only fleet, or add it);
# restarts: ~6 min (5 variants x 60 s, its own stack with 1 h leases)
EXTRA = ("fleet", "restarts")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--runs", type=int, default=7, help="interleaved runs per tool (7)")
    p.add_argument("--daemon-seconds", type=float, default=120, help="daemon run length (120)")
    p.add_argument("--daemon-runs", type=int, default=3,
                   help="interleaved daemon runs per tool (3)")
    p.add_argument("--scale", default="1,10,100,1000", help="template counts (1,10,100,1000)")
    p.add_argument("--only", default=",".join(SCENARIOS), help="scenarios to run")
    p.add_argument("--fleet", type=int, default=100,
                   help="fleet scenario: daemons per tool (100); not in the default --only")
    p.add_argument("--fleet-steady", type=float, default=300,
                   help="fleet: steady window in seconds (300)")
    p.add_argument("--fleet-freeze", type=float, default=30,
                   help="fleet: seconds the server is frozen with SIGSTOP (30)")
    p.add_argument("--fleet-after", type=float, default=60,
                   help="fleet: seconds watched after the thaw (60)")
    p.add_argument("--fleet-stagger", type=float, default=10,
                   help="fleet: the daemons start spread over this many seconds (10)")
    p.add_argument("--fleet-audit-dir", help="fleet: keep each fleet's audit log there")
    p.add_argument("--fleet-tools", default=",".join(fleet.TOOLS),
                   help="fleet: the tools to run fleets of (rconfd-py,bao agent); at N=200 the "
                   "agents need ~20 GB of RSS")
    p.add_argument("--restarts", type=int, default=20,
                   help="restarts scenario: restarts per variant (20); not in the default --only")
    p.add_argument("--restarts-seconds", type=float, default=60,
                   help="restarts: seconds the restarts are spread over (60)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    p.add_argument("--python", help="interpreter to run rconfd-py on (default: the "
                   "distribution's /usr/bin/python3 when it can make a venv, else this one)")
    args = p.parse_args(argv)
    only = args.only.split(",")
    if unknown := set(only) - set(SCENARIOS + EXTRA):
        p.error(f"--only: unknown scenario {', '.join(sorted(unknown))} "
                f"(expected some of {', '.join(SCENARIOS + EXTRA)})")
    if args.fleet < 1 or min(args.fleet_steady, args.fleet_after) <= 0 or \
            min(args.fleet_freeze, args.fleet_stagger) < 0:
        p.error("--fleet must be >= 1, --fleet-steady/--fleet-after > 0, "
                "--fleet-freeze/--fleet-stagger >= 0")
    fleet_tools = tuple(t.strip() for t in args.fleet_tools.split(",") if t.strip())
    if not fleet_tools or set(fleet_tools) - set(fleet.TOOLS):
        p.error(f"--fleet-tools: expected some of {', '.join(fleet.TOOLS)}")
    if args.python and not (os.path.isfile(args.python) and os.access(args.python, os.X_OK)):
        p.error(f"--python: {args.python} is not an executable file")
    if not postgres.available():
        print("benchmarks need PostgreSQL server binaries (apt-get install postgresql)")
        return 2
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="rconfd-bench-") as tmp:
        work = Path(tmp)
        print("installing rconfd-py from its wheel in a fresh venv ...", flush=True)
        results["python"] = tools.install(work, args.python)
        print(f"rconfd-py runs on {results['python']}", flush=True)
        if set(only) & set(SCENARIOS):
            results |= shared_stack(work, only, args)
        if "fleet" in only:
            print(f"fleet: {args.fleet} daemons per tool, steady {args.fleet_steady:.0f} s, "
                  f"freeze {args.fleet_freeze:.0f} s, after {args.fleet_after:.0f} s ...",
                  flush=True)
            results["fleet"] = fleet.run(work, args.fleet, args.fleet_steady, args.fleet_freeze,
                                         args.fleet_after, args.fleet_stagger,
                                         keep_audit=Path(args.fleet_audit_dir)
                                         if args.fleet_audit_dir else None,
                                         which=fleet_tools)
            fleet.save(results["fleet"], Path(args.out) / "fleet.json")
        if "restarts" in only:
            print(f"restarts: {args.restarts} in {args.restarts_seconds:.0f} s per variant ...",
                  flush=True)
            results["restarts"] = restarts.run(work, args.restarts, args.restarts_seconds)
    path = report.write(results, Path(args.out))
    print(path.read_text())
    return 0


def shared_stack(work: Path, only: list[str], args) -> dict:
    """The scenarios that share one stack (the fleet starts its own, one per tool)."""
    results: dict = {}
    if set(only) & {"oneshot", "daemon", "scale"}:
        with start(work / "stack", postgres=True, audit=True) as stack:
            if "oneshot" in only:
                print(f"one-shot: {args.runs} interleaved runs per tool ...", flush=True)
                results["oneshot"] = oneshot.run(stack, work, args.runs)
            if "daemon" in only:
                print(f"daemon: {args.daemon_runs} x {args.daemon_seconds:.0f} s per tool ...",
                      flush=True)
                results["daemon"] = daemon.run(stack, work, args.daemon_seconds,
                                               args.daemon_runs)
            if "scale" in only:
                sizes = [int(n) for n in args.scale.split(",")]
                print(f"scale: {sizes} templates ...", flush=True)
                results["scale"] = scale.run(stack, work, sizes, runs=3)
    if "engines" in only:
        print("engines ...", flush=True)
        results["engines"] = engines.run(runs=3)
    return results


if __name__ == "__main__":
    sys.exit(main())
