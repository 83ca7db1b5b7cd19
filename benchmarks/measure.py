"""Measuring child processes: wall time, peak RSS and CPU from wait4(), live RSS/CPU from /proc."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    wall: float  # seconds
    peak_rss_mb: float
    cpu: float  # user + system seconds
    rc: int


TIME = "/usr/bin/time"  # GNU time (Debian package `time`)


def run(argv: list[str], env: dict | None = None, cwd: str | None = None) -> Sample:
    """Run to completion under GNU time. (Not os.wait4 from here: Linux carries the peak RSS of
    the forking parent — this Python, with hvac loaded — into the child across exec.)"""
    if not os.access(TIME, os.X_OK):
        raise RuntimeError(f"{TIME} is missing: apt-get install time")
    out = f"/tmp/rconfd-bench-time-{os.getpid()}"
    t0 = time.perf_counter()
    proc = subprocess.run([TIME, "-f", "%e %M %U %S", "-o", out, *argv], env=env, cwd=cwd,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace")
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {err[-500:]}")
    with open(out) as f:
        _, rss_kb, user, system = f.read().split()[-4:]
    os.unlink(out)
    return Sample(wall, int(rss_kb) / 1024, float(user) + float(system), proc.returncode)


def rss_mb(pid: int) -> float:
    """Resident set of a live process (its children not included)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class CpuMeter:
    """CPU seconds of a process tree from its start: every thread (exited ones included) and
    every child (hooks, `exe` secrets).

    A cgroup v1 `cpuacct` group of its own when this machine lets us make one (root): the
    kernel's nanosecond count for all its tasks. Otherwise the sum of /proc/PID/task/*/schedstat
    (live threads only: a thread that ran and exited is not counted) — the report says which.
    Start the process with `wrap(argv)` so it is in the group from its first instruction."""

    ROOT = "/sys/fs/cgroup/cpuacct"

    def __init__(self, name: str):
        self.group: str | None = None
        self.pid: int | None = None
        path = os.path.join(self.ROOT, f"rconfd-bench-{name}-{os.getpid()}")
        try:
            os.mkdir(path)
            self.group = path
        except OSError:
            pass

    @property
    def method(self) -> str:
        return "cgroup cpuacct" if self.group else "schedstat of live threads"

    def wrap(self, argv: list[str]) -> list[str]:
        """argv run by a shell that first moves itself into the group, then execs (same PID;
        a Popen preexec_fn is not safe in this threaded harness)."""
        if not self.group:
            return argv
        procs = os.path.join(self.group, "cgroup.procs")
        return ["/bin/sh", "-c", f'echo $$ 2>/dev/null > "{procs}"; exec "$@"', "sh", *argv]

    def seconds(self) -> float:
        if self.group and not self._joined():
            self.close()  # the move was refused (a read-only or delegated hierarchy)
            self.group = None
        if self.group:
            with open(os.path.join(self.group, "cpuacct.usage")) as f:
                return int(f.read()) / 1e9
        assert self.pid is not None, "set .pid to the process to measure"
        return live_threads_cpu(self.pid)

    def _joined(self) -> bool:
        if self.pid is None:
            return True
        with open(os.path.join(self.group, "cgroup.procs")) as f:
            return str(self.pid) in f.read().split()

    def close(self) -> None:
        if self.group:
            try:
                os.rmdir(self.group)  # empty once the measured processes have exited
            except OSError:
                pass


def live_threads_cpu(pid: int) -> float:
    """CPU time of a live process: the scheduler's nanosecond on-CPU time summed over its
    threads (/proc/PID/task/*/schedstat). utime/stime in /proc/PID/stat are sampled at each
    10 ms tick, too coarse for a daemon that uses a few milliseconds a minute."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue  # a thread that just exited
        return total / 1e9
    except OSError:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def summary(values: list[float], fmt: str = "{:.3f}") -> str:
    """median (min–max)"""
    if not values:
        return "–"
    med = statistics.median(values)
    return f"{fmt.format(med)} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
