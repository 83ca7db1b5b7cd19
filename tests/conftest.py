"""Fixtures: one seeded development stack (OpenBao + PostgreSQL + TokenReview stub) per session.

Missing optional tools (PostgreSQL, s6) skip the tests that need them, or fail them when
``RCONFD_REQUIRE_ALL=1`` (see ``helpers.require``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import hostile_user, require

from rconfd_py.dev import postgres
from rconfd_py.dev.bao import find_bao
from rconfd_py.dev.stack import DevStack, start


def _bao_available() -> bool:
    try:
        find_bao()
    except FileNotFoundError:
        return False
    return True


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    """The session's running stack (audit log on; PostgreSQL when available)."""
    require("OpenBao (bao binary)", _bao_available())
    dev = start(tmp_path_factory.mktemp("devstack"), postgres=postgres.available(), audit=True)
    try:
        yield dev
    finally:
        dev.stop()


@pytest.fixture
def pg(stack: DevStack) -> postgres.Postgres:
    """The stack's PostgreSQL (skip, or fail under RCONFD_REQUIRE_ALL=1, when absent)."""
    require("PostgreSQL server binaries", stack.pg is not None)
    assert stack.pg is not None
    return stack.pg


@pytest.fixture
def vault_env(stack: DevStack, tmp_path: Path) -> dict[str, str]:
    """Env vars pointing at the stack, with fresh JWT files (not applied to os.environ)."""
    jwt_dir = tmp_path / "vault-jwt"
    return {
        **stack.env(),
        "VAULT_ROLE": "test-role",
        "VAULT_JWT_PATH": str(stack.write_jwt(jwt_dir / "token.jwt")),
        "VAULT_K8S_JWT_PATH": str(stack.write_jwt(jwt_dir / "k8s-token.jwt", k8s=True)),
    }


@pytest.fixture
def hostile():
    """A real unprivileged user (useradd), and a world-traversable scratch dir for it."""
    return hostile_user()


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A scratch dir other users can traverse (pytest's tmp_path is root-only)."""
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="rconfd-test-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
