"""Daemon mode with local secrets only (no Vault): a first render that fails is retried, one
error line per distinct failure, a SIGHUP with a broken config keeps it retrying; with nothing
leased it exits 0, or becomes --idle-exec."""

from __future__ import annotations

import json
import signal
import time

from cli import DaemonProc


def test_a_failing_first_render_logs_once_and_survives_a_broken_reload(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    out = tmp_path / "out"
    out.write_text("a file where the output dir should be")
    (cfg / "t.jsonnet").write_text("{ 'a.txt': std.extVar('secrets').pw }")
    good = {"t.jsonnet": {"dir": str(out), "secrets": {"env:str:PW": "pw"}}}
    (cfg / "c.json").write_text(json.dumps(good))
    d = DaemonProc("-d", cfg, "-v", "--poll", "100", env={"PW": "hunter22"}, log=tmp_path / "log")
    try:
        d.wait_for(lambda: d.text().count("first render failed") >= 4, 30, "four attempts")
        assert d.text().count(": error: ") == 1, d.text()  # the same error: logged once
        (cfg / "c.json").write_text(json.dumps({**good, "bogus": 1}))
        d.proc.send_signal(signal.SIGHUP)
        d.wait_for(lambda: "reload failed, keeping the current config" in d.text(), 10,
                   "the broken reload")
        time.sleep(1)
        assert d.proc.poll() is None, d.text()  # still retrying, not exited 2
        (cfg / "c.json").write_text(json.dumps(good))
        out.unlink()
        d.proc.send_signal(signal.SIGHUP)
        d.wait_for(lambda: (out / "a.txt").exists(), 20, "the first render")
        assert (out / "a.txt").read_text() == "hunter22\n"
    finally:
        assert d.stop() == 0
    assert "hunter22" not in d.text()


def idle_config(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "t.jsonnet").write_text("{ 'a.txt': 'static' }")
    (cfg / "c.json").write_text(json.dumps({"t.jsonnet": {"dir": str(tmp_path / "out")}}))
    return cfg


def test_nothing_leased_becomes_the_idle_exec_command(tmp_path):
    d = DaemonProc("-d", idle_config(tmp_path), "--idle-exec", "/bin/sleep 30",
                   log=tmp_path / "log")
    try:
        d.wait_for(lambda: open(f"/proc/{d.proc.pid}/cmdline").read().startswith("/bin/sleep"),
                   20, "the exec")  # the same process, now the idle command
        assert (tmp_path / "out" / "a.txt").read_text() == "static\n"
        assert "replacing rconfd-py with /bin/sleep" in d.text()
    finally:
        d.stop()


def test_an_idle_exec_that_cannot_run_exits_0_with_one_error(tmp_path):
    d = DaemonProc("-d", idle_config(tmp_path), "--idle-exec", "/nonexistent/pause",
                   log=tmp_path / "log")
    assert d.proc.wait(20) == 0
    d.stop()
    assert "cannot run --idle-exec /nonexistent/pause: No such file or directory" in d.text()


def test_a_reloaded_template_keeps_its_failure_counter():
    """`status` calls it "ever" and the metrics export it as a counter: SIGHUP must not reset it."""
    from rconfd_py.daemon.loop import _carried
    from rconfd_py.ledger import TemplateEntry

    prev = TemplateEntry()
    prev.failed_total["write"] = 3
    assert _carried(prev).failed_total == {"render": 0, "write": 3}
