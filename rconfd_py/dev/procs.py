"""Process helpers for the development stack: free ports, polling, stopping, dropping to postgres."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Sequence

LOCALHOST = "127.0.0.1"


def _bindable(port: int) -> bool:
    """True when ``port`` can be bound on 127.0.0.1 right now."""
    with socket.socket() as s:
        try:
            s.bind((LOCALHOST, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """One free TCP port on 127.0.0.1 (the kernel's choice)."""
    with socket.socket() as s:
        s.bind((LOCALHOST, 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1, each with ``port + 1`` free as well.

    ``bao server -dev`` binds its cluster listener on PORT+1, so every returned port is usable
    for it, and no returned port is the neighbour of another.
    """
    out: list[int] = []
    while len(out) < n:
        p = free_port()
        if p >= 65535 or any(abs(p - q) <= 1 for q in out) or not _bindable(p + 1):
            continue
        out.append(p)
    return out


def wait_until(
    predicate: Callable[[], object],
    timeout: float,
    *,
    interval: float = 0.02,
    what: str = "condition",
) -> None:
    """Poll ``predicate`` until it returns a truthy value; raise ``TimeoutError`` after ``timeout`` s.

    Exceptions raised by the predicate propagate (use them to abort early, e.g. a dead process).
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int | None:
    """Stop a child we started: SIGTERM, wait ``timeout`` s, then SIGKILL. Returns its exit code."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        proc.terminate()
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(5)
    except ProcessLookupError:
        return proc.poll()


def is_root() -> bool:
    """True when running as uid 0."""
    return os.geteuid() == 0


def as_postgres(argv: Sequence[str]) -> list[str]:
    """``argv`` run as the ``postgres`` user when we are root (initdb/postgres refuse root)."""
    if is_root():
        return ["runuser", "-u", "postgres", "--", *argv]
    return list(argv)


def run_as_postgres(argv: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (as ``postgres`` when root), capturing text output; raise on failure."""
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        as_postgres(argv), check=True, capture_output=True, text=True, **kw
    )
