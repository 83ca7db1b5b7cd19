"""Telling the world that files exist or changed: s6 readiness fd, hooks, s6 service control."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Sequence

from .settings import child_env

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
                              stderr=subprocess.DEVNULL, timeout=timeout, env=child_env())
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


CHECK_TIMEOUT = 60.0
CHECK_STDERR = 64 * 1024  # bytes of a check's stderr kept (masked whole, then cut)
CHECK_SHOWN = 2000  # characters of it logged


def run_check(label: str, argv: Sequence[str], staged: str, target: str,
              timeout: float = CHECK_TIMEOUT) -> None:
    """Run a template's `check` on one file about to be renamed into place, like a hook (no
    shell, stdin /dev/null, stdout discarded, a timeout, as rconfd-py's user: root), with
    `{file}` in its arguments replaced by `staged` (a private, read-only copy of the staged
    content), and RCONFD_CHECK_FILE (that path) and RCONFD_CHECK_TARGET (the final path) in
    its environment. A non-zero exit, a timeout or a
    command that cannot run raise CheckError naming the template and the command; the
    command's stderr (its first 64 KiB, masked whole, cut to 2000 characters) is logged."""
    import subprocess
    import threading

    from .config import CHECK_PLACEHOLDER
    from .errors import CheckError
    from .redact import redactor

    args = [a.replace(CHECK_PLACEHOLDER, staged) for a in argv]
    env = child_env({"RCONFD_CHECK_FILE": staged, "RCONFD_CHECK_TARGET": target})
    log.debug("%s: running check %s on %s", label, argv[0], target,
              extra={"template": label, "file": target})
    try:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=env, close_fds=True,
                                start_new_session=True)  # its own group: killed whole
    except OSError as e:
        raise CheckError(f"{label}: check {argv[0]} cannot run: {e.strerror}") from None
    kept = bytearray()

    def drain() -> None:  # keep the start, read (and drop) the rest: the pipe never fills
        assert proc.stderr is not None
        fd = proc.stderr.fileno()
        try:
            while chunk := os.read(fd, 1 << 16):
                if len(kept) < CHECK_STDERR:
                    kept.extend(chunk[:CHECK_STDERR - len(kept)])
        finally:  # closed here, at EOF: a process the check left behind may hold the pipe
            proc.stderr.close()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        rc = proc.wait(timeout)
        why = f"exited with status {rc}" if rc else ""
    except subprocess.TimeoutExpired:
        import signal

        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the check and what it started
        except OSError:
            proc.kill()
        proc.wait()
        why = f"timed out after {timeout:g}s"
    reader.join(5)  # (a process it left running keeps its stderr: not waited for longer)
    if not why:
        return
    text = redactor.redact(kept.decode("utf-8", "replace")).strip()
    if text:
        if len(text) > CHECK_SHOWN:
            text = text[:CHECK_SHOWN] + "..."
        log.error("%s: check %s on %s: %s", label, argv[0], target, text,
                  extra={"template": label, "file": target})
    raise CheckError(f"{label}: check {argv[0]} rejected {target}: {why}; nothing renamed, "
                     f"the previous files are kept")


def s6_control(service_dir: str, command: str) -> bool:
    """Send an s6-svc command letter (h: SIGHUP, t: SIGTERM, r: restart, ...) to a supervised
    service by writing it to `<dir>/supervise/control`, exactly as `s6-svc` does.

    A missing service or a dead supervisor is logged, never fatal. The path is reached as
    outputs are (fs.py: no link another user planted is followed) and the control file must be
    a FIFO: a service dir its user owns cannot make root write into another file.
    """
    import stat

    from .fs import UnsafePath, open_dir

    try:
        dfd = open_dir(os.path.join(service_dir, "supervise"))
    except UnsafePath as e:
        log.warning("cannot signal s6 service %s: %s", service_dir, e)
        return False
    try:
        fd = os.open("control", os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=dfd)
    except OSError as e:
        why = ("no supervisor is running" if e.errno == errno.ENXIO
               else "supervise/control is a symbolic link" if e.errno == errno.ELOOP
               else e.strerror)
        log.warning("cannot signal s6 service %s: %s", service_dir, why)
        return False
    finally:
        os.close(dfd)
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            log.warning("cannot signal s6 service %s: supervise/control is not a FIFO",
                        service_dir)
            return False
        os.write(fd, command.encode())
    except OSError as e:
        log.warning("cannot signal s6 service %s: %s", service_dir, e.strerror)
        return False
    finally:
        os.close(fd)
    log.info("sent s6 command %r to %s", command, service_dir)
    return True
