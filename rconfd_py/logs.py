"""Logging set-up, with a redactor: no secret value reaches a log line, whatever the verbosity.

Backends never log values, but messages from elsewhere (a jsonnet `error` built from a secret,
a traceback at -v) could carry one. Every fetched string value, token and JWT is registered here
and masked in the final formatted text.
"""

from __future__ import annotations

import logging
import sys
import threading
from json.encoder import encode_basestring, encode_basestring_ascii

MASK = "<redacted>"
MIN_LEN = 4  # shorter strings ("true", ports) would mask ordinary words


class Redactor:
    """The secret strings to mask, by owner: registering a secret again replaces its old values
    (a renewed credential), so the set stays as large as what the process holds.

    Registering is cheap (the daemon re-registers a certificate at every renewal): the strings
    of a value are worked out only when the next log line needs them, once per new value."""

    def __init__(self) -> None:
        self._raw: dict[object, object] = {}  # key -> value as registered
        self._strings: dict[object, frozenset[str]] = {}  # key -> its strings, once needed
        self._values: tuple[str, ...] | None = ()  # longest first; None: rebuild
        self._lock = threading.Lock()

    def add(self, key: object, value: object) -> None:
        """Register every string leaf of `value` (nested dicts and lists included) as `key`'s."""
        with self._lock:
            if key in self._raw and self._raw[key] == value:
                return
            self._raw[key] = value
            self._strings.pop(key, None)
            self._values = None

    def redact(self, text: str) -> str:
        # substring tests, no regex: a pattern over thousands of values costs more to
        # recompile at each renewal than these tests cost per log line
        values = self._values
        if values is None:
            with self._lock:
                for key, value in self._raw.items():
                    if key not in self._strings:
                        self._strings[key] = frozenset(_leaves(value))
                every = set().union(*self._strings.values())
                values = self._values = tuple(sorted(every, key=len, reverse=True))
        for v in values:
            if v in text:
                text = text.replace(v, MASK)
        return text


def _leaves(value: object, out: list[str] | None = None) -> list[str]:
    """The strings to mask for `value`: each string leaf, each of its lines, and each as a JSON
    or jsonnet message would print it (quotes, backslashes, control and non-ASCII characters
    escaped)."""
    out = [] if out is None else out
    if isinstance(value, bool) or value is None:
        return out
    if isinstance(value, (int, float)):
        value = str(value)  # a PIN or numeric password printed by a template
    if isinstance(value, str):
        lines = value.splitlines()
        # the whole value, and each line of a multi-line one (never longer than the whole)
        candidates = (value, *lines) if len(lines) > 1 else (value,)
        parts = [p for p in (c.strip() for c in candidates) if len(p) >= MIN_LEN]
        out += parts
        if (value.isascii() and '"' not in value and "\\" not in value
                and "".join(lines).isprintable()):
            # the common case (passwords, tokens, PEM): lines print as they are; only the
            # multi-line whole has an escaped form (its newlines), the same in both encodings
            if len(lines) > 1 and parts:
                out.append(encode_basestring(parts[0])[1:-1])
            return out
        for part in parts:
            for escaped in (encode_basestring_ascii(part)[1:-1], encode_basestring(part)[1:-1]):
                if escaped != part:
                    out.append(escaped)
    elif isinstance(value, dict):
        for v in value.values():
            _leaves(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _leaves(v, out)
    return out


redactor = Redactor()


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redactor.redact(super().format(record))


def setup(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("rconfd-py: %(levelname)s: %(message)s"))
    # the format uses none of the caller's file/line, thread or process: not collecting them
    # spares a stack walk and three lookups per log line
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for level, name in ((logging.WARNING, "warning"), (logging.ERROR, "error"),
                        (logging.INFO, "info"), (logging.DEBUG, "debug")):
        logging.addLevelName(level, name)
