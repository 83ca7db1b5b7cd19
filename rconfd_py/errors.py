"""Error classes, one per failure family, each with its documented exit code, and `guarded`,
which runs a command and turns what it raises into one log line and that code.

Every error rconfd-py expects carries a one-line message naming what is at fault (file, key,
secret path). Tracebacks are shown only with -v, and only for unexpected errors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

EXIT_OK = 0
EXIT_INTERNAL = 1  # a bug: unexpected exception
EXIT_CONFIG = 2  # usage or config error (bad flag, bad JSON, unknown key, undefined ${VAR}, ...)
EXIT_TEMPLATE = 3  # jsonnet evaluation failed, or its result is not a map of files
EXIT_VAULT = 4  # Vault unreachable, login refused, secret read refused
EXIT_SOURCE = 5  # env/file/exe backend could not produce a value
EXIT_IO = 6  # output file could not be written
EXIT_BUILD = 7  # `rconfd-py image`: building the wheel or the image failed


class RconfdError(Exception):
    """Base class: an expected failure with a one-line message; `detail` (optional, several
    lines) is shown with -v only."""

    exit_code = EXIT_INTERNAL
    detail: str = ""


class ConfigError(RconfdError):
    exit_code = EXIT_CONFIG


class TemplateError(RconfdError):
    exit_code = EXIT_TEMPLATE


class VaultError(RconfdError):
    """A Vault request failed. `status` is the HTTP status (0: no answer); `timed_out`: no
    answer within the request's timeout, so the server may still process the request;
    `withheld`: Vault asked for the request's body only when it was no longer worth sending
    (a renewal whose lease had ended meanwhile, vault/http.py's commit): Vault never saw it."""

    exit_code = EXIT_VAULT

    def __init__(self, message: str, status: int = 0, timed_out: bool = False,
                 withheld: bool = False):
        super().__init__(message)
        self.status = status
        self.timed_out = timed_out
        self.withheld = withheld

    def prefixed(self, text: str) -> VaultError:
        """The same failure (status, timed out, withheld) told with `text: ` before it."""
        return VaultError(f"{text}: {self}", self.status, self.timed_out, self.withheld)

    @property
    def transient(self) -> bool:
        """True when retrying may help: no answer, 5xx, or 429 (not a request withheld: the
        same request would be withheld again)."""
        return (self.status == 0 and not self.withheld) or self.status >= 500 \
            or self.status == 429


class SourceError(RconfdError):
    exit_code = EXIT_SOURCE


class OutputError(RconfdError):
    exit_code = EXIT_IO


class CheckError(OutputError):
    """A template's `check` command rejected a staged file (exit 6 like any write failure; the
    daemon retries it slowly, like a template error: the same content fails the same way)."""


class BuildError(RconfdError):
    """`rconfd-py image`: pip wheel or the container engine failed; `detail` holds its output."""

    exit_code = EXIT_BUILD

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail


def guarded(work: Callable[[], int]) -> int:
    """Run a command (the main one, or `image`): an expected error is one line and its exit
    code; a bug is one line too, with the traceback only at -v."""
    log = logging.getLogger("rconfd_py")
    try:
        return work()
    except RconfdError as e:
        log.error("%s", e)
        if e.detail:
            from . import redact

            # masked whole first (a secret's lines masked one by one would not all be
            # recognised), then each line its own record; lines end at "\n" only: the other
            # line breaks ("\u2028"...) stay in their line, escaped
            for line in redact.redactor.redact(e.detail).split("\n"):
                if line.strip():
                    log.debug("%s", line)
        return e.exit_code
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as e:
        log.error("internal error: %s: %s", type(e).__name__, e)
        log.debug("traceback", exc_info=True)
        return EXIT_INTERNAL
