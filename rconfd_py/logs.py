"""Logging set-up, with a redactor: no secret value reaches a log line, whatever the verbosity.

Backends never log values, but messages from elsewhere (a jsonnet `error` built from a secret,
a traceback at -v) could carry one. Every fetched string value, token and JWT is registered here
and masked in the final formatted text.
"""

from __future__ import annotations

import json
import logging
import sys
import threading

MASK = "<redacted>"
MIN_LEN = 4  # shorter strings ("true", ports) would mask ordinary words


class Redactor:
    """The secret strings to mask, by owner: registering a secret again replaces its old values
    (a renewed credential), so the set stays as large as what the process holds."""

    def __init__(self) -> None:
        self._by_key: dict[object, frozenset[str]] = {}
        self._values: tuple[str, ...] | None = ()  # longest first; None: rebuild
        self._lock = threading.Lock()

    def add(self, key: object, value: object) -> None:
        """Register every string leaf of `value` (nested dicts and lists included) as `key`'s."""
        leaves = frozenset(_leaves(value))
        if self._by_key.get(key) == leaves:
            return
        with self._lock:
            self._by_key[key] = leaves
            self._values = None  # rebuilt at the next log line, not at each of 1,000 fetches

    def redact(self, text: str) -> str:
        # substring tests, no regex: a pattern over thousands of values costs more to
        # recompile at each renewal than these tests cost per log line
        values = self._values
        if values is None:
            with self._lock:
                every = set().union(*self._by_key.values())
                values = self._values = tuple(sorted(every, key=len, reverse=True))
        for v in values:
            if v in text:
                text = text.replace(v, MASK)
        return text


def _leaves(value: object):
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float)):
        value = str(value)  # a PIN or numeric password printed by a template
    if isinstance(value, str):
        for part in (value, *value.splitlines()):
            part = part.strip()
            if len(part) >= MIN_LEN:
                yield part
                # as a JSON or jsonnet message would print it: quotes, backslashes escaped
                for escaped in (json.dumps(part)[1:-1], json.dumps(part, ensure_ascii=False)[1:-1]):
                    if escaped != part:
                        yield escaped
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
