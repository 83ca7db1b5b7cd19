"""Logging set-up: one line per record, text or JSON, every line masked by the redactor
(redact.py) and escaped; `std.trace` output captured and masked (EngineOutput)."""

from __future__ import annotations

import logging
import os
import sys

from . import redact
from .redact import MASK, escape, safe

FORMAT = "rconfd-py: %(levelname)s: %(message)s"
LEVEL_NAMES = ((logging.WARNING, "warning"), (logging.ERROR, "error"), (logging.INFO, "info"),
               (logging.DEBUG, "debug"))


class RedactingFormatter(logging.Formatter):
    """Mask, then escape: the message is one line; a traceback (-v) keeps its lines, masked,
    indented, with their other control characters escaped."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = redact.redactor.message(record)
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = redact.redactor.redact_long(self.formatMessage(record))
        escaped = escape(line)
        if escaped is not line:  # what escaping made of a value, JSON-escaped the same way
            line = redact.redactor.redact_escaped(escaped)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        extra = [t for t in (record.exc_text,
                             record.stack_info and self.formatStack(record.stack_info)) if t]
        if extra:  # indented: a line at column 0 is always a record's first
            lines = redact.redactor.redact("\n".join(extra)).split("\n")
            line += "".join("\n  " + escape(ln) for ln in lines)
        return line


# the structured fields a call site may pass with `extra=`, in the order a JSON line shows them
FIELDS = ("template", "file", "path", "role", "ttl")


class JsonFormatter(RedactingFormatter):
    """`--log-format json`: one JSON object per line: time (UTC, ISO 8601), level, message
    (masked and escaped exactly as the text format's), the structured fields a call site gave
    (`extra=`, FIELDS: each masked as quoted data, escaped), `exc` (a traceback at -v, masked,
    its lines escaped into one string). The encoded line is checked once more: should the JSON
    encoding of the masked text complete a secret (one holding a quote or backslash), the
    record shrinks to its time, level and a masked message."""

    def __init__(self) -> None:
        super().__init__("%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        import json
        import time

        # the traceback: a field of its own, not lines after the message
        exc_info, exc_text, stack = record.exc_info, record.exc_text, record.stack_info
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            message = super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = exc_info, exc_text, stack
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out: dict[str, object] = {"time": f"{ts}.{int(record.msecs):03d}Z",
                                  "level": record.levelname.lower(), "message": message}
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                value = safe(str(value))
            out[name] = value
        extra = [t for t in (exc_info and self.formatException(exc_info),
                             stack and self.formatStack(stack)) if t]
        if extra:
            out["exc"] = safe("\n".join(extra))
        for key, value in out.items():  # what JSON's own escaping of the text may complete
            text = json.dumps(value)
            if redact.redactor.redact_long(text) != text:
                out[key] = MASK
        return json.dumps(out, ensure_ascii=True)


class EngineOutput:
    """Around a jsonnet evaluation: what the engine writes to stderr itself (`std.trace`'s
    `TRACE: t.jsonnet:1 value`) goes to a memory file, then is logged as info records, masked
    as a whole first (a cut value would not be recognised), one record per line. Without
    memfd (not Linux), it goes to stderr as it is."""

    def __enter__(self) -> EngineOutput:  # noqa: PYI034 - (typing: a slow import)
        try:
            self.fd = os.memfd_create("rconfd-engine-stderr", os.MFD_CLOEXEC)
        except (AttributeError, OSError):
            self.fd = -1
            return self
        sys.stderr.flush()
        self.saved = os.dup(2)
        os.dup2(self.fd, 2)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd < 0:
            return
        try:
            os.dup2(self.saved, 2)
        finally:
            os.close(self.saved)
        size = os.lseek(self.fd, 0, os.SEEK_CUR)
        data = os.pread(self.fd, size, 0) if size else b""
        os.close(self.fd)
        if data:
            log = logging.getLogger("rconfd_py")
            for line in redact.redactor.redact(data.decode("utf-8", "replace")).split("\n"):
                if line.strip():
                    log.info("%s", line)


class _Handler(logging.StreamHandler):
    def handleError(self, record: logging.LogRecord) -> None:
        """A message that cannot be formatted (a bug): one line naming its format string, not
        logging's default dump of the record's arguments, which may be secrets."""
        try:
            self.stream.write(f"rconfd-py: error: cannot log {escape(str(record.msg))!r}\n")
        except Exception:  # noqa: BLE001 - stderr itself is gone: nothing left to tell
            pass


def setup(verbose: bool, fmt: str = "text") -> None:
    """`fmt`: "text" (FORMAT) or "json" (JsonFormatter)."""
    handler = _Handler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else RedactingFormatter(FORMAT))
    # the format uses none of the caller's file/line, thread or process: not collecting them
    # spares a stack walk and three lookups per log line
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for level, name in LEVEL_NAMES:
        logging.addLevelName(level, name)
