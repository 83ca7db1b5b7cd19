"""The Markdown report (and the scale chart when matplotlib is there)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from . import measure
from .measure import median, summary


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    from rconfd_py.dev.bao import find_bao

    bao = subprocess.run([find_bao(), "version"], capture_output=True, text=True).stdout.strip()
    return (f"{platform.node()}: {cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, "
            f"{platform.system()} {platform.release()}, "
            f"harness Python {platform.python_version()}, "
            f"{bao}")


def ratio(a: float, b: float) -> str:
    return f"**{a / b:.2f}×**" if b else "–"


def write(results: dict, out_dir: Path) -> Path:
    lines = [f"# rconfd-py vs OpenBao Agent — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
             "", f"Machine: {machine()}", "",
             f"rconfd-py ran on: {results.get('python', sys.executable)}", "",
             "Ratios are rconfd-py ÷ agent (lower is better for rconfd-py). Medians with "
             "min–max; the two tools interleaved A B A B.", ""]
    if "oneshot" in results:
        s = results["oneshot"]
        r, a = s["rconfd-py"], s["bao agent"]
        lines += ["## One-shot: JWT login + kv v2 + database creds + pki cert → 3 files",
                  f"({len(r)} runs each)", "",
                  "| metric | rconfd-py | bao agent | ratio |", "|---|---|---|---|"]
        for label, get, fmt in (("wall time (s)", lambda x: x.wall, "{:.3f}"),
                                ("peak RSS (MB)", lambda x: x.peak_rss_mb, "{:.1f}"),
                                ("CPU (s)", lambda x: x.cpu, "{:.3f}")):
            rv, av = [get(x) for x in r], [get(x) for x in a]
            lines.append(f"| {label} | {summary(rv, fmt)} | {summary(av, fmt)} | "
                         f"{ratio(median(rv), median(av))} |")
        lines.append("")
    if "daemon" in results:
        d = results["daemon"]
        r, a = d["rconfd-py"], d["bao agent"]
        lines += [f"## Daemon, {r[0].seconds:.0f} s (db lease 10 s / max 60 s, pki 10 s, "
                  "token 20 s / max 60 s)",
                  f"({len(r)} runs each; CPU measured with {r[0].cpu_method})", "",
                  "| metric | rconfd-py | bao agent | ratio |", "|---|---|---|---|"]
        for label, get, fmt in (("first render (s)", "first_render", "{:.2f}"),
                                ("RSS at the end (MB)", "rss_end_mb", "{:.1f}"),
                                ("CPU after first render (s)", "cpu_after_first", "{:.3f}"),
                                ("Vault requests", "requests", "{:.0f}"),
                                ("of which logins", "logins", "{:.0f}"),
                                ("database credentials minted", "minted", "{:.0f}")):
            rv, av = [getattr(x, get) for x in r], [getattr(x, get) for x in a]
            lines.append(f"| {label} | {summary(rv, fmt)} | {summary(av, fmt)} | "
                         f"{ratio(median(rv), median(av))} |")
        live = [f"{sum(x.samples - x.dead_samples for x in v)}/{sum(x.samples for x in v)}"
                for v in (r, a)]
        lines.append(f"| rendered credential live, samples | {live[0]} | {live[1]} | |")
        lines.append("")
    if "scale" in results:
        lines += ["## Scale: one rconfd-py daemon, N templates × N distinct kv secrets", "",
                  "| templates | time to readiness (s) | RSS when ready (MB) | RSS per template "
                  "over N=1 (KB) |", "|---|---|---|---|"]
        base = median(results["scale"][0].rss_mb)
        for s in results["scale"]:
            growth = (median(s.rss_mb) - base) * 1024 / max(1, s.templates - 1)
            lines.append(f"| {s.templates} | {summary(s.ready_s)} | "
                         f"{summary(s.rss_mb, '{:.1f}')} | "
                         f"{growth:.0f} |" if s.templates > 1 else
                         f"| {s.templates} | {summary(s.ready_s)} | "
                         f"{summary(s.rss_mb, '{:.1f}')} | – |")
        lines.append("")
        _chart(results["scale"], out_dir)
    if "engines" in results:
        e, differ = results["engines"]
        lines += ["## Engines: one realistic template (5 files, JSON/INI/YAML, 40 services, "
                  "a library import)", "", "| engine | ms per render | runs |", "|---|---|---|"]
        for name, times in e.items():
            lines.append(f"| {name} | {summary([t * 1000 for t in times], '{:.1f}')} | "
                         f"{len(times)} |")
        lines += ["", f"rjsonnet is {median(e['jsonnet']) / median(e['rjsonnet']):.0f}× faster."]
        if differ:
            lines.append(f"Outputs differ on {', '.join(differ)}: the official engine quotes "
                         "plain strings in std.manifestYamlDoc, jrsonnet does not (both are "
                         "valid YAML for the same data).")
        lines.append("")
    if "fleet" in results:
        from .fleet import table

        lines += ["## Fleet: N daemons per tool on one OpenBao, a steady window, a server freeze",
                  "", *table(results["fleet"]), ""]
    if "restarts" in results:
        from .restarts import table as restarts_table

        lines += ["## Restarts: credentials minted, with and without --state-dir", "",
                  restarts_table(results["restarts"]), ""]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "latest.md"
    path.write_text("\n".join(lines))
    return path


def _chart(scale, out_dir: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    n = [s.templates for s in scale]
    fig, ax1 = plt.subplots(figsize=(6, 3.5))
    ax1.plot(n, [median(s.ready_s) for s in scale], "o-", label="time to readiness (s)")
    ax1.set_xscale("log")
    ax1.set_xlabel("templates (each with its own kv secret)")
    ax1.set_ylabel("seconds")
    ax2 = ax1.twinx()
    ax2.plot(n, [median(s.rss_mb) for s in scale], "s--", color="tab:orange", label="RSS (MB)")
    ax2.set_ylabel("MB")
    fig.legend(loc="upper left", bbox_to_anchor=(0.12, 0.88))
    ax1.set_title("rconfd-py: cost grows with work")
    fig.tight_layout()
    fig.savefig(out_dir / "scale.png", dpi=100)
    plt.close(fig)


__all__ = ["measure", "write"]
