"""Shared test helpers: skip-or-fail requirements and audit log parsing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REQUIRE_ALL_ENV = "RCONFD_REQUIRE_ALL"


def default_signals() -> None:
    """preexec_fn for a supervisor the tests start (s6-svscan, s6-supervise): the signals back
    to their defaults. A signal ignored here (SIGHUP when the tests run under nohup) would stay
    ignored in every service it starts, which cannot trap it then (POSIX shells)."""
    import signal

    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1,
                signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)


def require_all() -> bool:
    """True when missing optional tools must fail the run instead of skipping (CI)."""
    return os.environ.get(REQUIRE_ALL_ENV) == "1"


def require(what: str, ok: bool) -> None:
    """Skip the test when ``ok`` is false, or fail it under ``RCONFD_REQUIRE_ALL=1``."""
    if ok:
        return
    if require_all():
        pytest.fail(f"{what} is required ({REQUIRE_ALL_ENV}=1) but not available")
    pytest.skip(f"{what} not available")


def require_binaries(*names: str) -> dict[str, str]:
    """Paths of executables ``names`` on PATH; skip/fail (see :func:`require`) if any is missing."""
    found = {name: shutil.which(name) for name in names}
    missing = sorted(name for name, path in found.items() if path is None)
    require(f"executables {', '.join(missing)}", not missing)
    return {name: path for name, path in found.items() if path is not None}


def audit_entries(log: Path, kind: str = "request") -> list[dict[str, Any]]:
    """Entries of an OpenBao file audit log of type ``kind`` ("request" or "response")."""
    entries = []
    for line in log.read_text().splitlines():
        if line.strip():
            entry = json.loads(line)
            if entry.get("type") == kind:
                entries.append(entry)
    return entries


def audit_request_paths(log: Path) -> list[str]:
    """Request paths (``auth/jwt/login``, ``kv/data/...``) in audit log order."""
    return [e["request"]["path"] for e in audit_entries(log, "request")]


class HostileUser:
    """A real unprivileged account (made with useradd) that acts as a service user would."""

    def __init__(self, name: str):
        import pwd

        pw = pwd.getpwnam(name)
        self.name, self.uid, self.gid = name, pw.pw_uid, pw.pw_gid

    def run(self, *argv: str, check: bool = True):
        """Run a command as this user (no privileges left)."""
        import subprocess

        return subprocess.run(list(argv), user=self.uid, group=self.gid, extra_groups=[],
                              check=check, capture_output=True, text=True, timeout=30)

    def own(self, path: Path) -> Path:
        os.chown(path, self.uid, self.gid)
        return path


def hostile_user(name: str = "rconfd-hostile") -> HostileUser:
    """The test's unprivileged user, created on first use (needs root: skip, or fail in CI)."""
    import pwd
    import subprocess

    require("root (useradd, chown)", os.geteuid() == 0)
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", name], check=True)
    return HostileUser(name)


def self_signed(tmp_path: Path):
    """A server TLS context for `localhost` from a self-signed certificate written to
    tmp_path/cert.pem (its own CA) and tmp_path/key.pem."""
    import datetime
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return ctx


def captured_log(name: str = "rconfd_py"):
    """A context manager: the lines the CLI's handler prints for logger `name` (at DEBUG, with
    the CLI's level names) go to the StringIO it yields."""
    import contextlib
    import io
    import logging

    from rconfd_py import logs

    @contextlib.contextmanager
    def capture():
        for level, level_name in logs.LEVEL_NAMES:  # as logs.setup() names them
            logging.addLevelName(level, level_name)
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logs.RedactingFormatter(logs.FORMAT))
        log = logging.getLogger(name)
        handlers, level, propagate = log.handlers[:], log.level, log.propagate
        log.handlers[:], log.propagate = [handler], False
        log.setLevel(logging.DEBUG)
        try:
            yield stream
        finally:
            log.handlers[:], log.propagate = handlers, propagate
            log.setLevel(level)

    return capture()


def fresh_redactor():
    """A context manager: a new process-wide redactor (the formatters and the Vault client use
    it) for the duration, the old one back after."""
    import contextlib

    from rconfd_py import redact
    from rconfd_py.redact import Redactor

    @contextlib.contextmanager
    def swap():
        saved, redact.redactor = redact.redactor, Redactor()
        try:
            yield redact.redactor
        finally:
            redact.redactor = saved

    return swap()


@contextmanager
def frozen(*pids: int, thaw_after: float | None = None,
           before_thaw: Callable[[], None] | None = None) -> Iterator[None]:
    """The processes stopped (SIGSTOP) meanwhile, as a frozen server: thawed (SIGCONT) after
    `thaw_after` s by a timer thread (`before_thaw` run just before), and in any case on the
    way out."""
    def thaw() -> None:
        if before_thaw is not None:
            before_thaw()
        for pid in pids:
            os.kill(pid, signal.SIGCONT)

    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    timer = threading.Timer(thaw_after, thaw) if thaw_after is not None else None
    if timer is not None:
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.join()
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
