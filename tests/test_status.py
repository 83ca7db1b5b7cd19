"""`rconfd-py status`, the status file and --metrics-addr, against a real daemon with local
secrets (no Vault): the file's content, mode and atomic replacement, its limit of one write per 5 s,
the exit codes, /metrics parsed by prometheus_client's own parser, /healthz through a real HTTP
client, and no secret value anywhere. (The outage: tests/daemon/test_status_outage.py.)"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cli import DaemonProc, rconfd
from helpers import require

from rconfd_py import status
from rconfd_py.ledger import Ledger

SECRET = "hunter22-s3cr3t-value"


def prometheus():
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        require("prometheus_client (the 'metrics' extra)", False)
    return text_string_to_metric_families


def local_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "cfg"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "t.jsonnet").write_text("{ 'a.txt': std.extVar('secrets').pw }")
    (cfg / "c.json").write_text(json.dumps(
        {"t.jsonnet": {"dir": str(tmp_path / "out"), "secrets": {"env:str:PW": "pw"}}}))
    return cfg


def metrics_port(d: DaemonProc) -> int:
    m = d.wait_for(lambda: re.search(r"/healthz on [^ ]+:(\d+)", d.text()), 15, "metrics line")
    return int(m.group(1))


def get(url: str) -> tuple[int, str]:
    """A real HTTP client: (status, body), 5xx included."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(port: int) -> dict:
    """name -> [(labels, value)] of every sample, parsed by prometheus_client.parser."""
    code, text = get(f"http://127.0.0.1:{port}/metrics")
    assert code == 200
    samples: dict = {}
    for family in prometheus()(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return samples


def test_status_metrics_and_healthz_of_a_running_daemon(tmp_path):
    prometheus()
    state = tmp_path / "run" / "rconfd-py"  # made by the daemon
    path = state / "status.json"
    cfg = local_config(tmp_path)
    conf = json.loads((cfg / "c.json").read_text())
    conf["t.jsonnet"]["hooks"] = {"modified": "/bin/true"}
    (cfg / "c.json").write_text(json.dumps(conf))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.txt").write_text("old\n")  # replaced: the modified hook runs
    d = DaemonProc("-d", cfg, "--poll", "100", "--metrics-addr", "0",
                   env={"PW": SECRET, "RCONFD_STATUS_FILE": str(path)}, log=tmp_path / "log")
    try:
        port = metrics_port(d)
        d.wait_for(lambda: path.exists() and json.loads(path.read_text())["ready"], 15, "ready")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        assert stat.S_IMODE(state.stat().st_mode) == 0o755
        r = rconfd("status", "--status-file", path)
        assert r.rc == 0, r.out + r.err
        assert "c.json:t.jsonnet" in r.out and str(tmp_path / "out" / "a.txt") in r.out
        assert "env:str:PW" in r.out and "kind=static" in r.out and "healthy" in r.out
        assert "last hook: modified hook ok" in r.out
        r = rconfd("status", "--json", env={"RCONFD_STATUS_FILE": str(path)})
        doc = json.loads(r.out)
        assert r.rc == 0 and doc["healthy"] and doc["ready"] and doc["pid"] == d.proc.pid
        (t,) = doc["templates"]
        assert t["files"] == [str(tmp_path / "out" / "a.txt")] and t["rendered_at"] > 0
        m = scrape(port)
        assert m["rconfd_ready"] == [({}, 1.0)]
        assert m["rconfd_expired"] == [({}, 0.0)]
        (labels, when), = m["rconfd_last_render_timestamp_seconds"]
        assert labels == {"template": "c.json:t.jsonnet"} and abs(when - time.time()) < 60
        assert ({"template": "c.json:t.jsonnet", "stage": "render"}, 0.0) in \
            m["rconfd_template_failures_total"]
        assert get(f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")
        assert get(f"http://127.0.0.1:{port}/nothing")[0] == 404
        for text in (path.read_text(), r.out, get(f"http://127.0.0.1:{port}/metrics")[1]):
            assert SECRET not in text and "hunter22" not in text
    finally:
        assert d.stop() == 0
    assert not path.exists()  # a stopped daemon leaves no status behind
    r = rconfd("status", "--status-file", path)
    assert r.rc == 2 and "no running daemon" in r.err
    assert SECRET not in d.text()


def test_a_failing_template_exits_1_and_says_why(tmp_path):
    """A daemon retrying its first render: not ready, failing with the error; /healthz 503;
    the secret, which the template's error quotes, is masked."""
    cfg = local_config(tmp_path)
    (cfg / "t.jsonnet").write_text("{ 'a.txt': error 'bad value ' + std.extVar('secrets').pw }")
    path = tmp_path / "status.json"
    d = DaemonProc("-d", cfg, "--poll", "100", "--metrics-addr", "127.0.0.1:0", "-v",
                   "--status-file", path, env={"PW": SECRET}, log=tmp_path / "log")
    try:
        port = metrics_port(d)
        d.wait_for(lambda: path.exists(), 15, "the status file")
        d.wait_for(lambda: "bad value" in path.read_text(), 15, "the failure")
        r = rconfd("status", "--status-file", path)
        assert r.rc == 1, r.out + r.err
        assert "NOT READY" in r.out and "UNHEALTHY" in r.out
        assert "first render FAILING since" in r.out and "bad value" in r.out
        code, body = get(f"http://127.0.0.1:{port}/healthz")
        assert code == 503 and body == "not ready\n"
        assert scrape(port)["rconfd_ready"] == [({}, 0.0)]
        assert SECRET not in path.read_text() and SECRET not in r.out
        time.sleep(max(0.0, d.started + 5.5 - time.time()))
        # retries at +2 s and +6 s (doubling): the held-back status writes (at most one a
        # second) wake the loop without retrying the first pass early
        assert d.text().count("first render failed") <= 3, d.text()
    finally:
        assert d.stop() == 0


def test_no_status_exits_2(tmp_path):
    assert rconfd("status", "--status-file", tmp_path / "absent.json").rc == 2
    r = rconfd("status", "--status-file", "none")
    assert r.rc == 2 and "--status-file none" in r.err
    dead = tmp_path / "dead.json"  # written by a process that is gone
    ledger = Ledger()
    ledger.ready_at = time.time()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    dead.write_text(json.dumps(status.build(ledger, pid, time.time(), None)))
    r = rconfd("status", "--status-file", dead)
    assert r.rc == 2, r.out + r.err
    alive = tmp_path / "alive.json"  # the same document from a live process: healthy
    alive.write_text(json.dumps(status.build(ledger, os.getpid(), time.time(), None)))
    assert rconfd("status", "--status-file", alive).rc == 0
    for broken in ({"started_at": "noon"}, {"secrets": [{"path": 1}]}, {"templates": None},
                   {"ready": None}):
        doc = {**status.build(ledger, os.getpid(), time.time(), None), **broken}
        if broken == {"ready": None}:
            del doc["ready"]  # a field missing
        alive.write_text(json.dumps(doc))
        r = rconfd("status", "--status-file", alive)
        assert r.rc == 2 and "malformed status file" in r.err and "Traceback" not in r.err, r.err


def test_status_file_none_writes_nothing(tmp_path):
    d = DaemonProc("-d", local_config(tmp_path), "--poll", "100", "--status-file", "none",
                   env={"PW": SECRET, "RCONFD_STATUS_FILE": str(tmp_path / "s.json")},
                   log=tmp_path / "log")
    try:
        d.wait_for(lambda: (tmp_path / "out" / "a.txt").exists(), 15, "the render")
        time.sleep(0.5)
        assert not (tmp_path / "s.json").exists()
    finally:
        assert d.stop() == 0


def test_a_planted_link_is_never_followed(tmp_path):
    """A non-root user plants links where the status file goes: the file it points to is never
    written; a link as the file's own name is replaced, not followed."""
    nobody = 65534
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    public = tmp_path / "public"
    public.mkdir()
    public.chmod(0o1777)  # like /tmp: anyone may create names there
    (public / "state").symlink_to(tmp_path)  # the directory itself is a link of nobody's
    os.lchown(public / "state", nobody, nobody)
    d = DaemonProc("-d", local_config(tmp_path), "--poll", "100",
                   "--status-file", public / "state" / "victim", env={"PW": SECRET},
                   log=tmp_path / "log")
    try:
        d.wait_for(lambda: "cannot write the status file" in d.text(), 15, "the refusal")
        assert d.proc.poll() is None  # a status file it cannot write does not stop it
    finally:
        assert d.stop() == 0
    assert victim.read_text() == "untouched"
    assert d.text().count("cannot write the status file") == 1  # once, not at every write

    own = tmp_path / "own"
    own.mkdir()
    (own / "status.json").symlink_to(victim)
    status.write_atomic(str(own / "status.json"), b"{}")
    assert victim.read_text() == "untouched"
    assert not (own / "status.json").is_symlink() and (own / "status.json").read_text() == "{}"


def test_writes_only_on_change_and_at_most_every_5_seconds(tmp_path):
    """And measures the cost of one write (printed with -s)."""
    now = [1000.0]
    ledger = Ledger()
    path = tmp_path / "s" / "status.json"
    published = []
    rep = status.Reporter(ledger, str(path), lambda: now[0], publish=published.append)
    assert rep.update() is None and path.exists()
    inode = path.stat().st_ino
    assert rep.update() is None and path.stat().st_ino == inode  # unchanged: not rewritten
    ledger.ready_at = now[0]
    now[0] += 0.3
    assert rep.update() == pytest.approx(1005.0)  # changed, but held back until 5 s passed
    assert path.stat().st_ino == inode and len(published) == 2  # the metrics see it at once
    now[0] = 1005.0
    assert rep.update() is None and path.stat().st_ino != inode
    assert json.loads(path.read_text())["ready"] is True
    n, start = 200, time.perf_counter()
    for i in range(n):
        ledger.ready_at = i
        now[0] += status.MIN_INTERVAL
        rep.update()
    print(f"status: {(time.perf_counter() - start) / n * 1e6:.0f} us per changed write")


def test_without_metrics_no_document_is_built_while_a_write_is_held_back(tmp_path, monkeypatch):
    """The daemon calls `update` after every wake-up: with only the file to keep, the document
    is built when a write may happen, never in between; the file still gets the last state."""
    now = [1000.0]
    ledger = Ledger()
    path = tmp_path / "status.json"
    rep = status.Reporter(ledger, str(path), lambda: now[0])
    builds = []
    real = status.build
    monkeypatch.setattr(status, "build", lambda *a: builds.append(1) or real(*a))
    assert rep.update() is None and len(builds) == 1  # the first write
    for i in range(10):  # ten wake-ups inside the 5 s: nothing built
        ledger.ready_at = now[0] + i
        now[0] += 0.4
        assert rep.update() == pytest.approx(1005.0)
    assert len(builds) == 1
    now[0] = 1005.0
    assert rep.update() is None and len(builds) == 2
    assert json.loads(path.read_text())["ready"] is True  # the last state, written when due


def test_bad_metrics_addr_is_a_config_error(tmp_path):
    prometheus()
    r = rconfd("-D", "-d", local_config(tmp_path), "--metrics-addr", "localhost:http",
               "--status-file", "none", env={"PW": SECRET})
    assert r.rc == 2 and r.lines[-1].endswith("expected HOST:PORT or PORT"), r.err
    d = DaemonProc("-d", local_config(tmp_path / "first"), "--poll", "100", "--metrics-addr", "0",
                   "--status-file", "none", env={"PW": SECRET}, log=tmp_path / "log")
    try:
        port = metrics_port(d)
        r = rconfd("-D", "-d", local_config(tmp_path), "--metrics-addr", str(port),
                   "--status-file", "none", env={"PW": SECRET})
        assert r.rc == 2 and "--metrics-addr" in r.lines[-1] and "in use" in r.lines[-1], r.err
    finally:
        assert d.stop(signal.SIGTERM) == 0


def test_a_status_file_it_may_not_read_says_so(tmp_path, monkeypatch, capsys):
    """Under the default state dir (0700), another user is told why, not "no daemon"."""
    def denied(path, *a, **k):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(status.fs, "read_file", denied)
    monkeypatch.setattr(status.os, "stat", denied)
    assert status.main(str(tmp_path / "status.json"), False) == status.EXIT_NO_DAEMON
    assert "permission denied (run it as the daemon's user)" in capsys.readouterr().err
