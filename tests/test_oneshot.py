"""One-shot rendering against the real OpenBao (and PostgreSQL) of the dev stack."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from cli import rconfd
from helpers import audit_request_paths, require

LIB = Path(__file__).resolve().parent.parent / "templates" / "lib"


def make_config(d: Path, templates: dict[str, str], configs: dict[str, dict]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in templates.items():
        (d / name).write_text(text)
    for name, body in configs.items():
        (d / name).write_text(json.dumps(body))
    return d


def jwt_args(vault_env):
    return ["-u", vault_env["VAULT_ADDR"], "-l", "/auth/jwt/login",
            "-t", vault_env["VAULT_JWT_PATH"]]


KV_TEMPLATE = """
local s = std.extVar('secrets');
{ 'app.conf': 'user=%s\\npassword=%s' % [s.kv.data.username, s.kv.data.password] }
"""


def test_jwt_login_and_kv_v2(tmp_path, vault_env):
    out = tmp_path / "out"
    cfg = make_config(tmp_path / "cfg", {"t.jsonnet": KV_TEMPLATE}, {"a.json": {"t.jsonnet": {
        "dir": str(out), "secrets": {"vault:test-role:kv/data/test/mysecret": "kv"}}}})
    r = rconfd("-d", cfg, *jwt_args(vault_env))
    assert r.rc == 0, r.err
    assert (out / "app.conf").read_text() == "user=alice\npassword=s3cr3t\n"
    assert stat.S_IMODE((out / "app.conf").stat().st_mode) == 0o640


def test_kubernetes_login_is_the_default_and_url_may_end_in_v1(tmp_path, vault_env):
    out = tmp_path / "out"
    cfg = make_config(tmp_path / "cfg", {"t.jsonnet": KV_TEMPLATE}, {"a.json": {"t.jsonnet": {
        "dir": str(out), "secrets": {"vault:test-role:kv/data/test/mysecret": "kv"}}}})
    env = {"VAULT_URL": vault_env["VAULT_ADDR"] + "/v1",
           "RCONFD_TOKEN_PATH": vault_env["VAULT_K8S_JWT_PATH"]}
    r = rconfd("-d", cfg, env=env)
    assert r.rc == 0, r.err
    assert "alice" in (out / "app.conf").read_text()


def test_token_flag_reads_env_var_like_gitlab_ci(tmp_path, vault_env, stack):
    out = tmp_path / "out"
    cfg = make_config(tmp_path / "cfg", {"t.jsonnet": KV_TEMPLATE}, {"a.json": {"t.jsonnet": {
        "dir": str(out), "secrets": {"vault:test-role:kv/data/test/mysecret": "kv"}}}})
    env = {"CI_JOB_JWT": stack.mint_jwt(), "VAULT_ADDR": vault_env["VAULT_ADDR"]}
    r = rconfd("-d", cfg, "-l", "/auth/jwt/login", "-T", "CI_JOB_JWT", env=env)
    assert r.rc == 0, r.err
    assert (out / "app.conf").exists()


PKI_TRANSIT = """
local s = std.extVar('secrets');
{
  'tls/cert.pem': s.cert.certificate,
  'tls/key.pem': s.cert.private_key,
  'hmac.txt': s.mac.hmac,
  'meta.json': { expiration: std.type(s.cert.expiration) },
}
"""


def test_pki_issue_and_transit_hmac_via_post_kwargs(tmp_path, vault_env):
    out = tmp_path / "out"
    cfg = make_config(tmp_path / "cfg", {"t.jsonnet": PKI_TRANSIT}, {"a.json": {"t.jsonnet": {
        "dir": str(out), "mode": "0600", "secrets": {
            "vault:test-role,POST,common_name=www.example.com:pki/issue/example.com": "cert",
            "vault:test-role,POST,input=aGVsbG8=:transit/hmac/mysecret": "mac"}}}})
    r = rconfd("-d", cfg, *jwt_args(vault_env))
    assert r.rc == 0, r.err
    assert (out / "tls/cert.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" in (out / "tls/key.pem").read_text()
    assert stat.S_IMODE((out / "tls/key.pem").stat().st_mode) == 0o600
    assert (out / "hmac.txt").read_text().startswith("vault:v1:")
    assert json.loads((out / "meta.json").read_text()) == {"expiration": "number"}


def test_database_creds_are_a_live_postgres_role(tmp_path, vault_env, pg):
    out = tmp_path / "out"
    tpl = "local s = std.extVar('secrets'); { 'db.json': s.db }"
    cfg = make_config(tmp_path / "cfg", {"t.jsonnet": tpl}, {"a.json": {"t.jsonnet": {
        "dir": str(out), "secrets": {"vault:test-role:database/creds/mydb": "db"}}}})
    r = rconfd("-d", cfg, *jwt_args(vault_env))
    assert r.rc == 0, r.err
    creds = json.loads((out / "db.json").read_text())
    valid = pg.psql(f"SELECT rolvaliduntil > now() FROM pg_roles WHERE rolname = "
                    f"'{creds['username']}'")
    assert valid.strip() == "t"


def test_each_secret_fetched_once_however_many_templates(tmp_path, vault_env, stack, pg):
    out = tmp_path / "out"
    tpl = "local s = std.extVar('secrets'); { '%s': s.db.username }"
    secrets = {"vault:test-role:database/creds/mydb": "db"}
    cfg = make_config(tmp_path / "cfg", {"a.jsonnet": tpl % "a", "b.jsonnet": tpl % "b"}, {
        "1.json": {"a.jsonnet": {"dir": str(out), "secrets": secrets}},
        "2.json": {"b.jsonnet": {"dir": str(out), "secrets": secrets}}})
    before = len(audit_request_paths(stack.audit_log))
    r = rconfd("-d", cfg, *jwt_args(vault_env))
    assert r.rc == 0, r.err
    paths = audit_request_paths(stack.audit_log)[before:]
    assert paths.count("database/creds/mydb") == 1
    assert paths.count("auth/jwt/login") == 1
    assert (out / "a").read_text() == (out / "b").read_text()


LOCAL = """
local s = std.extVar('secrets');
{
  'env.txt': s.env_str,
  'env.json': s.env_js,
  'file.txt': s.file_str,
  'file.json': s.file_js,
  'exe.txt': s.exe_str,
  'exe.json': s.exe_js,
  'dyn.txt': s.dyn,
  '/ABS/abs.txt': 'absolute',
  [if s.file_js.enabled then 'cond-on.txt']: 'on',
  [if !s.file_js.enabled then 'cond-off.txt']: 'off',
}
"""


def test_env_file_exe_backends_both_kinds_and_paths(tmp_path):
    out = tmp_path / "out"
    absdir = tmp_path / "abs"
    (tmp_path / "data.txt").write_text("plain text\n")
    (tmp_path / "data.json").write_text('{"enabled": true, "n": 3}')
    cfg = make_config(tmp_path / "cfg", {"t.jsonnet": LOCAL.replace("/ABS", str(absdir))}, {
        "a.json": {"t.jsonnet": {"dir": "${OUT_BASE}/out", "secrets": {
            "env:str:MY_STR": "env_str",
            "env:js:MY_JS": "env_js",
            "file:str:" + str(tmp_path / "data.txt"): "file_str",
            "file:js:data.json": "file_js",  # relative to the working directory
            "exe:str:/bin/echo '  padded  '": "exe_str",
            "exe:js:/usr/bin/printf '{\"k\": [1, 2]}'": "exe_js",
            "exe:str,dynamic:/bin/echo ${DYN_WORD}": "dyn",
        }}}})
    env = {"MY_STR": "hello", "MY_JS": '{"a": [1, "b"]}', "OUT_BASE": str(tmp_path),
           "DYN_WORD": "dynamic"}
    r = rconfd("-d", cfg, env=env, cwd=tmp_path)
    assert r.rc == 0, r.err
    assert (out / "env.txt").read_text() == "hello\n"
    assert json.loads((out / "env.json").read_text()) == {"a": [1, "b"]}
    assert (out / "file.txt").read_text() == "plain text\n"  # one newline, not two
    assert json.loads((out / "file.json").read_text()) == {"enabled": True, "n": 3}
    assert (out / "exe.txt").read_text() == "padded\n"  # trimmed stdout
    assert json.loads((out / "exe.json").read_text()) == {"k": [1, 2]}
    assert (out / "dyn.txt").read_text() == "dynamic\n"
    assert (absdir / "abs.txt").read_text() == "absolute\n"
    assert (out / "cond-on.txt").exists() and not (out / "cond-off.txt").exists()


def test_unchanged_content_is_not_rewritten_and_readiness_once(tmp_path):
    out = tmp_path / "out"
    cfg = make_config(tmp_path / "cfg", {"t.jsonnet": "{ a: 'x', b: { n: 1 } }"},
                      {"a.json": {"t.jsonnet": {"dir": str(out)}}})
    rfd, wfd = os.pipe()
    r = rconfd("-d", cfg, "-r", str(wfd), pass_fds=(wfd,))
    os.close(wfd)
    with os.fdopen(rfd, "rb") as f:
        assert f.read() == b"\n"  # exactly one newline, then closed
    assert r.rc == 0, r.err
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    r = rconfd("-d", cfg, "-v")
    assert r.rc == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert "0 file(s) changed" in r.err


def test_mode_and_owner(tmp_path):
    require("root (to chown)", os.geteuid() == 0)
    import pwd

    nobody = pwd.getpwnam("nobody")
    out = tmp_path / "out"
    cfg = make_config(tmp_path / "cfg", {"t.jsonnet": "{ 'o.txt': 'x' }"},
                      {"a.json": {"t.jsonnet": {"dir": str(out), "mode": "0604",
                                                "user": "nobody"}}})
    r = rconfd("-d", cfg)
    assert r.rc == 0, r.err
    st = (out / "o.txt").stat()
    assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert stat.S_IMODE(st.st_mode) == 0o604


def test_hooks_ready_always_modified_only_when_an_existing_file_changes(tmp_path):
    out = tmp_path / "out"
    marks = tmp_path / "marks"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\necho \"$1\" >> {marks}\n")
    hook.chmod(0o755)
    cfg = make_config(tmp_path / "cfg", {"t.jsonnet": "{ 'f': std.extVar('secrets').v }"},
                      {"a.json": {"t.jsonnet": {"dir": str(out), "secrets": {"env:str:V": "v"},
                                                "hooks": {"ready": f"{hook} ready",
                                                          "modified": f"{hook} modified"}}}})
    assert rconfd("-d", cfg, env={"V": "1"}).rc == 0  # new file: not a modification
    assert rconfd("-d", cfg, env={"V": "1"}).rc == 0  # same content
    assert rconfd("-d", cfg, env={"V": "2"}).rc == 0  # changed an existing file
    assert marks.read_text().split() == ["ready", "ready", "modified", "ready"]


def test_failing_hook_is_logged_not_fatal(tmp_path):
    cfg = make_config(tmp_path / "cfg", {"t.jsonnet": "{ f: 'x' }"}, {"a.json": {"t.jsonnet": {
        "dir": str(tmp_path / "out"), "hooks": {"ready": "/bin/false"}}}})
    r = rconfd("-d", cfg)
    assert r.rc == 0
    assert "ready hook /bin/false exited with status 1" in r.err


def test_official_jsonnet_engine_renders_the_same(tmp_path, vault_env):
    tpl = (LIB.parent / "examples" / "app.jsonnet").read_text()
    results = {}
    for engine in ("rjsonnet", "jsonnet"):
        out = tmp_path / engine
        cfg = make_config(tmp_path / f"cfg-{engine}", {"app.jsonnet": tpl}, {"a.json": {
            "app.jsonnet": {"dir": str(out), "secrets": {
                "vault:test-role:kv/data/test/mysecret": "app",
                "vault:test-role,POST,input=aGVsbG8=:transit/hmac/mysecret": "hmac",
                "env:str:HOSTNAME": "hostname"}}}})
        r = rconfd("-d", cfg, "-j", LIB, "--engine", engine, *jwt_args(vault_env),
                   env={"HOSTNAME": "h1"})
        assert r.rc == 0, r.err
        results[engine] = {p.name: p.read_text() for p in out.iterdir()}
    assert results["rjsonnet"] == results["jsonnet"]
    assert "APP_USER=alice" in results["rjsonnet"]["app.env"]


def test_commands_it_runs_never_get_a_credential_from_its_environment(tmp_path):
    """exe secrets (run as nobody), checks and hooks: no VAULT_TOKEN, no variable -T reads the
    JWT from; the rest of the environment is theirs."""
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "t.jsonnet").write_text("{ 'env.txt': std.extVar('secrets').e }")
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\n/usr/bin/env > {tmp_path}/hook-env\n")
    hook.chmod(0o755)
    (cfg / "a.json").write_text(json.dumps({"t.jsonnet": {
        "dir": str(tmp_path / "out"), "secrets": {"exe:str:/usr/bin/env": "e"},
        "hooks": {"ready": str(hook)}}}))
    env = {"VAULT_TOKEN": "hvs.a-token-never-passed-on", "MY_JWT": "eyJ.never.passed",
           "RCONFD_TOKEN": "eyJ.neither.passed", "KEEP_ME": "kept",
           "HTTPS_PROXY": "http://user:pw-never-passed@127.0.0.1:1",
           "ALL_PROXY": "http://u:pw/raw-never-passed@127.0.0.1:1",  # a raw / in it
           "http_proxy": "http://127.0.0.1:3128"}
    r = rconfd("-d", cfg, "-T", "MY_JWT", env=env)
    assert r.rc == 0, r.err
    for seen in ((tmp_path / "out" / "env.txt").read_text(), (tmp_path / "hook-env").read_text()):
        assert "KEEP_ME=kept" in seen and "http_proxy=http://127.0.0.1:3128" in seen
        assert "hvs.a-token" not in seen and "eyJ.never" not in seen, seen
        assert "eyJ.neither" not in seen and "pw-never-passed" not in seen, seen
        assert "raw-never-passed" not in seen, seen
