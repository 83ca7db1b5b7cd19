"""Running the real `rconfd-py` command line in a subprocess, as s6 or CI would."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Run:
    rc: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.strip()]


def rconfd(*args: str | Path, env: dict[str, str] | None = None, pass_fds: tuple = (),
           timeout: float = 60, cwd: Path | None = None) -> Run:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("RCONFD_", "VAULT_"))}
    full_env.update(env or {})
    full_env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.run([sys.executable, "-m", "rconfd_py", *map(str, args)], env=full_env,
                          capture_output=True, text=True, pass_fds=pass_fds, timeout=timeout, cwd=cwd)
    return Run(proc.returncode, proc.stdout, proc.stderr)
