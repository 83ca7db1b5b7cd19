"""Running the real `rconfd-py` command line in a subprocess, as s6 or CI would."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# the runner's own proxy settings never reach the runs: tests that want a proxy pass it
PROXY_VARS = ("http_proxy", "https_proxy", "no_proxy")


def _env(env: dict[str, str] | None) -> dict[str, str]:
    """The runner's environment without its RCONFD_, VAULT_ and proxy settings, then `env`.
    RCONFD_STATE_DIR and RCONFD_STATUS_FILE default to none: each test independent, and
    nothing written to the machine's /run, unless it passes its own."""
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("RCONFD_", "VAULT_")) and k.lower() not in PROXY_VARS}
    full["RCONFD_STATE_DIR"] = full["RCONFD_STATUS_FILE"] = "none"
    full.update(env or {})
    full["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    return full


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
    full_env = _env(env)
    proc = subprocess.run([sys.executable, "-m", "rconfd_py", *map(str, args)], env=full_env,
                          capture_output=True, text=True, pass_fds=pass_fds, timeout=timeout, cwd=cwd)
    return Run(proc.returncode, proc.stdout, proc.stderr)


class DaemonProc:
    """`rconfd-py -D` running in the background, its log in a file."""

    def __init__(self, *args: str | Path, env: dict[str, str] | None = None, log: Path,
                 pass_fds: tuple = ()):
        import time

        full_env = _env(env)
        self.log = log
        self._log_file = open(log, "w")
        self.started = time.time()
        self.proc = subprocess.Popen([sys.executable, "-m", "rconfd_py", "-D", *map(str, args)],
                                     env=full_env, stdout=self._log_file,
                                     stderr=subprocess.STDOUT, pass_fds=pass_fds)

    def text(self) -> str:
        return self.log.read_text()

    def wait_for(self, predicate, timeout: float, what: str = "condition", step: float = 0.2):
        import time

        deadline = time.time() + timeout
        while time.time() < deadline:
            value = predicate()
            if value:
                return value
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode} waiting for {what}:"
                                     f"\n{self.text()[-3000:]}")
            time.sleep(step)
        raise AssertionError(f"timed out waiting for {what}:\n{self.text()[-3000:]}")

    def stop(self, sig: int = 15, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._log_file.close()
