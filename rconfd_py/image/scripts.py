"""A service's s6 scripts (execline), generated: `run` waits for rconfd-py, checks the config
file, drops privileges and execs the service; `finish` (critical services) halts the container
when the service fails. The pattern of templates/examples/s6/myservice/run."""

from __future__ import annotations

import re

from .layers import fill

RCONFD_SERVICE = "/run/service/rconfd"
HALT = "/run/s6/basedir/bin/halt"
EXITCODE = "/run/s6-linux-init-container-results/exitcode"  # s6-overlay: the container's code

_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")

RUN = """\
#!/usr/bin/execlineb -P
# @NAME@ (written by `rconfd-py image service`). s6-svwait -U returns once rconfd-py is up and
# has signalled readiness (every file written). If rconfd's supervisor does not exist yet,
# s6-svwait fails, this script exits 0 (not a failure) and s6-supervise runs it again a second
# later.
if -t { s6-svwait -U @RCONFD@ }
# never start on a missing config (a template that renders conditionally, a wrong dir)
ifelse -n { eltest -f @CONFIG@ }
{ fdmove -c 1 2 echo @MISSING@ }
foreground { echo "@NAME@: starting" }
# the container's environment (LD_PRELOAD, MIMALLOC_*, ...): s6-overlay runs services without it
with-contenv
s6-setuidgid @USER@
@EXEC@
"""

FINISH = """\
#!/usr/bin/execlineb -S2
# $1: @NAME@'s exit code (256 when killed by a signal), $2: the signal.
# @NAME@ is critical: when it fails, halt the container with its exit code so that the
# orchestrator reports it (Kubernetes: CrashLoopBackOff) instead of a silent restart loop.
# 0 (also ./run waiting for rconfd-py or the config) and 256 (s6 stopping or restarting it)
# are not failures: s6-supervise runs ./run again a second later.
if -t { eltest ${1} -ne 0 }
if -t { eltest ${1} -ne 256 }
if -t { eltest -x @HALT@ }
foreground { redirfd -w 1 @EXITCODE@ echo ${1} }
foreground { fdmove -c 1 2 echo "@NAME@: exited ${1}: halting the container" }
@HALT@
"""


def word(text: str) -> str:
    """``text`` as one execline word: bare when plain, else double-quoted with escapes."""
    if _PLAIN.fullmatch(text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def run_script(name: str, argv: list[str], *, user: str, config: str) -> str:
    """``name``'s run script: wait for rconfd-py, check ``config`` exists, exec ``argv`` as
    ``user`` with the container's environment. ``name`` and ``user`` are plain words."""
    values = {"@NAME@": name, "@RCONFD@": RCONFD_SERVICE, "@CONFIG@": word(config),
              "@MISSING@": word(f"{name}: {config} is missing, retrying"), "@USER@": word(user),
              "@EXEC@": " ".join(word(a) for a in argv)}
    return fill(RUN, values)


def finish_script(name: str) -> str:
    """The finish script of a critical service: halt the container on a real failure."""
    return fill(FINISH, {"@NAME@": name, "@HALT@": HALT, "@EXITCODE@": EXITCODE})
