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
    from rconfd_py.render import render

    jpath = [str(TEMPLATE.parent.parent.parent / "templates" / "lib")]
    files = render(TEMPLATE, SECRETS, jpath, "rjsonnet")
    assert set(files) == {"config.json", "app.ini", "app.yaml", "app.env", "upstreams.conf"}
