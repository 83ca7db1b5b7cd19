"""Scenario `fleet`: N daemons of one tool against one OpenBao dev server, then the same with
the other tool (never both at once: each fleet has a fresh server and database to itself).

Each daemon renders the same job as the other scenarios (kv + database creds, PKI cert) with
fleet lifetimes (database lease 60 s, token 120 s / max 300 s). The fleet starts staggered over
`stagger` seconds, as a fleet that "started together"; once every daemon has rendered, a steady
window of `steady` seconds; then the server is frozen (SIGSTOP) for `freeze` seconds and thawed
(SIGCONT), and the fleet is watched for `after` seconds.

Measured per tool: RSS and PSS per daemon (/proc/PID/smaps_rollup, end of the steady window),
CPU per daemon per minute (one cgroup for the fleet, steady window), requests per second
(audit log timestamps: mean, p99, max, variance/mean), time until every rendered database user
is valid in PostgreSQL again after the thaw, failed requests (audit responses with an error)
and database credentials minted. Every loop is bounded in time and count; loopback only.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from rconfd_py.dev.seed import Ttls
from rconfd_py.dev.stack import start

from . import measure, tools

FLEET_TTLS = Ttls(token_ttl="120s", token_max_ttl="300s", db_default_ttl="60s",
                  db_max_ttl="300s", pki_ttl="120s", pki_max_ttl="300s")
FILES = ("kv.txt", "db.json", "cert.pem")
DUP_WINDOW = 5.0  # seconds after the thaw in which a repeated request counts as a duplicate
REPLACED_AT = 10.0  # seconds after the thaw: were the credentials replaced by then really dead?


@dataclass
class FleetResult:
    tool: str
    n: int
    steady: float
    freeze: float
    after: float
    start_seconds: float  # first launch → every daemon rendered
    rss_mb: list[float]
    pss_mb: list[float]
    cpu_per_daemon_minute: float
    cpu_method: str
    steady_rates: dict  # per-second request counts in the steady window: mean, p99, max, vmr
    steady_requests: int
    steady_failed: int
    steady_minted: int
    steady_checks: int  # rendered credentials checked against PostgreSQL
    steady_dead: int
    dead_at_thaw: int  # rendered credentials not valid at the first check after SIGCONT
    all_live_after: float | None  # seconds after SIGCONT; None: not within `after`
    first_second: int  # requests in [thaw, thaw + 1 s)
    first_second_failed: int
    after_requests: int
    after_failed: int
    after_minted: int
    after_checks: int
    after_dead: int
    after_rates: dict
    errors: dict = field(default_factory=dict)  # error text (first 80 chars) → count, after
    duplicates_at_thaw: int = 0
    after_mint_failed: int = 0
    steady_first5: int = 0  # requests in the first 300 s of the steady window
    steady_paths: dict = field(default_factory=dict)  # path → requests in the steady window
    replaced: int | None = None  # database users replaced REPLACED_AT s after the thaw (None:
    replaced_alive: int | None = None  # not sampled); ... whose old role was still valid then
    marks: dict = field(default_factory=dict)  # epoch seconds: steady_from/to, freeze, thaw, end


def _ts(stamp: str) -> float:
    """Audit `time` (RFC 3339, nanoseconds, Z) → epoch seconds (Python 3.11 parses it)."""
    return datetime.fromisoformat(stamp).timestamp()


def read_audit(log: Path) -> tuple[list[tuple[float, str, str]], list[tuple[float, str, str]]]:
    """(requests: (time, path, what: the lease id, else the client token, both HMAC'd by the
    audit device)), (failed responses: (time, path, error))."""
    requests, failed = [], []
    with open(log) as f:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            kind = e.get("type")
            if kind == "request":
                req = e["request"]
                what = (req.get("data") or {}).get("lease_id") or req.get("client_token", "")
                requests.append((_ts(e["time"]), req.get("path", ""), str(what)))
            elif kind == "response" and e.get("error"):
                failed.append((_ts(e["time"]), e["request"].get("path", ""), str(e["error"])))
    return requests, failed


def poisson_p99(mean: float) -> int:
    """The 99th percentile of a Poisson count with this mean: what random arrivals would give."""
    if mean <= 0:
        return 0
    if mean > 500:  # normal approximation
        return math.ceil(mean + 2.326 * math.sqrt(mean))
    k, p = 0, math.exp(-mean)
    total = p
    while total < 0.99 and k < 10_000:
        k += 1
        p *= mean / k
        total += p
    return k


def rates(times: list[float], t0: float, t1: float) -> dict:
    """Requests per whole second in [t0, t1): mean, p99, max, variance/mean (1 is random)."""
    n = max(1, int(t1 - t0))
    counts = [0] * n
    for t in times:
        if t0 <= t < t0 + n:
            counts[int(t - t0)] += 1
    mean = sum(counts) / n
    var = sum((c - mean) ** 2 for c in counts) / n
    srt = sorted(counts)
    return {"mean": mean, "p99": srt[min(n - 1, math.ceil(0.99 * n) - 1)], "max": srt[-1],
            "vmr": var / mean if mean else float("nan"), "poisson_p99": poisson_p99(mean),
            "seconds": n}


def smaps_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MB from /proc/PID/smaps_rollup."""
    rss = pss = 0.0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) / 1024
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss, pss


