"""rconfd's README example config, unchanged, rendered in one-shot mode against OpenBao."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from cli import rconfd
from helpers import require

README_EXAMPLE = Path(__file__).parent / "data" / "rconfd_readme"
WORKDIR = Path(__file__).parent / "data" / "rconfd_readme_cwd"  # holds file.json, as rconfd's cwd
SSL_FILES = (Path("/etc/ssl/cert.crt"), Path("/etc/ssl/cert.key"))


@pytest.fixture
def test_user():
    """rconfd's example chowns to `test-user` and writes to /etc: needs root."""
    require("root (the example writes /etc/test and /etc/ssl, chowns to test-user)",
            os.geteuid() == 0)
    created = False
    try:
        pwd.getpwnam("test-user")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "test-user"], check=True)
        created = True
    yield pwd.getpwnam("test-user")
    if created:
        subprocess.run(["userdel", "test-user"], check=False)


def test_rconfd_readme_example_renders_unchanged(tmp_path, vault_env, pg, test_user):
    cfg = tmp_path / "rconfd"
    shutil.copytree(README_EXAMPLE, cfg)
    instance = "it-" + uuid.uuid4().hex[:8]
    out = Path("/etc/test") / instance
    saved = {p: p.read_bytes() for p in SSL_FILES if p.exists()}
    env = {"NAMESPACE": "test", "INSTANCE": instance}
    try:
        r = rconfd("-d", cfg, "-u", vault_env["VAULT_ADDR"], "-l", "/auth/jwt/login",
                   "-t", vault_env["VAULT_JWT_PATH"], env=env, cwd=WORKDIR)
        assert r.rc == 0, r.err
        dump = json.loads((out / "dump.json").read_text())
        assert dump["mysecret"] == {"username": "alice", "password": "s3cr3t",
                                     "api_key": "k-123"}
        assert dump["namespace"] == "test" and dump["file"] == {"test": "true"}
        assert dump["cpu"] == os.cpu_count() and int(dump["timestamp"]) > 0
        assert len(dump["mysecret2"]) > 20  # the hmac without its vault:v1: prefix
        assert (out / "test.txt").read_text() == "hello world!\n"
        crt = Path("/etc/ssl/cert.crt").read_text()
        assert crt.startswith("-----BEGIN CERTIFICATE-----") and crt == dump["cert"][
            "certificate"] + "\n"
        st = (out / "dump.json").stat()
        assert (st.st_uid, st.st_mode & 0o777) == (test_user.pw_uid, 0o644)
        assert "ready hook /usr/bin/echo" in r.err
    finally:
        shutil.rmtree(out, ignore_errors=True)
        for p in SSL_FILES:
            if p in saved:
                p.write_bytes(saved[p])
            else:
                p.unlink(missing_ok=True)
