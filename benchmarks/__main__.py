"""python -m benchmarks: see benchmarks/__init__.py."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from rconfd_py.dev import postgres
from rconfd_py.dev.stack import start

from . import daemon, engines, oneshot, report, scale, tools

SCENARIOS = ("oneshot", "daemon", "scale", "engines")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--runs", type=int, default=7, help="interleaved runs per tool (7)")
    p.add_argument("--daemon-seconds", type=float, default=120, help="daemon run length (120)")
    p.add_argument("--daemon-runs", type=int, default=3,
                   help="interleaved daemon runs per tool (3)")
    p.add_argument("--scale", default="1,10,100,1000", help="template counts (1,10,100,1000)")
    p.add_argument("--only", default=",".join(SCENARIOS), help="scenarios to run")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    p.add_argument("--python", help="interpreter to run rconfd-py on (default: the "
                   "distribution's /usr/bin/python3 when it can make a venv, else this one)")
    args = p.parse_args(argv)
    only = args.only.split(",")
    if unknown := set(only) - set(SCENARIOS):
        p.error(f"--only: unknown scenario {', '.join(sorted(unknown))} "
                f"(expected some of {', '.join(SCENARIOS)})")
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
    path = report.write(results, Path(args.out))
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
