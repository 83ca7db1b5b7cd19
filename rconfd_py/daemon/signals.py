"""The daemon's signals: SIGTERM/SIGINT stop it, SIGHUP asks for a reload, and a self-pipe wakes
its select() sleep when either arrives (as uvicorn's `capture_signals`, without asyncio).

`with signals:` marks a blocking Vault call: a SIGTERM during it raises Stop at once, so a
hanging Vault never delays the exit (a file write is never marked: it is never abandoned).
"""

from __future__ import annotations

import logging
import os
import select
import signal

log = logging.getLogger(__name__)


class Stop(BaseException):
    """Raised from the signal handler to abandon a blocked Vault call on SIGTERM/SIGINT."""


class Signals:
    def __init__(self) -> None:
        self.stopping = False
        self.reload_requested = False
        self._interruptible = False
        self._wake_r = self._wake_w = -1
        self._old_wakeup = -1
        self._old_handlers: dict = {}

    def install(self) -> None:
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._old_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)

        def stop(signum, frame):
            self.stopping = True
            if self._interruptible:  # a Vault call is blocking: abandon it now
                raise Stop()

        def hup(signum, frame):
            self.reload_requested = True

        self._old_handlers = {s: signal.signal(s, h) for s, h in (
            (signal.SIGTERM, stop), (signal.SIGINT, stop), (signal.SIGHUP, hup))}

    def restore(self) -> None:
        for s, h in self._old_handlers.items():
            signal.signal(s, h)
        signal.set_wakeup_fd(self._old_wakeup)
        os.close(self._wake_r)
        os.close(self._wake_w)

    def exec_instead(self, command: str) -> None:
        """Replace the process with `command` (the signals as they were before install); if
        that fails, OSError, with the signals installed again."""
        import shlex

        argv = shlex.split(command)
        log.info("replacing rconfd-py with %s", argv[0])
        for handler in logging.getLogger().handlers:
            handler.flush()
        self.restore()
        try:
            os.execvp(argv[0], argv)
        except OSError:
            self.install()  # the daemon's exit path restores them
            raise

    def take_reload(self) -> bool:
        """Whether a SIGHUP arrived since the last call."""
        asked, self.reload_requested = self.reload_requested, False
        return asked

    def sleep(self, timeout: float | None) -> None:
        """Until `timeout` seconds passed (None: forever) or a signal arrived."""
        try:
            ready, _, _ = select.select([self._wake_r], [], [], timeout)
        except InterruptedError:
            return
        if ready:
            try:
                while os.read(self._wake_r, 512):
                    pass
            except BlockingIOError:
                pass

    # `with signals:` around a blocking Vault call (one object, reused: no generator per call)
    def __enter__(self) -> None:
        self._interruptible = True  # first: a SIGTERM from now on raises Stop
        if self.stopping:
            self._interruptible = False
            raise Stop()

    def __exit__(self, *exc) -> None:
        self._interruptible = False
