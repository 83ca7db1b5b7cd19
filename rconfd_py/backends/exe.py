"""`exe:str|js[,static|dynamic]:/ABS/CMD ARGS` — a command's trimmed standard output.

Never run through a shell; as `nobody` when rconfd-py runs as root; killed after a timeout.
"""

from __future__ import annotations

import os
import subprocess

from ..errors import SourceError
from ..refs import SecretRef
from ..secret import Secret
from . import Sources, decode


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
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=sources.exe_timeout, cwd="/", **_drop_privileges())
    except subprocess.TimeoutExpired:
        raise SourceError(f"{ref}: timed out after {sources.exe_timeout:g}s") from None
    except OSError as e:
        raise SourceError(f"{ref}: cannot run {argv[0]}: {e.strerror}") from None
    if proc.returncode != 0:
        raise SourceError(f"{ref}: exited with status {proc.returncode}")
    try:
        text = proc.stdout.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SourceError(f"{ref}: output is not UTF-8 text") from None
    return Secret(ref=ref, value=decode(ref, text), fetched_at=sources.clock())
