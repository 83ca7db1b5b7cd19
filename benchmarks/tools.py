"""The two contenders, configured for the same job: rconfd-py and OpenBao Agent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rconfd_py.dev.bao import find_bao

ROOT = Path(__file__).resolve().parent.parent
DB = "database/creds/mydb"
KV = "kv/data/test/mysecret"
PKI = "pki/issue/example.com"
CN = "bench.example.com"

RCONFD_TEMPLATE = """local s = std.extVar('secrets');
{
  'kv.txt': s.kv.data.username,
  'db.json': { user: s.db.username, password: s.db.password },
  'cert.pem': s.cert.certificate,
}
"""

AGENT_TEMPLATES = {
    "kv.txt": '{{ with secret "%s" }}{{ .Data.data.username }}{{ end }}' % KV,
    "db.json": '{{ with secret "%s" }}{{ "{" }}"user": "{{ .Data.username }}", '
               '"password": "{{ .Data.password }}"{{ "}" }}{{ end }}' % DB,
    "cert.pem": '{{ with pkiCert "%s" "common_name=%s" }}{{ .Cert }}{{ end }}' % (PKI, CN),
}


RCONFD = [sys.executable, "-m", "rconfd_py"]  # replaced by install() with the installed script


DISTRO_PYTHON = "/usr/bin/python3"


def pick_python(requested: str | None) -> str:
    """The interpreter rconfd-py runs on: the one asked for; else the distribution's python3,
    which is what the images ship (Alpine's or Debian's package, not a source build like
    pyenv's), when it can make a venv (Debian: python3-venv); else this one."""
    if requested:
        return requested
    if os.access(DISTRO_PYTHON, os.X_OK):
        probe = subprocess.run([DISTRO_PYTHON, "-c", "import ensurepip, venv"],
                               capture_output=True)
        if probe.returncode == 0:
            return DISTRO_PYTHON
    return sys.executable


def describe_python(python: str) -> str:
    """`path (Python X.Y.Z, static|shared libpython)` for the report."""
    code = ("import platform, sysconfig; print(platform.python_version(), "
            "'shared' if sysconfig.get_config_var('Py_ENABLE_SHARED') else 'static')")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.split()
    if len(out) != 2:
        return python
    # Py_ENABLE_SHARED describes the build, not the binary: Debian ships a static executable
    # next to its libpython; ldd tells which one this is
    ldd = subprocess.run(["ldd", os.path.realpath(python)], capture_output=True, text=True)
    linked = "shared libpython" if "libpython" in ldd.stdout else "static libpython"
    return f"{python} (Python {out[0]}, {linked})"


def install(work: Path, python: str | None = None) -> str:
    """Measure rconfd-py as it ships: built as a wheel and installed in a fresh venv of the
    chosen interpreter, run by its console script (the dev venv's editable install adds ~20 ms
    of import hooks). Return a description of the interpreter."""
    python = pick_python(python)
    venv = work / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(work / "wheels"), str(ROOT)], check=True, capture_output=True)
    wheel = next((work / "wheels").glob("rconfd_py-*.whl"))
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True,
                   capture_output=True)
    RCONFD[:] = [str(venv / "bin" / "rconfd-py")]
    return describe_python(python)


def rconfd_argv(cfg: Path, addr: str, jwt: Path, *extra: str) -> list[str]:
    """Every start from scratch (--state-dir none) unless `extra` names a state dir. A daemon
    keeps its status file next to its config (each container writes its own; never the
    machine's /run/rconfd-py, shared by every daemon of a fleet)."""
    state = () if "--state-dir" in extra else ("--state-dir", "none")
    status = () if "--status-file" in extra else ("--status-file", str(cfg.parent / "status.json"))
    return [*RCONFD, "-d", str(cfg), "-u", addr, "-l", "/auth/jwt/login", "-t", str(jwt),
            *state, *status, *extra]


def rconfd_config(work: Path, out: Path) -> Path:
    cfg = work / "rconfd"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "bench.jsonnet").write_text(RCONFD_TEMPLATE)
    (cfg / "bench.json").write_text(json.dumps({"bench.jsonnet": {"dir": str(out), "secrets": {
        f"vault:test-role:{KV}": "kv", f"vault:test-role:{DB}": "db",
        f"vault:test-role,POST,common_name={CN}:{PKI}": "cert"}}}))
    return cfg


def agent_config(work: Path, out: Path, addr: str, jwt: Path, exit_after_auth: bool) -> Path:
    templates = "\n".join(
        f'template {{\n  contents = {json.dumps(text)}\n  destination = "{out / name}"\n}}'
        for name, text in AGENT_TEMPLATES.items())
    hcl = f"""
exit_after_auth = {"true" if exit_after_auth else "false"}
vault {{ address = "{addr}" }}
auto_auth {{
  method "jwt" {{
    mount_path = "auth/jwt"
    config = {{
      path = "{jwt}"
      role = "test-role"
      remove_jwt_after_reading = false
    }}
  }}
}}
{templates}
"""
    path = work / f"agent-{'once' if exit_after_auth else 'daemon'}.hcl"
    path.write_text(hcl)
    return path


def agent_argv(config: Path) -> list[str]:
    return [find_bao(), "agent", f"-config={config}"]


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_", "RCONFD_"))}
