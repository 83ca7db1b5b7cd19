"""The benchmark harness still works (one quick round), so `make bench` does not rot. It
checks that both tools render the same job; it asserts no speed."""

from __future__ import annotations

import json
import uuid

import pytest

from helpers import require, require_binaries

from benchmarks import oneshot, report


def test_one_round_of_the_oneshot_scenario(tmp_path, stack, pg):
    require_binaries("/usr/bin/time")
    samples = oneshot.run(stack, tmp_path, runs=1)
    for name in ("rconfd-py", "bao agent"):
        (s,) = samples[name]
        assert s.rc == 0 and s.wall > 0 and s.peak_rss_mb > 1
        # both rendered the same kv value
        out = tmp_path / ("out-rconfd" if name == "rconfd-py" else "out-agent")
        assert (out / "kv.txt").read_text().strip() == "alice"
    text = report.write({"oneshot": samples}, tmp_path / "results").read_text()
    assert "| wall time (s) |" in text and "bao agent" in text


def test_the_engine_template_renders_its_five_files():
    from benchmarks.engines import SECRETS, TEMPLATE
    from rconfd_py.render import render_files

    jpath = [str(TEMPLATE.parent.parent.parent / "templates" / "lib")]
    files = render_files(TEMPLATE, SECRETS, jpath, "rjsonnet")
    assert set(files) == {"config.json", "app.ini", "app.yaml", "app.env", "upstreams.conf"}


def test_a_short_daemon_round_measures_both_tools(tmp_path, stack, pg):
    from benchmarks import daemon

    results = daemon.run(stack, tmp_path, seconds=2, runs=1)
    for name in ("rconfd-py", "bao agent"):
        (r,) = results[name]
        assert r.cpu_after_first >= 0 and r.rss_end_mb > 1 and r.samples >= 1
        assert r.dead_samples == 0 and r.logins == 1 and r.minted == 1
    text = report.write({"daemon": results}, tmp_path / "results").read_text()
    assert "| CPU after first render (s) |" in text and "1 runs each" in text


