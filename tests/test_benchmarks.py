"""The benchmark harness still works (one quick round), so `make bench` does not rot. It
checks that both tools render the same job; it asserts no speed."""

from __future__ import annotations

from helpers import require_binaries

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

    for argv in (["--python", "/nonexistent/python3"], ["--only", "daemn"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("python -m benchmarks: error: --") and "Traceback" not in err
