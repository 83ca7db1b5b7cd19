"""rconfd-py under real s6 (Debian's s6-svscan, s6-supervise, s6-svwait, execline): the shipped
service dir from rconfd_py/image/rootfs, a dependent service, readiness, reload signals, shutdown."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import default_signals, require_binaries

from rconfd_py.notify import s6_control

ROOT = Path(__file__).resolve().parent.parent
SERVICE = ROOT / "rconfd_py" / "image" / "rootfs" / "etc" / "s6-overlay" / "s6-rc.d" / "rconfd"
EXAMPLE = ROOT / "templates" / "examples" / "s6" / "myservice" / "run"
S6 = ("s6-svscan", "s6-supervise", "s6-svwait", "s6-svstat", "s6-svscanctl", "execlineb")

# The dependent service: records when it starts (and whether its config existed then) and
# every reload signal it gets.
APP = """#!/bin/sh
log={log}
if [ -f {conf} ]; then echo "start with-config" >> $log; else echo "start NO-CONFIG" >> $log; fi
trap 'echo hup >> $log' HUP
trap 'echo usr1 >> $log' USR1
trap 'exit 0' TERM
while :; do sleep 0.1; done
"""


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def wait_for(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (value := predicate()):
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def svstat(service: Path, field: str) -> str:
    return subprocess.run(["s6-svstat", "-o", field, str(service)], capture_output=True,
                          text=True).stdout.strip()


def test_shipped_scripts_are_execline_and_executable():
    for name in ("run", "finish"):
        script = SERVICE / name
        assert script.read_text().startswith("#!/usr/bin/execlineb")
        assert script.stat().st_mode & stat.S_IXUSR
    assert (SERVICE / "notification-fd").read_text().strip() == "3"
    run = (SERVICE / "run").read_text()
    assert "with-contenv" in run and "rconfd-py -D -j /etc/rconfd -r 3" in run
    code = [ln for ln in run.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert code == ["with-contenv", "rconfd-py -D -j /etc/rconfd -r 3 --idle-exec s6-pause"]
    assert "if { s6-svwait -U /run/service/rconfd }" in EXAMPLE.read_text()


@pytest.fixture
def scan(tmp_path, vault_env):
    """A scan dir with the shipped rconfd service and a dependent `app`, plus PATH shims for
    what Debian lacks (with-contenv, s6-pause) and for rconfd-py itself."""
    require_binaries(*S6)
    shims = tmp_path / "bin"
    shims.mkdir()
    executable(shims / "with-contenv", '#!/bin/sh\nexec "$@"\n')
    executable(shims / "s6-pause", "#!/bin/sh\nexec sleep infinity\n")
    executable(shims / "rconfd-py",
               f'#!/bin/sh\nexport PYTHONPATH={ROOT}\nexec {sys.executable} -m rconfd_py "$@"\n')
    scandir = tmp_path / "scan"
    scandir.mkdir()
    shutil.copytree(SERVICE, scandir / "rconfd")
    out = tmp_path / "etc-app"
    app = scandir / "app"
    app.mkdir()
    log = tmp_path / "app.log"
    executable(tmp_path / "app.sh", APP.format(log=log, conf=out / "app.conf"))
    run = EXAMPLE.read_text().replace("/run/service/rconfd", str(scandir / "rconfd"))
    run = run.split("# never start")[0] + f"{tmp_path / 'app.sh'}\n"
    executable(app / "run", run)
    return tmp_path, scandir, out, log, shims


def test_rconfd_under_s6(scan, vault_env, stack):
    tmp_path, scandir, out, log, shims = scan
    cfg = tmp_path / "rconfd"
    cfg.mkdir()
    (cfg / "app.jsonnet").write_text(
        "local s = std.extVar('secrets');\n"
        "{ 'app.conf': 'serial=' + s.cert.serial_number, 'app.pem': s.cert.certificate }")
    (cfg / "flag.jsonnet").write_text("{ 'flag.txt': std.extVar('secrets').flag }")
    flag = tmp_path / "flag"
    flag.write_text("one")
    (cfg / "a.json").write_text(json.dumps({
        "app.jsonnet": {"dir": str(out), "reload": [str(scandir / "app")], "secrets": {
            "vault:test-role,POST,common_name=app.example.com:pki/issue/example.com": "cert"}},
        "flag.jsonnet": {"dir": str(out), "reload": [str(scandir / "app")],
                         "reload_signal": "usr1", "secrets": {f"file:str:{flag}": "flag"}},
    }))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("RCONFD_", "VAULT_"))},
           "PATH": f"{shims}:{os.environ['PATH']}", "RCONFD_DIR": str(cfg),
           "VAULT_ADDR": vault_env["VAULT_ADDR"], "RCONFD_LOGIN_PATH": "/auth/jwt/login",
           "RCONFD_TOKEN_PATH": vault_env["VAULT_JWT_PATH"], "RCONFD_POLL": "1",
           "RCONFD_STATE_DIR": "none", "RCONFD_STATUS_FILE": "none"}  # independent of other runs
    svscan = subprocess.Popen(["s6-svscan", str(scandir)], env=env, stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "svscan.log", "w"),
                              preexec_fn=default_signals)
    try:
        # the dependent starts only once the files exist (its run script retries until then)
        wait_for(lambda: log.exists() and "start" in log.read_text(), 30, "app start")
        assert log.read_text().splitlines()[0] == "start with-config"
        assert svstat(scandir / "rconfd", "up,ready") == "true true"
        assert (out / "app.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
        serial = (out / "app.conf").read_text()
        # a rotating certificate (10 s) HUPs the dependent, once per change
        wait_for(lambda: "hup" in log.read_text(), 20, "SIGHUP after the certificate rotates")
        assert (out / "app.conf").read_text() != serial
        # the other template asks for SIGUSR1
        flag.write_text("two")
        wait_for(lambda: "usr1" in log.read_text(), 10, "SIGUSR1 after flag.txt changes")
        assert log.read_text().count("start") == 1  # signalled, never restarted
        # the supervised process is rconfd-py itself: s6-svc -r replaces it, no orphan left
        pid = int(svstat(scandir / "rconfd", "pid"))
        assert _rconfd_pids(cfg) == [pid]
        subprocess.run(["s6-svc", "-r", str(scandir / "rconfd")], check=True)
        wait_for(lambda: svstat(scandir / "rconfd", "pid") not in ("", str(pid))
                 and svstat(scandir / "rconfd", "ready") == "true", 20, "restart")
        wait_for(lambda: not _alive(pid), 5, "the old rconfd-py to exit")
        assert _rconfd_pids(cfg) == [int(svstat(scandir / "rconfd", "pid"))]
    finally:
        subprocess.run(["s6-svscanctl", "-t", str(scandir)], check=False)
        try:
            svscan.wait(20)
        finally:
            if svscan.poll() is None:
                svscan.kill()
    # s6-svscanctl -t leaves nothing running: not rconfd-py, not the app, no supervisor
    wait_for(lambda: not _rconfd_pids(cfg), 10, "rconfd-py to exit")
    leftover = subprocess.run(["pgrep", "-f", str(scandir)], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", leftover.stdout


def _rconfd_pids(cfg: Path) -> list[int]:
    """Live rconfd-py processes rendering `cfg` (found by command line and RCONFD_DIR)."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                env = (d / "environ").read_bytes().split(b"\0")
                if (f"RCONFD_DIR={cfg}".encode() in env and b"rconfd_py" in
                        (d / "cmdline").read_bytes() and _alive(int(d.name))):
                    found.append(int(d.name))
            except OSError:
                continue
    return sorted(found)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_nothing_leased_keeps_the_service_up_with_s6_pause(scan):
    tmp_path, scandir, out, log, shims = scan
    cfg = tmp_path / "rconfd"
    cfg.mkdir()
    (cfg / "t.jsonnet").write_text("{ 'app.conf': 'static' }")
    (cfg / "a.json").write_text(json.dumps({"t.jsonnet": {"dir": str(out)}}))
    env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}", "RCONFD_DIR": str(cfg),
           "RCONFD_STATE_DIR": "none", "RCONFD_STATUS_FILE": "none"}  # not the machine's /run
    svscan = subprocess.Popen(["s6-svscan", str(scandir)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, preexec_fn=default_signals)
    try:
        wait_for(lambda: log.exists() and "start" in log.read_text(), 30, "app start")
        wait_for(lambda: "sleep infinity" in _cmdline(int(svstat(scandir / "rconfd", "pid") or 0)),
                 10, "s6-pause to replace rconfd-py")
        assert svstat(scandir / "rconfd", "up,ready") == "true true"
        assert _rconfd_pids(cfg) == []  # it became s6-pause, no Python left behind
    finally:
        subprocess.run(["s6-svscanctl", "-t", str(scandir)], check=False)
        svscan.wait(20)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def test_s6_control_on_missing_or_dead_service_is_logged_not_fatal(tmp_path, caplog):
    assert s6_control(str(tmp_path / "nope"), "h") is False
    dead = tmp_path / "dead" / "supervise"
    dead.mkdir(parents=True)
    os.mkfifo(dead / "control")  # a fifo with no supervisor reading it
    assert s6_control(str(tmp_path / "dead"), "h") is False
    assert "no supervisor is running" in caplog.text


def test_s6_control_writes_the_command_letter(tmp_path):
    d = tmp_path / "svc" / "supervise"
    d.mkdir(parents=True)
    os.mkfifo(d / "control")
    fd = os.open(d / "control", os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert s6_control(str(tmp_path / "svc"), "1") is True
        assert os.read(fd, 10) == b"1"
    finally:
        os.close(fd)


@pytest.mark.parametrize("plant", ["control", "supervise"])
def test_s6_control_never_writes_through_a_link_the_service_user_planted(
        hostile, shared_tmp, caplog, plant):
    """The service dir belongs to the service's user, who links `supervise/control` (or
    `supervise`) to a root file: root writes nothing into it."""
    svc = shared_tmp / "svc"
    (svc / "supervise").mkdir(parents=True)
    hostile.own(svc)
    hostile.own(svc / "supervise")
    victim = shared_tmp / "root-file"
    victim.write_text("untouched\n")
    victim.chmod(0o600)
    if plant == "control":
        hostile.run("ln", "-s", str(victim), str(svc / "supervise" / "control"))
    else:
        hostile.run("rm", "-r", str(svc / "supervise"))
        root_dir = shared_tmp / "root-dir"
        root_dir.mkdir(mode=0o700)
        os.mkfifo(root_dir / "control")
        fd = os.open(root_dir / "control", os.O_RDONLY | os.O_NONBLOCK)
        hostile.run("ln", "-s", str(root_dir), str(svc / "supervise"))
    try:
        assert s6_control(str(svc), "t") is False
        if plant == "supervise":
            try:
                assert os.read(fd, 10) == b""  # nothing was written to root's FIFO
            except BlockingIOError:
                pass
    finally:
        if plant == "supervise":
            os.close(fd)
    assert victim.read_text() == "untouched\n"
    assert "cannot signal s6 service" in caplog.text




@pytest.mark.parametrize("code,halts", [("2", True), ("1", False), ("256", False)])
def test_finish_halts_the_container_only_on_config_errors(tmp_path, code, halts):
    require_binaries("execlineb")
    marker = tmp_path / "halted"
    halt = executable(tmp_path / "halt", f"#!/bin/sh\ntouch {marker}\n")
    exitcode = tmp_path / "exitcode"
    finish = executable(tmp_path / "finish", (SERVICE / "finish").read_text().replace(
        "/run/s6/basedir/bin/halt", str(halt)).replace(
        "/run/s6-linux-init-container-results/exitcode", str(exitcode)))
    r = subprocess.run([str(finish), code, "0"], capture_output=True, text=True, timeout=10)
    # 125 (a permanent failure for s6-supervise and s6-rc) after the halt, else 0 (restart)
    assert r.returncode == (125 if halts else 0)
    assert marker.exists() is halts
    assert (exitcode.read_text() if halts else None) == ("2\n" if halts else None)
    assert ("halting the container" in r.stderr) is halts