def test_bad_arguments_are_one_line_errors(capsys):
    import pytest

    from benchmarks.__main__ import main

    for argv in (["--python", "/nonexistent/python3"], ["--only", "daemn"],
                 ["--fleet-tools", "rconfd-py,vault agent"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("python -m benchmarks: error: --") and "Traceback" not in err


def test_a_tiny_fleet_with_a_freeze_measures_both_tools(tmp_path):
    """N=2 per tool, 3 s steady, 2 s freeze, 4 s after: every figure of the fleet table is
    measured (from the audit log, /proc and PostgreSQL), and the table names both tools."""
    from benchmarks import fleet
    from rconfd_py.dev import postgres

    require("PostgreSQL server binaries", postgres.available())
    results = fleet.run(tmp_path, n=2, steady=3, freeze=2, after=4, stagger=0.5,
                        log=lambda _: None)
    for name in ("rconfd-py", "bao agent"):
        r = results[name]
        assert len(r.rss_mb) == 2 and all(pss > 1 and rss >= pss for rss, pss in
                                          zip(r.rss_mb, r.pss_mb, strict=True))
        assert r.cpu_per_daemon_minute >= 0
        assert r.steady_dead == 0 and r.steady_checks >= 2  # 60 s leases: all live throughout
        assert r.all_live_after is not None and r.all_live_after < 4
        assert r.steady_failed == 0 and r.after_minted == 0  # nothing expired in 2 s
        assert r.after_failed == 0 and r.duplicates_at_thaw == 0  # nothing timed out
        assert (r.replaced, r.replaced_alive) == (0, 0)  # sampled: none replaced
        assert r.steady_rates["seconds"] == 3
        assert sum(r.steady_paths.values()) == r.steady_requests
    text = "\n".join(fleet.table(results))
    assert "| **all daemons live again after the thaw** |" in text and "bao agent" in text
    alone = fleet.table({"rconfd-py": results["rconfd-py"]})  # --fleet-tools rconfd-py
    assert "| | rconfd-py |" in alone and "|---|---|" in alone
    assert not any("bao agent" in line for line in alone)


def test_replaced_credentials_are_told_apart_by_whether_their_role_still_lives(tmp_path, pg,
                                                                              request):
    """A daemon whose database user changed after the thaw: the old role still valid means it
    was replaced although alive; an expired or dropped one, that it really died."""
    from benchmarks.fleet import replaced_alive

    alive, expired = (f"fleet_{k}_{uuid.uuid4().hex[:8]}" for k in ("alive", "expired"))
    pg.psql(f"CREATE ROLE {alive} VALID UNTIL 'infinity'; "
            f"CREATE ROLE {expired} VALID UNTIL '2000-01-01'")
    request.addfinalizer(lambda: pg.psql(f"DROP ROLE IF EXISTS {alive}; "
                                         f"DROP ROLE IF EXISTS {expired}"))
    before = [alive, expired, "fleet_dropped", "fleet_same", None]
    outs = []
    for i, now in enumerate(["new1", "new2", "new3", "fleet_same", "new5"]):
        (tmp_path / f"d{i}").mkdir()
        (tmp_path / f"d{i}" / "db.json").write_text(json.dumps({"user": now}))
        outs.append(tmp_path / f"d{i}")
    assert replaced_alive(pg, before, outs) == (3, 1)
    assert replaced_alive(pg, [None, "x;drop", None, "fleet_same", None], outs) == (0, 0)


def test_audit_requests_by_path_and_their_timestamps():
    from benchmarks.fleet import _ts, by_path

    reqs = [(1.0, "sys/leases/renew", ""), (2.0, "sys/leases/renew", ""), (2.5, "x", ""),
            (9.0, "x", "")]
    assert by_path(reqs, 1.0, 3.0) == {"sys/leases/renew": 2, "x": 1}  # most first; 9.0 out
    assert _ts("2026-11-30T10:45:01.123456789Z") == pytest.approx(1796035501.123456)
    assert _ts("2026-11-30T10:45:01Z") == 1796035501.0


def test_audit_rates_and_poisson_reference():
    from benchmarks.fleet import poisson_p99, rates

    s = rates([0.1, 0.2, 0.3, 1.5, 3.9, 9.0], 0, 4)  # 9.0 is outside the window
    assert s["seconds"] == 4 and s["max"] == 3 and s["mean"] == 5 / 4
    assert abs(s["vmr"] - ((3 - 1.25) ** 2 + 0.25 ** 2 + 1.25 ** 2 + 0.25 ** 2) / 4 / 1.25) < 1e-9
    assert poisson_p99(1.0) == 4 and poisson_p99(0) == 0


def test_a_short_restarts_round_counts_mints(tmp_path, stack, pg):
    """Two restarts per variant: with the state dir nothing is minted, without it each restart
    mints a database user and a certificate."""
    from benchmarks import restarts

    require_binaries("s6-svscan", "s6-svc", "s6-svstat", "s6-svscanctl")
    results = restarts.run(tmp_path, restarts=2, seconds=2)
    for name in restarts.VARIANTS:
        r = results[name]
        assert r["restarts"] == 2
        minted = (r["db_users"], r["certs"])
        if name.startswith("rconfd-py"):
            assert minted == ((0, 0) if "no state" not in name else (2, 2)), (name, r)
    assert results["bao agent SIGKILL"]["db_users"] == 2
    assert "| rconfd-py SIGKILL, state | 0 | 0 |" in restarts.table(results)


def test_benchmark_daemons_keep_their_status_out_of_the_machines_run(tmp_path):
    from benchmarks import tools

    argv = tools.rconfd_argv(tmp_path / "d1" / "rconfd", "http://x", tmp_path / "jwt", "-D")
    assert argv[argv.index("--status-file") + 1] == str(tmp_path / "d1" / "status.json")
    assert argv[argv.index("--state-dir") + 1] == "none"
    mine = tools.rconfd_argv(tmp_path / "c", "http://x", tmp_path / "jwt", "--status-file", "s")
    assert mine.count("--status-file") == 1
