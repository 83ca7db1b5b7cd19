"""The image chain on a debootstrapped Debian bookworm under s6-overlay's real /init.

base layer (mimalloc) -> s6 layer (rconfd-py, s6-overlay built from source by s6overlay.py,
installed with --s6-overlay-from) -> the example service, built with buildah (vfs storage of its
own, chroot isolation) and run with podman + runc, PID 1 being s6-overlay's /init.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from helpers import require
from test_image import lint

from rconfd_py import __version__
from rconfd_py.image.layers import DEBIAN

__all__ = ["DEBIAN"]  # test_real_init checks its LD_PRELOAD

EXAMPLE_EXEC = "/usr/local/bin/myservice --config /etc/myservice/myservice.conf"


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


DEBOOTSTRAP_CACHE = Path("/var/cache/rconfd-py-debootstrap")
# Its own storage, one per pytest process: the host's is untouched, two runs do not meet. The
# name cannot be guessed: the tests run as root, and a local user must not be able to plant a
# directory or a link there before they start (/var/tmp is everyone's).
STORE_PREFIX = "/var/tmp/rconfd-py-img-"  # short: podman refuses a runroot over 50 characters
STORE_DIR = Path(f"{STORE_PREFIX}{os.getpid()}-{secrets.token_hex(6)}")
STORE = ["--storage-driver", "vfs", "--root", str(STORE_DIR / "root"),
         "--runroot", str(STORE_DIR / "run")]
# The same store for the builds `rconfd-py image` runs (it passes buildah no storage flags).
STORAGE_CONF = f"""\
[storage]
driver = "vfs"
graphroot = "{STORE_DIR / 'root'}"
runroot = "{STORE_DIR / 'run'}"
"""
TAGS = {"base": "localhost/rconfd-base:debian-mimalloc", "s6": "localhost/s6-overlay:debian",
        "service": "localhost/myservice:debian"}

# The example service: reads its config at start and on SIGHUP; SIGUSR1 makes it fail (exit 3).
MYSERVICE = """\
#!/usr/bin/python3
import hashlib, os, signal, sys

conf = sys.argv[sys.argv.index("--config") + 1]

