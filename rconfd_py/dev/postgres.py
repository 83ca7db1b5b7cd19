"""A throwaway PostgreSQL cluster for the database secrets engine (dev stack and tests).

``initdb`` costs ~2 s, so a pristine data dir is cached once per major version under the temp
dir and copied (~0.2 s) for each cluster. Server binaries refuse to run as root: when root,
everything runs as the ``postgres`` user via ``runuser``.
"""

from __future__ import annotations

import fcntl
import functools
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .procs import LOCALHOST, free_ports, is_root, run_as_postgres, wait_until

PG_USER = "postgres"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes, minus "/.s.PGSQL.NNNNN"


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", path.parent.name)) or (0,)


@functools.cache
def find_bin_dir() -> Path | None:
    """PostgreSQL server bin dir: ``$PG_BIN``, newest /usr/lib/postgresql/*/bin, or initdb on PATH."""
    env = os.environ.get("PG_BIN")
    if env:
        return Path(env) if (Path(env) / "initdb").exists() else None
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key)
    for d in reversed(candidates):
        if os.access(d / "initdb", os.X_OK):
            return d
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _pg_account() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        return None


def available() -> bool:
    """True when a throwaway cluster can be started here (binaries, and the postgres user if root)."""
    if find_bin_dir() is None:
        return False
    return not is_root() or (_pg_account() is not None and shutil.which("runuser") is not None)


@functools.cache
def server_version(bin_dir: Path) -> str:
    """Major version of the server in ``bin_dir`` (e.g. ``"15"``)."""
    out = subprocess.run(
        [str(bin_dir / "postgres"), "-V"], check=True, capture_output=True, text=True
    ).stdout
    m = re.search(r"(\d+)", out)
    if m is None:
        raise RuntimeError(f"cannot parse postgres version from {out!r}")
    return m.group(1)


def _run(argv: list[str], what: str) -> None:
    """Run ``argv`` as postgres; raise ``RuntimeError`` with stderr on failure."""
    try:
        run_as_postgres(argv)
    except subprocess.CalledProcessError as e:
        detail = (e.stderr or e.stdout or "").strip().splitlines()[-5:]
        raise RuntimeError(f"{what} failed ({e.returncode}): {' | '.join(detail)}") from None


def _chown_pg(path: Path) -> None:
    """Hand ``path`` to the postgres user when we are root."""
    account = _pg_account()
    if is_root() and account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)


def _reachable_by_pg(path: Path) -> bool:
    """True when the postgres user can traverse every ancestor of ``path`` (always if not root)."""
    account = _pg_account()
    if not is_root() or account is None:
        return True
    gids = set(os.getgrouplist(PG_USER, account.pw_gid))
    for p in (path, *path.parents):
        st = p.stat()
        if not (
            st.st_mode & 0o001
            or (st.st_uid == account.pw_uid and st.st_mode & 0o100)
            or (st.st_gid in gids and st.st_mode & 0o010)
        ):
            return False
    return True


