"""`exe:str|js[,static|dynamic]:/ABS/CMD ARGS` — a command's trimmed standard output.

Never run through a shell; as `nobody` when rconfd-py runs as root; killed after a timeout or
past MAX_OUTPUT bytes of output.
"""

from __future__ import annotations

import os
import subprocess

from ..errors import SourceError
from ..refs import SecretRef
from ..secret import Secret
from ..settings import child_env
from . import Sources, decode

MAX_OUTPUT = 16 * 1024 * 1024  # as for file secrets


def _drop_privileges() -> dict:
    if os.geteuid() != 0:
        return {}
    import pwd

    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        raise SourceError("running as root but there is no user 'nobody' to run exe commands as"
                          ) from None
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


def fetch(ref: SecretRef, sources: Sources) -> Secret:
    argv = ref.argv
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                start_new_session=True,  # killed whole, what it started too
                                stderr=subprocess.DEVNULL, cwd="/", env=child_env(),
                                **_drop_privileges())
    except OSError as e:
        raise SourceError(f"{ref}: cannot run {argv[0]}: {e.strerror}") from None
    with proc:
        try:
            out = _read(proc, sources.exe_timeout)
        except _TooMuch:
            _kill(proc)
            raise SourceError(f"{ref}: output larger than {MAX_OUTPUT >> 20} MiB") from None
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise SourceError(f"{ref}: timed out after {sources.exe_timeout:g}s") from None
    if proc.returncode != 0:
        raise SourceError(f"{ref}: exited with status {proc.returncode}")
    try:
        text = out.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SourceError(f"{ref}: output is not UTF-8 text") from None
    return Secret(ref=ref, value=decode(ref, text), fetched_at=sources.clock())


def _kill(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()


class _TooMuch(Exception):
    pass


def _read(proc: subprocess.Popen, timeout: float) -> bytes:
    """The command's whole output, at most MAX_OUTPUT bytes, within `timeout` seconds (a
    monotonic deadline for the read and the exit together)."""
    import select
    import time

    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    chunks, size = [], 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise _TooMuch()
        chunks.append(chunk)
    proc.wait(max(0.0, deadline - time.monotonic()))
    return b"".join(chunks)
