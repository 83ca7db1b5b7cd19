"""The status document: what the daemon holds and plans, built from the ledger (ledger.py), and
the file `rconfd-py status` reads it from.

    build(ledger, ...)   -> a dict of plain values (no secret value: paths, roles, kinds, expiry
                            times, next actions, errors run through redact.safe)
    Reporter.update(now) -> after each wake-up of the daemon loop: publish the document to the
                            metrics endpoint (metrics.py) when it changed, and write the status
                            file, atomically, when it changed and at most once per MIN_INTERVAL
    main(...)            -> `rconfd-py status [--json]`: read the file, print it, exit 0 healthy,
                            1 failing or expired or not ready, 2 no running daemon

Times in the document are absolute (unix time): the file changes only when the ledger does, and
"time left" is computed by whoever reads it.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sys
import time
from collections.abc import Callable

from . import fs
from .errors import RconfdError
from .redact import safe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .ledger import Ledger

log = logging.getLogger(__name__)
FORMAT = 1
MIN_INTERVAL = 5.0  # seconds between two writes of the status file (README: the cost)
MAX_SIZE = 16 << 20  # a status file larger than this is not ours
EXIT_HEALTHY, EXIT_FAILING, EXIT_NO_DAEMON = 0, 1, 2


# -- the document ------------------------------------------------------------------------------
def _plan(entry) -> dict | None:
    return None if entry.next is None else {"act": entry.next.act, "at": entry.next.at}


def _health(entry) -> dict:
    return {"failures": entry.failures, "error": safe(entry.error) if entry.error else "",
            "error_since": entry.error_since}


def _kind(entry) -> str:
    if entry.secret is None:
        return "unfetched"
    if entry.lease_id:
        return "renewable" if entry.renew else "lease"
    return "pki" if entry.expires_at is not None else "static"


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ("" without /proc): a pid reused by
    another process does not pass for the daemon."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def build(ledger: Ledger, pid: int, started_at: float, outage_since: float | None,
          pid_start: str | None = None) -> dict:
    """The status document of `ledger`; no secret value, no token, no lease id."""
    return {
        "format": FORMAT,
        "pid": pid,
        "pid_start": _start_time(pid) if pid_start is None else pid_start,
        "started_at": started_at,
        "ready": ledger.ready_at is not None,
        "ready_at": ledger.ready_at,
        "outage_since": outage_since,
        "first_pass": {"next": _plan(ledger.first), **_health(ledger.first)},
        "tokens": [{"path": f"token:{e.role}", "role": e.role, "kind": "token",
                    "expires_at": e.expires_at, "next": _plan(e), **_health(e)}
                   for e in ledger.tokens.values()],
        "secrets": [{"path": safe(str(e.ref)), "role": e.ref.role if e.ref.backend == "vault"
                     else "", "kind": _kind(e), "expires_at": e.expires_at, "next": _plan(e),
                     **_health(e)} for e in ledger.secrets.values()],
        "templates": [{"template": safe(getattr(t, "label", str(t))), "files": [safe(f) for f in e.files],
                       "rendered_at": e.rendered_at, "expires_at": e.expires_at,
                       "hook": e.hook, "failed_total": dict(e.failed_total),
                       "next": _plan(e), **_health(e)} for t, e in ledger.templates.items()],
        "counts": [{"what": w, "result": r, "n": n} for (w, r), n in sorted(ledger.counts.items())],
        "latency": {op: list(h) for op, h in sorted(ledger.latency.items())},
    }


def expired(doc: dict, now: float) -> list[dict]:
    """The tokens, secrets and templates whose expiry has passed."""
    return [e for e in (*doc["tokens"], *doc["secrets"], *doc["templates"])
            if e.get("expires_at") is not None and e["expires_at"] <= now]


def failing(doc: dict) -> list[dict]:
    return [e for e in (doc["first_pass"], *doc["tokens"], *doc["secrets"], *doc["templates"])
            if e["error"]]


def healthy(doc: dict, now: float) -> bool:
    """What /healthz answers 200 to: ready, and nothing expired."""
    return doc["ready"] and not expired(doc, now)


# -- the writer ----------------------------------------------------------------------------------
class Reporter:
    """Keeps the status file and the metrics' snapshot up to date. `update` is cheap when
    nothing changed: one build and one comparison, or nothing inside MIN_INTERVAL of a write."""

    def __init__(self, ledger: Ledger, path: str | None, clock: Callable[[], float],
                 outage: Callable[[], float | None] = lambda: None,
                 publish: Callable[[dict], None] | None = None):
        self.ledger = ledger
        self.path = path
        self.clock = clock
        self.outage = outage
        self.publish = publish
        self.pid = os.getpid()
        self.pid_start = _start_time(self.pid)
        self.started_at = clock()
        self._last: dict | None = None  # the last document built
        self._dirty = False  # it differs from the file
        self._written = False  # the file exists (removed when the daemon stops)
        self._written_at = -MIN_INTERVAL
        self._error = ""
        self._writer = None  # output.Writer, made at the first write (it knows its file)

    def update(self) -> float | None:
        """Publish the document if it changed; write the file if it differs from the last one
        written and MIN_INTERVAL has passed. Return when to call again (a write held back), or
        None. With no metrics to publish, no document is built while a write would be held
        back anyway: the timer returned brings the call back when one is due (building it after
        every wake-up was a quarter of an idle daemon's CPU)."""
        if self.publish is None and self.path is not None:
            due = self._written_at + MIN_INTERVAL
            if self.clock() < due:
                return due
        doc = build(self.ledger, self.pid, self.started_at, self.outage(), self.pid_start)
        if doc != self._last:
            self._last, self._dirty = doc, True
            if self.publish is not None:
                self.publish(doc)
        if self.path is None or not self._dirty:
            return None
        now = self.clock()
        if now < self._written_at + MIN_INTERVAL:
            return self._written_at + MIN_INTERVAL
        self._written_at, self._dirty = now, False  # a failed write is tried at the next change
        if self._writer is None:
            from .output import Writer

            self._writer = Writer()
        try:
            write_atomic(self.path, json.dumps(doc, separators=(",", ":")).encode(),
                         self._writer)
        except (OSError, fs.UnsafePath, RconfdError) as e:
            text = f"cannot write the status file {self.path}: {e}"
            if text != self._error:  # once per distinct error
                log.warning("%s", text)
            self._error = text
            return None
        self._written, self._error = True, ""
        return None

    def remove(self) -> None:
        """The daemon stops: its status goes with it (if it is still the one it wrote)."""
        if self.path is None or not self._written:
            return
        directory, _, name = self.path.rpartition("/")
        try:
            dfd = fs.open_dir(directory or ("/" if self.path.startswith("/") else "."))
        except fs.UnsafePath:
            return
        try:
            doc = read(self.path)
            if doc is not None and doc.get("pid") == self.pid:
                os.unlink(name, dir_fd=dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)


def write_atomic(path: str, data: bytes, writer=None) -> None:
    """Write `path` 0644 as outputs are written (output.Writer): a temporary file renamed over
    it in its directory (created 0755), no link planted by another user followed, the name
    itself replaced, never followed, and temp files a killed daemon left swept."""
    from pathlib import Path

    from .output import Writer

    (writer or Writer()).write({Path(os.path.abspath(path)): data}, 0o644, None)


# -- the reader: `rconfd-py status` ----------------------------------------------------------------
def read(path: str) -> dict | None:
    """The document of a running daemon, or None (no file, unreadable, or its writer gone)."""
    try:
        data = fs.read_file(path, MAX_SIZE)
        doc = json.loads(data) if data is not None else None
    except (fs.UnsafePath, OSError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not alive(doc):
        return None
    return doc


def alive(doc: dict) -> bool:
    pid = doc.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError as e:  # EPERM: it exists
        if e.errno != errno.EPERM:
            return False
    start = doc.get("pid_start")
    return not start or _start_time(pid) in ("", start)


def _when(t: float | None, now: float) -> str:
    if t is None:
        return "-"
    d = t - now
    stamp = time.strftime("%H:%M:%S", time.gmtime(t))
    return f"{stamp} (in {d:.0f}s)" if d >= 0 else f"{stamp} ({-d:.0f}s ago)"


def _left(t: float | None, now: float) -> str:
    if t is None:
        return "never"
    return f"{t - now:.0f}s left" if t > now else f"EXPIRED {now - t:.0f}s ago"


def render_text(doc: dict, now: float) -> str:
    ready = "ready since " + _when(doc["ready_at"], now) if doc["ready"] else "NOT READY"
    lines = [f"rconfd-py daemon pid {doc['pid']}, up {now - doc['started_at']:.0f}s, {ready}"]
    if doc.get("outage_since") is not None:
        lines.append(f"Vault unavailable since {_when(doc['outage_since'], now)}")
    first = doc["first_pass"]
    if first["error"]:
        nxt = first["next"]
        lines.append(f"first render FAILING since {_when(first['error_since'], now)} "
                     f"({first['failures']} attempt(s)), next attempt "
                     f"{_when(nxt['at'], now) if nxt else '-'}: {first['error']}")
    for title, entries in (("tokens", doc["tokens"]), ("secrets", doc["secrets"])):
        lines.append(f"{title}:")
        for e in entries:
            nxt = e["next"]
            lines.append(f"  {e['path']}  role={e['role'] or '-'} kind={e['kind']} "
                         f"expires {_when(e['expires_at'], now)} {_left(e['expires_at'], now)}; "
                         f"next: {nxt['act'] + ' at ' + _when(nxt['at'], now) if nxt else '-'}")
            if e["error"]:
                lines.append(f"    FAILING since {_when(e['error_since'], now)} "
                             f"({e['failures']} attempt(s)): {e['error']}")
    lines.append("templates:")
    for e in doc["templates"]:
        lines.append(f"  {e['template']}  rendered {_when(e['rendered_at'], now)}; "
                     f"files: {', '.join(e['files']) or '-'}; last hook: {e['hook'] or '-'}")
        if e["error"]:
            lines.append(f"    FAILING since {_when(e['error_since'], now)} "
                         f"({e['failures']} attempt(s)): {e['error']}")
    bad = len(failing(doc)) + len(expired(doc, now))
    lines.append("healthy" if doc["ready"] and not bad else
                 f"UNHEALTHY: {len(failing(doc))} failing, {len(expired(doc, now))} expired"
                 + ("" if doc["ready"] else ", not ready"))
    return "\n".join(lines) + "\n"


def main(path: str | None, as_json: bool, now: float | None = None) -> int:
    if path is None:
        print("rconfd-py status: no status file (--status-file none)", file=sys.stderr)
        return EXIT_NO_DAEMON
    doc = read(path)
    if doc is None:
        try:
            os.stat(path)
        except PermissionError:  # under the default --state-dir, 0700: the daemon's user only
            print(f"rconfd-py status: {path}: permission denied (run it as the daemon's user)",
                  file=sys.stderr)
            return EXIT_NO_DAEMON
        except OSError:
            pass
        print(f"rconfd-py status: no running daemon's status in {path}", file=sys.stderr)
        return EXIT_NO_DAEMON
    now = time.time() if now is None else now
    try:
        ok = doc["ready"] and not failing(doc) and not expired(doc, now)
        text = render_text(doc, now) if not as_json else ""
    except (KeyError, TypeError, ValueError, AttributeError) as e:  # another build's, or edited
        print(f"rconfd-py status: {path}: malformed status file ({type(e).__name__}: {e})",
              file=sys.stderr)
        return EXIT_NO_DAEMON
    if as_json:
        doc["now"] = now
        doc["healthy"] = ok
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        sys.stdout.write(text)
    return EXIT_HEALTHY if ok else EXIT_FAILING
