"""Logging set-up, with a redactor: no secret value reaches a log line, whatever the verbosity.

Backends never log values, but messages from elsewhere (a jsonnet `error` built from a secret,
a traceback at -v) could carry one. Every fetched string value, token and JWT is registered here
and masked in the final formatted text.
"""

from __future__ import annotations

import logging
import re
import sys
import threading

MASK = "<redacted>"
MIN_LEN = 4  # shorter strings ("true", ports) would mask ordinary words


class Redactor:
    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern | None = None
        self._lock = threading.Lock()

    def add(self, value: Any) -> None:
        """Register every string leaf of `value` (nested dicts and lists included)."""
        new = set(_leaves(value)) - self._values
        if new:
            with self._lock:
                self._values |= new
                self._pattern = None

    def redact(self, text: str) -> str:
        if not self._values:
            return text
        pattern = self._pattern
        if pattern is None:
            with self._lock:
                alts = sorted(self._values, key=len, reverse=True)
                pattern = self._pattern = re.compile("|".join(map(re.escape, alts)))
        return pattern.sub(MASK, text)


def _leaves(value: Any):
    if isinstance(value, str):
        for part in (value, *value.splitlines()):
            part = part.strip()
            if len(part) >= MIN_LEN:
                yield part
    elif isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)


redactor = Redactor()


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redactor.redact(super().format(record))


def setup(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("rconfd-py: %(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for level, name in ((logging.WARNING, "warning"), (logging.ERROR, "error"),
                        (logging.INFO, "info"), (logging.DEBUG, "debug")):
        logging.addLevelName(level, name)