def _user(path: Path) -> str | None:
    try:
        return json.loads(path.read_text())["user"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_live(pg, outs: list[Path]) -> int:
    """How many of the rendered database users are NOT valid in PostgreSQL right now (a missing
    or unreadable file counts as dead). One psql call for the whole fleet."""
    users = [_user(o / "db.json") for o in outs]
    names = sorted({u for u in users if u and u.replace("-", "").replace("_", "").isalnum()})
    live: set[str] = set()
    if names:
        quoted = ",".join(f"'{u}'" for u in names)
        out = pg.psql(f"SELECT rolname FROM pg_roles WHERE rolname IN ({quoted}) "
                      "AND (rolvaliduntil IS NULL OR rolvaliduntil > now())")
        live = set(out.split())
    return sum(u not in live for u in users)


def by_path(requests: list[tuple[float, str, str]], t0: float, t1: float) -> dict[str, int]:
    """Requests in [t0, t1) per path."""
    counts: dict[str, int] = {}
    for t, path, _ in requests:
        if t0 <= t < t1:
            counts[path] = counts.get(path, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _valid_name(user: str | None) -> bool:
    return bool(user) and user.replace("-", "").replace("_", "").isalnum()


def replaced_alive(pg, before: list[str | None], outs: list[Path]) -> tuple[int, int]:
    """(How many daemons render another database user than `before`, how many of those old
    users are still valid in PostgreSQL): a credential replaced while its lease still lived (a
    renewal landed after all, or a planned re-issue at a re-login) stays valid; one that really
    expired was dropped by Vault."""
    old = sorted({b for b, o in zip(before, outs, strict=True)
                  if _valid_name(b) and _user(o / "db.json") not in (None, b)})
    if not old:
        return 0, 0
    quoted = ",".join(f"'{u}'" for u in old)
    out = pg.psql(f"SELECT rolname FROM pg_roles WHERE rolname IN ({quoted}) "
                  "AND (rolvaliduntil IS NULL OR rolvaliduntil > now())")
    return len(old), len(set(out.split()))


def _print(msg: str) -> None:
    print(msg, flush=True)


def _launch(argvs: list[list[str]], meter: measure.CpuMeter, stagger: float) -> list:
    procs = []
    t0 = time.monotonic()
    for i, argv in enumerate(argvs):
        delay = t0 + stagger * i / max(1, len(argvs)) - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        procs.append(subprocess.Popen(meter.wrap(argv), env=tools.env(), stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    meter.pid = procs[0].pid
    return procs


def _stop(procs: list, timeout: float = 20.0) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def _fleet_cpu(meter: measure.CpuMeter, procs: list) -> float:
    if meter.group:
        return meter.seconds()
    return sum(measure.live_threads_cpu(p.pid) for p in procs if p.poll() is None)


def run_tool(tool: str, work: Path, n: int, steady: float, freeze: float, after: float,
             stagger: float, log=None, keep_audit: Path | None = None) -> FleetResult:
    log = log or _print
    work.mkdir(parents=True, exist_ok=True)
    with start(work / "stack", postgres=True, audit=True, ttls=FLEET_TTLS) as stack:
        jwt = stack.write_jwt(work / "jwt", ttl=6 * 3600)
        outs, argvs = [], []
        for i in range(n):
            d = work / f"d{i}"
            out = d / "out"
            shutil.rmtree(out, ignore_errors=True)
            d.mkdir(parents=True, exist_ok=True)
            outs.append(out)
            if tool == "rconfd-py":
                argvs.append(tools.rconfd_argv(tools.rconfd_config(d, out), stack.addr, jwt, "-D"))
            else:
                argvs.append(tools.agent_argv(tools.agent_config(d, out, stack.addr, jwt,
                                                                 exit_after_auth=False)))
        meter = measure.CpuMeter(f"fleet-{tool.replace(' ', '-')}")
        t_launch = time.time()
        procs = _launch(argvs, meter, stagger)
        try:
            deadline = time.monotonic() + 60 + 2 * n
            while not all((o / f).exists() for o in outs for f in FILES):
                if dead := [i for i, p in enumerate(procs) if p.poll() is not None]:
                    raise RuntimeError(f"{tool} daemon {dead[0]} exited "
                                       f"{procs[dead[0]].returncode} before rendering")
                if time.monotonic() > deadline:
                    missing = sum(not (o / f).exists() for o in outs for f in FILES)
                    raise RuntimeError(f"{tool}: {missing} files still missing after "
                                       f"{60 + 2 * n} s")
                time.sleep(0.2)
            started = time.time() - t_launch
            log(f"  {tool}: {n} daemons rendered in {started:.1f} s; steady {steady:.0f} s ...")
            # steady window
            s0, cpu0 = time.time(), _fleet_cpu(meter, procs)
            checks = dead = 0
            while time.time() < s0 + steady:
                dead += check_live(stack.pg, outs)
                checks += n
                time.sleep(min(2.0, max(0.0, s0 + steady - time.time())))
            s1 = time.time()
            cpu = _fleet_cpu(meter, procs) - cpu0
            mem = [smaps_mb(p.pid) for p in procs]
            # freeze
            log(f"  {tool}: freezing the server {freeze:.0f} s ...")
            before = [_user(o / "db.json") for o in outs]
            frozen = time.time()
            os.kill(stack.bao_pid, signal.SIGSTOP)
            try:
                time.sleep(freeze)
            finally:
                os.kill(stack.bao_pid, signal.SIGCONT)
            thaw = time.time()
            dead_at_thaw = None
            all_live = None
            a_checks = a_dead = 0
            next_slow = thaw
            replaced = None
            # fast checks until all live, then one per second; bounded by `after` and a count
            for _ in range(int(after * 20) + 10):
                now = time.time()
                if now >= thaw + after:
                    break
                bad = check_live(stack.pg, outs)
                if dead_at_thaw is None:
                    dead_at_thaw = bad
                if all_live is None and bad == 0:
                    all_live = time.time() - thaw
                if replaced is None and now >= thaw + min(REPLACED_AT, after / 2):
                    replaced = replaced_alive(stack.pg, before, outs)
                if now >= next_slow:  # the 1 s samples count as checks
                    a_checks += n
                    a_dead += bad
                    next_slow += 1.0
                time.sleep(0.05 if all_live is None else
                           max(0.0, min(next_slow, thaw + after) - time.time()))
            t_end = time.time()
        finally:
            _stop(procs)
            meter.close()
            if stack.bao.proc.poll() is None:
                os.kill(stack.bao_pid, signal.SIGCONT)  # never leave a stopped server behind
        requests, failed = read_audit(stack.audit_log)
        if keep_audit is not None:
            keep_audit.mkdir(parents=True, exist_ok=True)
            shutil.copy(stack.audit_log, keep_audit / f"audit-{tool.replace(' ', '-')}.log")
    req_t = [t for t, _, _ in requests]
    mints = [t for t, p, _ in requests if p == tools.DB]
    seen: set[tuple[str, str]] = set()
    duplicates = 0  # same path for the same lease or token again within DUP_WINDOW of the thaw
    for t, path, what in requests:
        if thaw <= t < thaw + DUP_WINDOW:
            duplicates += (path, what) in seen
            seen.add((path, what))

    def count(ts, a, b):
        return sum(a <= t < b for t in ts)

    fail_t = [t for t, _, _ in failed]
    errors: dict[str, int] = {}
    for t, path, err in failed:
        if thaw <= t < t_end:
            key = f"{path}: {' '.join(err.split())[:80]}"
            errors[key] = errors.get(key, 0) + 1
    return FleetResult(
        tool=tool, n=n, steady=steady, freeze=freeze, after=after, start_seconds=started,
        rss_mb=[m[0] for m in mem], pss_mb=[m[1] for m in mem],
        cpu_per_daemon_minute=cpu / n / ((s1 - s0) / 60), cpu_method=meter.method,
        steady_rates=rates(req_t, s0, s1), steady_requests=count(req_t, s0, s1),
        steady_failed=count(fail_t, s0, s1), steady_minted=count(mints, s0, s1),
        steady_checks=checks, steady_dead=dead, dead_at_thaw=dead_at_thaw or 0,
        all_live_after=all_live, first_second=count(req_t, thaw, thaw + 1),
        first_second_failed=count(fail_t, thaw, thaw + 1),
        after_requests=count(req_t, thaw, t_end), after_failed=count(fail_t, thaw, t_end),
        after_minted=count(mints, thaw, t_end), after_checks=a_checks, after_dead=a_dead,
        after_rates=rates(req_t, thaw, t_end), errors=errors, duplicates_at_thaw=duplicates,
        after_mint_failed=sum(thaw <= t < t_end and p == tools.DB for t, p, _ in failed),
        replaced=replaced[0] if replaced else None,
        replaced_alive=replaced[1] if replaced else None,
        steady_first5=count(req_t, s0, min(s1, s0 + 300)), steady_paths=by_path(requests, s0, s1),
        marks={"steady_from": s0, "steady_to": s1, "freeze": frozen, "thaw": thaw, "end": t_end})


TOOLS = ("rconfd-py", "bao agent")


def run(work: Path, n: int = 100, steady: float = 300, freeze: float = 30, after: float = 60,
        stagger: float = 10, log=None, keep_audit: Path | None = None,
        which: tuple[str, ...] = TOOLS) -> dict[str, FleetResult]:
    """Each tool's fleet (both by default), one after the other, each on a fresh stack."""
    log = log or _print
    results = {}
    for tool in which:
        log(f"fleet: {n} x {tool} ...")
        results[tool] = run_tool(tool, work / f"fleet-{tool.replace(' ', '-')}", n, steady,
                                 freeze, after, stagger, log, keep_audit)
    return results


def save(results: dict[str, FleetResult], path: Path) -> None:
    """The raw figures as JSON, next to the report."""
    from dataclasses import asdict

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: asdict(v) for k, v in results.items()}, indent=1))


def table(results: dict[str, FleetResult]) -> list[str]:
    """The side-by-side Markdown table (one column per tool measured)."""
    cols = [results[t] for t in TOOLS if t in results]
    r = cols[0]

    def med(v):
        return measure.median(v)

    def live(x):
        return "not within the window" if x.all_live_after is None else f"{x.all_live_after:.1f} s"

    def replaced(x):
        if x.replaced is None:
            return "not sampled"
        return f"{x.replaced_alive} / {x.replaced} (at {min(REPLACED_AT, x.after / 2):.0f} s)"

    def rate(x, w):
        s = getattr(x, w)
        return (f"{s['mean']:.2f} / {s['p99']} / {s['max']} / {s['vmr']:.1f} "
                f"(Poisson p99 {s['poisson_p99']})")

    rows = [
        ("daemons rendered after the first launch", lambda x: f"{x.start_seconds:.1f} s"),
        ("RSS / PSS per daemon (median)",
         lambda x: f"{med(x.rss_mb):.1f} MB / {med(x.pss_mb):.1f} MB"),
        ("CPU per daemon per minute (steady)", lambda x: f"{x.cpu_per_daemon_minute:.4f} s"),
        ("requests/s steady: mean / p99 / max / variance÷mean", lambda x: rate(x, "steady_rates")),
        ("requests per daemon per 5 min (steady)",
         lambda x: f"{x.steady_requests / x.n * 300 / x.steady:.1f}"),
        ("... in the first 5 min of the steady window only",
         lambda x: f"{x.steady_first5 / x.n * 300 / min(300, x.steady):.1f}"),
        ("failed requests (steady)", lambda x: str(x.steady_failed)),
        ("database credentials minted (steady)", lambda x: str(x.steady_minted)),
        ("dead rendered credentials (steady checks)",
         lambda x: f"{x.steady_dead} of {x.steady_checks}"),
        ("dead rendered credentials at the thaw", lambda x: f"{x.dead_at_thaw} of {x.n}"),
        ("**all daemons live again after the thaw**", live),
        ("requests in the first second after the thaw (failed)",
         lambda x: f"{x.first_second} ({x.first_second_failed})"),
        ("**failed requests after the thaw**",
         lambda x: f"{x.after_failed} of {x.after_requests}"),
        ("**database credential requests after the thaw (failed)**",
         lambda x: f"{x.after_minted} ({x.after_mint_failed})"),
        ("database users replaced soon after the thaw: still valid then (replaced although "
         "alive, planned re-issues included) / all", replaced),
        ((f"repeated requests in the {DUP_WINDOW:.0f} s after the thaw (same path, same lease "
          "or token)"), lambda x: str(x.duplicates_at_thaw)),
        ("requests/s after the thaw: mean / p99 / max / variance÷mean",
         lambda x: rate(x, "after_rates")),
        ("dead rendered credentials (1 s checks after the thaw)",
         lambda x: f"{x.after_dead} of {x.after_checks}"),
    ]
    lines = [(f"N = {r.n} daemons per tool, started over the stagger window; steady "
              f"{r.steady:.0f} s; server frozen {r.freeze:.0f} s; watched {r.after:.0f} s "
              f"after the thaw; CPU by {r.cpu_method}"), "",
             "| | " + " | ".join(x.tool for x in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    lines += ["| " + " | ".join([label, *(get(x) for x in cols)]) + " |" for label, get in rows]
    for x in cols:
        if x.steady_paths:
            lines += ["", f"Steady requests per daemon per 5 min by path, {x.tool}: " + "; ".join(
                f"{k} {v / x.n * 300 / x.steady:.2f}" for k, v in x.steady_paths.items())]
        if x.errors:
            lines += ["", f"Errors after the thaw, {x.tool}: " + "; ".join(
                f"{k} ×{v}" for k, v in sorted(x.errors.items(), key=lambda kv: -kv[1])[:6])]
    return lines
