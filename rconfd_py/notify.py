"""Telling the world that files exist or changed: s6 readiness fd, hooks, s6 service control."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Sequence

log = logging.getLogger(__name__)
HOOK_TIMEOUT = 60.0


class Readiness:
    """The s6 readiness notification: one newline on the fd, then close it. Once per process."""

    def __init__(self, fd: int | None):
        if fd is not None:
            try:
                os.fstat(fd)
            except OSError:
                from .errors import ConfigError

                raise ConfigError(f"--ready-fd {fd} is not an open file descriptor") from None
        self.fd = fd
        self.done = False

    def signal(self) -> None:
        if self.done:
            return
        self.done = True
        if self.fd is None:
            return
        try:
            os.write(self.fd, b"\n")
            os.close(self.fd)
            log.debug("readiness written to fd %d", self.fd)
        except OSError as e:
            log.error("cannot write readiness to fd %d: %s", self.fd, e.strerror)


def run_hook(kind: str, label: str, argv: Sequence[str], timeout: float = HOOK_TIMEOUT) -> bool:
    """Run a hook command (never through a shell); log a failure, never raise."""
    import subprocess

    log.info("%s: running %s hook %s", label, kind, argv[0])
    try:
        proc = subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        log.error("%s: %s hook %s timed out after %gs", label, kind, argv[0], timeout)
        return False
    except OSError as e:
        log.error("%s: %s hook %s cannot run: %s", label, kind, argv[0], e.strerror)
        return False
    if proc.returncode != 0:
        log.error("%s: %s hook %s exited with status %d", label, kind, argv[0], proc.returncode)
        return False
    return True


def s6_control(service_dir: str, command: str) -> bool:
    """Send an s6-svc command letter (h: SIGHUP, t: SIGTERM, r: restart, ...) to a supervised
    service by writing it to `<dir>/supervise/control`, exactly as `s6-svc` does.

    A missing service or a dead supervisor is logged, never fatal.
    """
    control = os.path.join(service_dir, "supervise", "control")
    try:
        fd = os.open(control, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        why = "no supervisor is running" if e.errno == errno.ENXIO else e.strerror
        log.warning("cannot signal s6 service %s: %s", service_dir, why)
        return False
    try:
        os.write(fd, command.encode())
    except OSError as e:
        log.warning("cannot signal s6 service %s: %s", service_dir, e.strerror)
        return False
    finally:
        os.close(fd)
    log.info("sent s6 command %r to %s", command, service_dir)
    return True
