"""Every error class: its exit code, one clear line naming what is at fault, no traceback,
nothing on disk touched, and no secret value in any log line."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from cli import rconfd

from rconfd_py import errors

GOOD = "local s = std.extVar('secrets'); { 'good.txt': s.kv.data.username }"


def setup(tmp_path: Path, template: str, secrets: dict, **extra) -> tuple[Path, Path]:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    (out / "good.txt").write_text("previous\n")
    cfg = tmp_path / "cfg"
    cfg.mkdir(exist_ok=True)
    (cfg / "t.jsonnet").write_text(template)
    (cfg / "a.json").write_text(json.dumps({"t.jsonnet": {"dir": str(out), "secrets": secrets,
                                                          **extra}}))
    return cfg, out


def assert_clean_failure(r, code: int, *needles: str, out: Path | None = None):
    assert r.rc == code, r.err
    errors_ = [ln for ln in r.lines if ": error: " in ln]
    assert len(errors_) >= 1, r.err
    for needle in needles:
        assert needle in errors_[0], errors_[0]
    assert "Traceback" not in r.err
    if out is not None:
        assert (out / "good.txt").read_text() == "previous\n"
        assert sorted(p.name for p in out.iterdir()) == ["good.txt"]


KV = {"vault:test-role:kv/data/test/mysecret": "kv"}


def jwt(vault_env):
    return ["-u", vault_env["VAULT_ADDR"], "-l", "/auth/jwt/login",
            "-t", vault_env["VAULT_JWT_PATH"]]


def test_config_error_exit_2(tmp_path, vault_env):
    cfg, out = setup(tmp_path, GOOD, KV, mode="abc")
    r = rconfd("-d", cfg, *jwt(vault_env))
    assert_clean_failure(r, errors.EXIT_CONFIG, "a.json", "'t.jsonnet'.mode", "bad mode", out=out)


def test_usage_error_exit_2(tmp_path):
    r = rconfd("--ready-fd", "three")
    assert r.rc == errors.EXIT_CONFIG and "invalid int value" in r.err
    r = rconfd("-d", tmp_path, env={"RCONFD_DAEMON": "perhaps"})
    assert_clean_failure(r, errors.EXIT_CONFIG, "RCONFD_DAEMON")


def test_bad_url_and_closed_ready_fd_are_usage_errors(tmp_path, vault_env):
    cfg, out = setup(tmp_path, GOOD, KV)
    r = rconfd("-d", cfg, "-u", "ftp://vault:8200", "-t", vault_env["VAULT_JWT_PATH"])
    assert_clean_failure(r, errors.EXIT_CONFIG, "Vault address (-u)", "ftp://", out=out)
    r = rconfd("-d", cfg, "-r", "97", *jwt(vault_env))
    assert_clean_failure(r, errors.EXIT_CONFIG, "--ready-fd 97", out=out)


def test_template_error_exit_3_with_location(tmp_path, vault_env):
    cfg, out = setup(tmp_path, "local s = std.extVar('secrets');\n{ 'good.txt': s.nope }", KV)
    r = rconfd("-d", cfg, *jwt(vault_env))
    assert_clean_failure(r, errors.EXIT_TEMPLATE, "t.jsonnet", "nope", out=out)


def test_template_syntax_error_exit_3(tmp_path, vault_env):
    cfg, out = setup(tmp_path, "{ 'good.txt': }", KV)
    r = rconfd("-d", cfg, *jwt(vault_env))
    assert_clean_failure(r, errors.EXIT_TEMPLATE, "t.jsonnet:1", out=out)


def test_template_not_an_object_exit_3(tmp_path, vault_env):
    cfg, out = setup(tmp_path, "[1, 2]", KV)
    r = rconfd("-d", cfg, *jwt(vault_env))
    assert_clean_failure(r, errors.EXIT_TEMPLATE, "must evaluate to an object", out=out)


def test_login_refused_exit_4_names_role(tmp_path, vault_env):
    cfg, out = setup(tmp_path, GOOD, {"vault:no-such-role:kv/data/test/mysecret": "kv"})
    r = rconfd("-d", cfg, *jwt(vault_env))
    assert_clean_failure(r, errors.EXIT_VAULT, "role 'no-such-role'", "HTTP 400", out=out)


def test_expired_jwt_exit_4(tmp_path, vault_env, stack):
    cfg, out = setup(tmp_path, GOOD, KV)
    r = rconfd("-d", cfg, "-u", vault_env["VAULT_ADDR"], "-l", "/auth/jwt/login",
               "-T", stack.mint_jwt(ttl=-120))
    assert_clean_failure(r, errors.EXIT_VAULT, "role 'test-role'", "expired", out=out)


def test_missing_secret_exit_4_names_path(tmp_path, vault_env):
    cfg, out = setup(tmp_path, GOOD, {"vault:test-role:kv/data/test/nothing-here": "kv"})
    r = rconfd("-d", cfg, *jwt(vault_env))
    assert_clean_failure(r, errors.EXIT_VAULT, "kv/data/test/nothing-here", "404", out=out)


def test_policy_denied_exit_4(tmp_path, vault_env):
    cfg, out = setup(tmp_path, GOOD, {"vault:test-role:sys/policies/acl/rconfd": "kv"})
    r = rconfd("-d", cfg, *jwt(vault_env))
    assert_clean_failure(r, errors.EXIT_VAULT, "sys/policies/acl/rconfd", "403", out=out)


def test_vault_unreachable_exit_4(tmp_path, vault_env):
    cfg, out = setup(tmp_path, GOOD, KV)
    r = rconfd("-d", cfg, "-u", "http://127.0.0.1:9", "-l", "/auth/jwt/login",
               "-t", vault_env["VAULT_JWT_PATH"])
    assert_clean_failure(r, errors.EXIT_VAULT, "cannot reach Vault", out=out)


def test_missing_jwt_file_is_a_config_error(tmp_path, vault_env):
    cfg, out = setup(tmp_path, GOOD, KV)
    r = rconfd("-d", cfg, "-u", vault_env["VAULT_ADDR"], "-t", tmp_path / "no-token")
    assert_clean_failure(r, errors.EXIT_CONFIG, "no-token", out=out)


@pytest.mark.parametrize("ref,needle", [
    ("env:str:RCONFD_TEST_UNSET_VAR", "RCONFD_TEST_UNSET_VAR is not set"),
    ("env:js:NOT_JSON", "env:js:NOT_JSON: not valid JSON"),
    ("file:str:/nonexistent/file", "/nonexistent/file"),
    ("exe:str:/bin/false", "exited with status 1"),
    ("exe:str:/nonexistent/cmd", "cannot run /nonexistent/cmd"),
    ("exe:str:/usr/bin/yes y", "output larger than 16 MiB"),  # never all in memory
])
def test_source_errors_exit_5(tmp_path, ref, needle):
    cfg, out = setup(tmp_path, "{ 'good.txt': 'new' }", {ref: "x"})
    r = rconfd("-d", cfg, env={"NOT_JSON": "{secret-ish"})
    assert_clean_failure(r, errors.EXIT_SOURCE, needle, out=out)
    assert "secret-ish" not in r.err


def test_unwritable_output_exit_6(tmp_path):
    cfg, out = setup(tmp_path, "{ 'good.txt': 'new', 'blocked/x.txt': 'y' }", {})
    (out / "blocked").write_text("a file where a directory is needed")
    r = rconfd("-d", cfg)
    assert r.rc == errors.EXIT_IO, r.err
    assert "blocked/x.txt" in r.err and "Traceback" not in r.err
    assert (out / "good.txt").read_text() == "previous\n"
    assert not [p for p in out.iterdir() if p.name.endswith(".rconfd-tmp")]


def test_one_failing_template_writes_nothing_at_all(tmp_path):
    cfg, out = setup(tmp_path, "{ 'good.txt': 'new' }", {})
    (cfg / "bad.jsonnet").write_text("{ x: error 'nope' }")
    (cfg / "b.json").write_text(json.dumps({"bad.jsonnet": {"dir": str(out)}}))
    r = rconfd("-d", cfg)
    assert_clean_failure(r, errors.EXIT_TEMPLATE, "bad.jsonnet", "nope", out=out)


def test_no_secret_value_in_any_log_line_even_on_error(tmp_path, vault_env, stack):
    """Debug logging of a successful run, then a template whose error message embeds secrets."""
    leaky = ("local s = std.extVar('secrets');\n"
             "{ 'good.txt': error 'bad ' + s.kv.data.password + ' ' + s.db }")
    secrets = {**KV, "env:str:DB_PASS": "db"}
    cfg, out = setup(tmp_path, GOOD, KV)
    jwt_text = Path(vault_env["VAULT_JWT_PATH"]).read_text().strip()
    ok = rconfd("-d", cfg, "-v", *jwt(vault_env))
    assert ok.rc == 0
    (tmp_path / "2").mkdir()
    cfg2, _ = setup(tmp_path / "2", leaky, secrets)
    bad = rconfd("-d", cfg2, "-v", *jwt(vault_env), env={"DB_PASS": "hunter2-db"})
    assert bad.rc == errors.EXIT_TEMPLATE
    for run in (ok, bad):
        for value in ("s3cr3t", "k-123", "hunter2-db", jwt_text, jwt_text[:40]):
            assert value not in run.err
    assert "<redacted>" in bad.err  # the message is still there, masked
    assert "debug:" in ok.err  # -v really was on


def test_an_exe_secret_that_times_out_is_killed_with_what_it_started(shared_tmp):
    """Its process group goes: no grandchild is left holding rconfd-py's pipe or running."""
    from rconfd_py.backends import Sources
    from rconfd_py.backends.exe import fetch
    from rconfd_py.errors import SourceError
    from rconfd_py.refs import parse_ref

    shared_tmp.chmod(0o777)  # the command runs as nobody when we are root
    pidfile = shared_tmp / "grandchild"
    ref = parse_ref(f"exe:str:/bin/sh -c 'sleep 60 & echo $! > {pidfile}; wait'")
    with pytest.raises(SourceError, match="timed out after 0.5s"):
        fetch(ref, Sources(exe_timeout=0.5))
    pid = int(pidfile.read_text())
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"the grandchild {pid} still runs")