def load(why, *_):
    with open(conf, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    print(f"myservice: {why} uid={os.getuid()} config={digest}", flush=True)

signal.signal(signal.SIGHUP, lambda *_: load("reload"))
signal.signal(signal.SIGUSR1, lambda *_: sys.exit(3))
load("start")
while True:
    signal.pause()
"""
MYSERVICE_TEMPLATE = """\
local s = std.extVar('secrets');
{ 'myservice.conf': 'serial=' + s.cert.serial_number + '\\n', 'tls.pem': s.cert.certificate }
"""
MYSERVICE_CONFIG = {"myservice.jsonnet": {
    "dir": "/etc/myservice", "mode": "0640", "user": "myservice",
    "secrets": {"vault:${VAULT_ROLE},POST,common_name=myservice.example.com:"
                "pki/issue/example.com": "cert"}}}  # a 10 s certificate: it rotates


def run(argv: list, timeout: float = 600, check: bool = True,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False,
                          env=None if env is None else {**os.environ, **env})
    if check and proc.returncode != 0:
        raise AssertionError(f"{shlex.join(map(str, argv))} exited {proc.returncode}:\n"
                             f"{(proc.stdout + proc.stderr)[-4000:]}")
    return proc


def debian_rootfs() -> Path:
    """A minbase bookworm rootfs as a tarball, debootstrapped once and cached."""
    tarball = DEBOOTSTRAP_CACHE / "bookworm-minbase.tar"
    if tarball.is_file():
        return tarball
    mirror = os.environ.get("RCONFD_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    DEBOOTSTRAP_CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=DEBOOTSTRAP_CACHE) as tmp:
        proc = run(["debootstrap", "--variant=minbase", "bookworm", f"{tmp}/rootfs", mirror],
                   timeout=900, check=False)
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:]
        require(f"debootstrap bookworm from {mirror} (exit {proc.returncode}: {tail})",
                proc.returncode == 0)
        run(["tar", "-C", f"{tmp}/rootfs", "-cf", f"{tarball}.tmp", "."])
        os.replace(f"{tarball}.tmp", tarball)
    return tarball


def import_base(tarball: Path) -> str:
    """localhost/debian-base from the rootfs; the host's CA bundle rides along when pip needs
    it (PIP_CERT: a TLS-intercepting egress proxy, as in the sandbox this was written in)."""
    STORE_DIR.mkdir(mode=0o700, exist_ok=True)
    ctr = run(["buildah", *STORE, "from", "scratch"]).stdout.strip()
    try:
        run(["buildah", *STORE, "add", ctr, tarball, "/"])
        env = ["--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        if os.environ.get("PIP_CERT") and Path(os.environ["PIP_CERT"]).is_file():
            run(["buildah", *STORE, "copy", ctr, os.environ["PIP_CERT"], "/etc/ssl/host-ca.pem"])
            env += ["--env", "PIP_CERT=/etc/ssl/host-ca.pem"]
        run(["buildah", *STORE, "config", *env, ctr])
        run(["buildah", *STORE, "commit", "-q", ctr, "localhost/debian-base"])
    finally:
        run(["buildah", *STORE, "rm", ctr], check=False)
    return "localhost/debian-base"


def image(*args: str | Path) -> str:
    """`rconfd-py image ARGS --distro debian --builder buildah`, building for real into the
    test's store (CONTAINERS_STORAGE_CONF, chroot isolation); the context (--context DIR, one
    of ARGS) kept and its Containerfile linted. The builder's output. The runner's environment
    is kept (not tests/cli.py's): buildah hands its proxy settings to the RUNs."""
    conf = STORE_DIR / "storage.conf"
    if not conf.is_file():
        STORE_DIR.mkdir(mode=0o700, exist_ok=True)
        conf.write_text(STORAGE_CONF)
    proc = run([sys.executable, "-m", "rconfd_py", "image", *args, "--distro", "debian",
                "--builder", "buildah"], timeout=1200,
               env={"CONTAINERS_STORAGE_CONF": str(conf), "BUILDAH_ISOLATION": "chroot",
                    "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    args = list(map(str, args))
    lint((Path(args[args.index("--context") + 1]) / "Containerfile").read_text())
    return proc.stdout + proc.stderr


def debian_chain(tmp_path: Path, base: str, s6_overlay: Path) -> None:
    """base (mimalloc) -> s6 layer (s6-overlay from ``s6_overlay``) -> myservice, each built by
    `rconfd-py image base|build|service --distro debian`."""
    image("base", "--base", base, "--mimalloc", "--tag", TAGS["base"],
          "--context", tmp_path / "base")
    out = image("build", "--from", TAGS["base"], "--s6-overlay-from", s6_overlay,
                "--tag", TAGS["s6"], "--context", tmp_path / "s6")
    assert f"rconfd-py {__version__}" in out  # the sanity RUN, under mimalloc
    src = tmp_path / "myservice-src"
    src.mkdir()
    executable(src / "myservice", MYSERVICE)
    (src / "myservice.jsonnet").write_text(MYSERVICE_TEMPLATE)
    (src / "rconfd.json").write_text(json.dumps(MYSERVICE_CONFIG))
    image("service", "myservice", "--exec", EXAMPLE_EXEC, "--from", TAGS["s6"],
          "--copy", f"{src / 'myservice'}:/usr/local/bin/myservice", "--critical",
          "--rconfd-config", src / "rconfd.json", "--template", src / "myservice.jsonnet",
          "--tag", TAGS["service"], "--context", tmp_path / "svc")


def _when(stamp: str) -> tuple[float, int]:
    """An RFC 3339 timestamp with up to 9 fraction digits (Go trims trailing zeros), sortable."""
    m = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)", stamp)
    assert m, stamp
    head, frac, zone = m.groups()
    return datetime.fromisoformat(head + zone).timestamp(), int((frac or "").ljust(9, "0"))


def logs(name: str) -> list[str]:
    """The container's output in time order: podman prints the container's stdout (myservice)
    and stderr (rconfd-py) apart, each line with its timestamp."""
    out = run(["podman", *STORE, "logs", "-t", name], check=False)
    stamped = [ln.split(" ", 1) for ln in (out.stdout + out.stderr).splitlines() if " " in ln]
    return [line for _, line in sorted(stamped, key=lambda s: _when(s[0]))]


def wait_for_line(name: str, needle: str, timeout: float, after: int = 0) -> int:
    """Index of the first log line after ``after`` containing ``needle``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for i, line in enumerate(logs(name)):
            if i >= after and needle in line:
                return i
        time.sleep(0.5)
    text = "\n".join(logs(name))
    raise AssertionError(f"no {needle!r} in the container's output:\n{text[-3000:]}")


def proc_file(name: str, pid: str, what: str, user: str = "root") -> str:
    """/proc/PID/WHAT read as the process's own user (the container has no CAP_SYS_PTRACE)."""
    return run(["podman", *STORE, "exec", "--user", user, name, "cat",
                f"/proc/{pid}/{what}"]).stdout




def remove_stale_stores() -> None:
    """The stores of test runs whose process is gone (killed before their cleanup)."""
    for path in Path(STORE_PREFIX).parent.glob(Path(STORE_PREFIX).name + "*"):
        pid = path.name.removeprefix(Path(STORE_PREFIX).name).split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)


class Container:
    """A container of the chain's service image, run detached under s6-overlay's /init, removed
    by :meth:`remove` (the fixtures' finalizers)."""

    counter = 0

    def __init__(self, image: str = TAGS["service"]):
        Container.counter += 1
        self.name = f"rconfd-py-init-{os.getpid()}-{Container.counter}"
        self.image = image

    def start(self, *args: str, cmd: tuple[str, ...] = ()) -> Container:
        # Explicit, modest rlimits: podman's defaults (nofile/nproc ~1M) were refused by runc
        # in the sandbox this was written in ("error setting rlimit type 6/7").
        run(["podman", *STORE, "run", "-d", "--name", self.name, "--network", "host",
             "--runtime", "runc", "--cgroup-manager", "cgroupfs",
             "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096",
             *args, self.image, *cmd], timeout=120)
        return self

    def exec(self, *argv: str, user: str = "root", check: bool = True,
             timeout: float = 60) -> subprocess.CompletedProcess:
        return run(["podman", *STORE, "exec", "--user", user, self.name, *argv],
                   timeout=timeout, check=check)

    def logs(self) -> list[str]:
        return logs(self.name)

    def wait_for_line(self, needle: str, timeout: float, after: int = 0) -> int:
        return wait_for_line(self.name, needle, timeout, after)

    def wait(self, timeout: float = 120) -> int:
        """The container's exit status, once it has stopped."""
        try:
            out = run(["podman", *STORE, "wait", self.name], timeout=timeout).stdout.strip()
        except subprocess.TimeoutExpired:
            text = "\n".join(self.logs()[-40:])
            raise AssertionError(f"{self.name} still running after {timeout} s:\n{text}") from None
        return int(out)

    def pid(self, service: str) -> str:
        return self.exec("s6-svstat", "-o", "pid", f"/run/service/{service}").stdout.strip()

    def pgrep(self, pattern: str) -> list[str]:
        """PIDs whose command line contains ``pattern`` (procps is not in minbase); the
        listing itself does not contain it."""
        script = ('for d in /proc/[0-9]*; do printf "%s " "${d#/proc/}"; '
                  'tr "\\0" " " < "$d/cmdline" 2>/dev/null; echo; done')
        lines = self.exec("sh", "-c", script).stdout.splitlines()
        return [ln.split(" ", 1)[0] for ln in lines if pattern in ln]

    def remove(self) -> None:
        run(["podman", *STORE, "rm", "-f", "-t", "0", self.name], check=False)