def template_dir(bin_dir: Path, cache_dir: Path | None = None) -> Path:
    """A pristine ``initdb`` data dir for this server version, created once and cached."""
    version = server_version(bin_dir)
    cache = cache_dir or Path(tempfile.gettempdir()) / f"rconfd-py-pgtemplate-{version}"
    cache.mkdir(mode=0o755, parents=True, exist_ok=True)
    if cache.stat().st_uid not in (os.geteuid(), getattr(_pg_account(), "pw_uid", -1)):
        raise RuntimeError(f"{cache} is owned by someone else; pass another cache_dir")
    _chown_pg(cache)
    data = cache / "data"
    with open(cache / ".lock", "w") as lock:  # concurrent test sessions initdb only once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (data / "PG_VERSION").is_file() and (data / "PG_VERSION").read_text().strip() == version:
            return data
        staging = cache / f"data.tmp{os.getpid()}"
        for stale in (data, staging):
            shutil.rmtree(stale, ignore_errors=True)
        _run(
            [
                str(bin_dir / "initdb"),
                "-D", str(staging),
                "-U", PG_USER,
                "-A", "trust",
                "-E", "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            "initdb",
        )  # fmt: skip
        staging.rename(data)
    return data


@dataclass
class Postgres:
    """A running throwaway cluster listening on 127.0.0.1:``port`` (trust auth, user postgres)."""

    bin_dir: Path
    base_dir: Path
    port: int
    host: str = LOCALHOST
    user: str = PG_USER
    password: str = PG_USER  # ignored by trust auth; Vault's database plugin wants one
    owns_base_dir: bool = field(default=False, repr=False)
    link: Path | None = field(default=None, repr=False)  # workdir/pg symlink to a private dir
    _stopped: bool = field(default=False, repr=False)

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.base_dir / "data"

    @property
    def log_path(self) -> Path:
        """Server log (written by pg_ctl -l)."""
        return self.base_dir / "postgres.log"

    @property
    def dsn(self) -> str:
        """libpq URL for the superuser."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/postgres?sslmode=disable"

    @property
    def vault_connection_url(self) -> str:
        """``connection_url`` for Vault's postgresql-database-plugin (templated credentials)."""
        return (
            "postgresql://{{username}}:{{password}}"
            f"@{self.host}:{self.port}/postgres?sslmode=disable"
        )

    @property
    def pid(self) -> int | None:
        """Postmaster PID from postmaster.pid, if running."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def log_tail(self, lines: int = 5) -> str:
        """Last lines of the server log (for error messages)."""
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def psql(self, sql: str, *, dbname: str = "postgres") -> str:
        """Run one SQL command with ``psql -At`` and return its stripped output."""
        argv = [
            str(self.bin_dir / "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1",
            "-h", self.host, "-p", str(self.port), "-U", self.user, "-d", dbname, "-c", sql,
        ]  # fmt: skip
        env = {**os.environ, "PGCONNECT_TIMEOUT": "5"}
        proc = subprocess.run(
            argv, check=False, capture_output=True, text=True, env=env, timeout=30
        )
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout.strip()

    def stop(self) -> None:
        """Stop with ``pg_ctl -m immediate`` (SIGQUIT/SIGKILL fallback); remove a private base dir."""
        if self._stopped:
            return
        self._stopped = True
        pid = self.pid
        try:
            _run(
                [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir),
                 "-m", "immediate", "-w", "-t", "20", "stop"],
                "pg_ctl stop",
            )  # fmt: skip
        except RuntimeError:
            if pid is not None:
                _kill_and_wait(pid)
        if self.owns_base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            if self.link is not None and self.link.is_symlink():
                self.link.unlink()


def _kill_and_wait(pid: int, timeout: float = 5.0) -> None:
    """SIGQUIT a postmaster (immediate shutdown), then SIGKILL if it lingers."""
    for sig in (signal.SIGQUIT, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def _choose_base_dir(workdir: Path) -> tuple[Path, Path | None]:
    """``workdir/pg`` when the postgres user can reach it and the socket path fits, else a
    private dir in the temp dir, symlinked as ``workdir/pg``. Returns (dir, symlink or None)."""
    wanted = workdir / "pg"
    if wanted.is_symlink():
        wanted.unlink()
    if _reachable_by_pg(workdir) and len(str(wanted)) <= _SOCKET_PATH_MAX:
        wanted.mkdir(exist_ok=True)
        shutil.rmtree(wanted / "data", ignore_errors=True)  # a previous run's cluster
        return wanted, None
    base = Path(tempfile.mkdtemp(prefix="rconfd-py-pg-"))
    base.chmod(0o755)
    wanted.symlink_to(base, target_is_directory=True)
    return base, wanted


def start(
    workdir: Path,
    *,
    port: int | None = None,
    cache_dir: Path | None = None,
    timeout: float = 60.0,
) -> Postgres:
    """Start a throwaway cluster for ``workdir`` (copied from the cached template) and wait for it.

    Tuned for speed, not durability: fsync/synchronous_commit/full_page_writes off.
    """
    bin_dir = find_bin_dir()
    if bin_dir is None or not available():
        raise FileNotFoundError("PostgreSQL server binaries (or the postgres user) not found")
    workdir.mkdir(parents=True, exist_ok=True)
    template = template_dir(bin_dir, cache_dir)
    base, link = _choose_base_dir(workdir)
    _chown_pg(base)
    pg = Postgres(
        bin_dir, base, port or free_ports(1)[0], owns_base_dir=link is not None, link=link
    )
    try:
        _run(["cp", "-a", str(template), str(pg.data_dir)], "copying the template data dir")
        opts = " ".join(
            [
                f"-p {pg.port}",
                f"-k {shlex.quote(str(base))}",
                f"-c listen_addresses={LOCALHOST}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c shared_buffers=16MB",
                "-c max_connections=100",
            ]
        )
        try:
            _run(
                [str(bin_dir / "pg_ctl"), "-D", str(pg.data_dir), "-l", str(pg.log_path),
                 "-w", "-t", str(int(timeout)), "-o", opts, "start"],
                "pg_ctl start",
            )  # fmt: skip
        except RuntimeError as e:
            raise RuntimeError(f"{e}; server log: {pg.log_tail()}") from None
        wait_until(lambda: pg.pid is not None, 5, what="postmaster.pid")
    except BaseException:
        pg.stop()
        raise
    return pg
