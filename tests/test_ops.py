"""Issue 14, items 3-5, through the real command line: `--log-format json` (every line parses,
no secret in any), `--dry-run` (a masked diff, nothing touched, the exit codes of a real run)
and the per-template `check` (run on the staged files before any rename; a rejection keeps
the old files and runs no hook, one-shot and daemon)."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from cli import DaemonProc, rconfd

PW = "hunter2-long-password"
SHORT = "Qz9"  # a short value: masked as a whole word
PEM = ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
       "bm90LWEtcmVhbC1rZXktYnV0LWxvbmc=\nZz\n-----END PRIVATE KEY-----\n")
ENV = {"PW": PW, "SHORT": SHORT, "PEM": PEM}
SECRETS = {"env:str:PW": "pw", "env:str:SHORT": "short", "env:str:PEM": "pem",
           "exe:str:/bin/echo ${PW}": "echoed"}  # its path, a `path` field, holds the secret
TEMPLATE = """local s = std.extVar('secrets');
{ 'app.conf': 'user = bob\\npassword = %s\\npin = %s\\nport = 5432\\n' % [s.pw, s.short],
  'key.pem': s.pem }
"""


def secret_strings() -> list[str]:
    """Every value, and every line of the multi-line one long enough to be told apart."""
    lines = [ln for ln in PEM.splitlines() if len(ln) >= 4 and "-----" not in ln]
    return [PW, SHORT, PEM.strip(), *lines]


def assert_no_secret(text: str) -> None:
    for s in secret_strings():
        if len(s) < 4:
            assert not re.search(rf"(?<!\w){re.escape(s)}(?!\w)", text), s
        else:
            assert s not in text, s
        assert json.dumps(s)[1:-1] not in text or len(s) < 4, s


def hook_script(tmp_path: Path, name: str, body: str) -> Path:
    p = tmp_path / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return p


def setup(tmp_path: Path, template: str = TEMPLATE, **extra) -> tuple[Path, Path]:
    cfg, out = tmp_path / "cfg", tmp_path / "out"
    cfg.mkdir(exist_ok=True)
    (cfg / "t.jsonnet").write_text(template)
    marker = tmp_path / "hook-ran"
    hook = hook_script(tmp_path, "hook.sh", f"echo \"$@\" >> {marker}\n")
    body = {"dir": str(out), "mode": "0600", "secrets": SECRETS,
            "hooks": {"modified": f"{hook} modified", "ready": f"{hook} ready"}, **extra}
    (cfg / "c.json").write_text(json.dumps({"t.jsonnet": body}))
    return cfg, out


def parse_json_lines(err: str) -> list[dict]:
    records = []
    for line in err.splitlines():
        rec = json.loads(line)  # every line is one JSON object
        assert {"time", "level", "message"} <= rec.keys(), line
        records.append(rec)
    return records


# -- --log-format json -----------------------------------------------------------------------
def test_json_logs_one_shot_parse_and_hold_no_secret(tmp_path):
    cfg, out = setup(tmp_path)
    run = rconfd("-d", cfg, "-v", "--log-format", "json", env=ENV)
    assert run.rc == 0, run.err
    records = parse_json_lines(run.err)
    wrote = [r for r in records if r["message"].startswith("c.json:t.jsonnet: wrote")]
    assert {r["file"] for r in wrote} == {str(out / "app.conf"), str(out / "key.pem")}
    assert all(r["template"] == "c.json:t.jsonnet" for r in wrote)
    assert any(r.get("path") == "env:str:PW" for r in records)  # fetched, with its path
    assert any(r.get("path") == "exe:str:/bin/echo <redacted>" for r in records)  # masked
    assert_no_secret(run.err)
    # a failing template whose error quotes the secrets: still masked, still JSON
    (cfg / "t.jsonnet").write_text("local s = std.extVar('secrets'); "
                                   "error 'bad ' + s.pw + ' ' + s.short + ' ' + s.pem")
    run = rconfd("-d", cfg, "-v", "--log-format", "json", env=ENV)
    assert run.rc == 3
    records = parse_json_lines(run.err)
    assert any(r["level"] == "error" and "<redacted>" in r["message"] for r in records)
    assert_no_secret(run.err)


def test_json_logs_env_var_and_text_format_unchanged(tmp_path):
    cfg, _ = setup(tmp_path)
    run = rconfd("-d", cfg, env={**ENV, "RCONFD_LOG_FORMAT": "json"})
    assert run.rc == 0
    parse_json_lines(run.err)
    text = rconfd("-d", cfg, env=ENV)
    assert text.err == (f"rconfd-py: info: c.json:t.jsonnet: running ready hook "
                        f"{tmp_path / 'hook.sh'}\n"
                        "rconfd-py: info: rendered 1 template(s), 0 file(s) changed\n")
    bad = rconfd("-d", cfg, env={**ENV, "RCONFD_LOG_FORMAT": "xml"})
    assert bad.rc == 2 and "--log-format 'xml': expected text or json" in bad.err


def test_json_logs_of_a_vault_daemon_hold_no_secret(tmp_path, vault_env):
    """A daemon against the dev OpenBao: a PKI certificate re-issued every few seconds (its
    private key: a multi-line secret) and a kv secret with a short value."""
    cfg, out = tmp_path / "cfg", tmp_path / "out"
    cfg.mkdir()
    (cfg / "t.jsonnet").write_text(
        "local s = std.extVar('secrets');\n"
        "{ 'key.pem': s.cert.private_key, 'kv.txt': s.kv.data.password + ' ' + s.kv.data.api_key,"
        " 'trace.txt': std.trace('kv ' + s.kv.data.password, 'x') }\n")
    (cfg / "c.json").write_text(json.dumps({"t.jsonnet": {"dir": str(out), "secrets": {
        "vault:test-role,POST,common_name=svc.example.com:pki/issue/example.com": "cert",
        "vault:test-role:kv/data/test/mysecret": "kv"}}}))
    d = DaemonProc("-d", cfg, "-u", vault_env["VAULT_ADDR"], "-l", "/auth/jwt/login",
                   "-t", vault_env["VAULT_JWT_PATH"], "-v", "--log-format", "json",
                   log=tmp_path / "log")
    try:
        d.wait_for(lambda: d.text().count("key.pem") >= 2 and d.text().count('"ttl"') >= 2,
                   60, "a re-issued certificate")
        keys = {(out / "key.pem").read_text()}
        d.wait_for(lambda: (out / "key.pem").read_text() not in keys or None, 30, "a new key")
        keys.add((out / "key.pem").read_text())
    finally:
        d.stop()
    text = d.text()
    records = parse_json_lines(text)
    assert any(r.get("role") == "test-role" and isinstance(r.get("ttl"), (int, float))
               for r in records)  # the login
    assert any(r.get("file") == str(out / "key.pem") for r in records)
    values = ["s3cr3t", "k-123"]
    for key in keys:
        values.append(key.strip())
        values += [ln for ln in key.splitlines() if len(ln) >= 4 and "-----" not in ln]
    for v in values:
        assert v not in text, v
    token = (out / "kv.txt").read_text()
    assert "s3cr3t" in token  # (the values searched for were really rendered)


# -- --dry-run -------------------------------------------------------------------------------
def snapshot(d: Path) -> dict:
    return {p.name: (p.lstat().st_mtime_ns, p.lstat().st_mode, p.lstat().st_ino)
            for p in sorted(d.iterdir())}


def test_dry_run_prints_a_masked_diff_and_touches_nothing(tmp_path):
    cfg, out = setup(tmp_path)
    out.mkdir()
    (out / "app.conf").write_text("user = bob\npassword = old-password-7\npin = 123\n"
                                  "port = 5432\n")
    (out / "app.conf").chmod(0o644)
    (out / "key.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\nOLDKEYLINEaaaaaaaaaa\nOLDKEYLINEbbbbbbbbbb\n"
        "-----END PRIVATE KEY-----\n")
    before = snapshot(out)
    rfd, wfd = os.pipe()
    try:
        run = rconfd("-d", cfg, "--dry-run", "-r", str(wfd), env=ENV, pass_fds=(wfd,))
        os.close(wfd)
        wfd = -1
        assert os.read(rfd, 10) == b""  # readiness never signalled
    finally:
        os.close(rfd)
        if wfd >= 0:
            os.close(wfd)
    assert run.rc == 0, run.err
    assert snapshot(out) == before  # no write, no temp file, no chmod
    assert not (tmp_path / "hook-ran").exists()  # neither modified nor ready hook
    o = run.out
    assert f"=== {out / 'app.conf'} mode 0600 owner (unchanged) (template c.json:t.jsonnet)" in o
    assert f"--- {out / 'app.conf'}\n+++ {out / 'app.conf'}\n" in o
    # the old values (never fetched by this run) are masked too
    assert ("@@ -1,4 +1,4 @@\n user = bob\n-password = <redacted>\n-pin = <redacted>\n"
            "+password = <redacted>\n+pin = <redacted>\n port = 5432\n") in o
    assert " port = 5432\n" in o
    assert "old-password-7" not in o and "OLDKEYLINE" not in o and "123" not in o
    assert_no_secret(o + run.err)
    assert "dry run" in run.err


def test_dry_run_new_files_links_and_exit_codes(tmp_path):
    cfg, out = setup(tmp_path)
    out.mkdir()
    target = tmp_path / "precious"
    target.write_text("not to be read: SENTINEL-CONTENT\n")
    (out / "key.pem").symlink_to(target)
    run = rconfd("-d", cfg, "--dry-run", env=ENV)
    assert run.rc == 0, run.err
    assert "SENTINEL" not in run.out
    assert f"{out / 'key.pem'} mode 0600 owner (unchanged) (template c.json:t.jsonnet): " \
           f"a symbolic link, not read" in run.out
    assert f"{out / 'app.conf'} mode 0600 owner (unchanged) (template c.json:t.jsonnet): " \
           f"new file" in run.out
    assert f"--- /dev/null\n+++ {out / 'app.conf'}\n@@ -0,0 +1,4 @@\n+user = bob\n" in run.out
    assert (out / "key.pem").is_symlink() and not (out / "app.conf").exists()
    # a failing template: the exit code of a real run, nothing printed, nothing written
    (cfg / "t.jsonnet").write_text("error 'no'")
    real, dry = rconfd("-d", cfg, env=ENV), rconfd("-d", cfg, "--dry-run", env=ENV)
    assert real.rc == dry.rc == 3 and dry.out == ""
    only_pw = {"PW": PW}  # SHORT and PEM unset: an env secret error, 5
    missing = rconfd("-d", cfg, "--dry-run", env=only_pw)
    assert missing.rc == rconfd("-d", cfg, env=only_pw).rc == 5, missing.err
    # an output that is a directory: 6, like a real run
    (cfg / "t.jsonnet").write_text("{ 'sub': 'x' }")
    (out / "sub").mkdir()
    real, dry = rconfd("-d", cfg, env=ENV), rconfd("-d", cfg, "--dry-run", env=ENV)
    assert real.rc == dry.rc == 6, dry.err
    # not with -D
    both = rconfd("-d", cfg, "--dry-run", "-D", env=ENV)
    assert both.rc == 2 and "--dry-run cannot be used with -D" in both.err


# -- check -----------------------------------------------------------------------------------
def checker(tmp_path: Path, reject_if: str = "REJECT") -> Path:
    """A check that records its argv, env and the staged file, and rejects a file holding
    `reject_if` (printing the file's password line to stderr: a secret to mask)."""
    return hook_script(tmp_path, "check.sh", f"""log={tmp_path}/check.log
echo "argv $*" >> $log
echo "file $RCONFD_CHECK_FILE target $RCONFD_CHECK_TARGET" >> $log
ls -l "$1" >> $log
if grep -q '{reject_if}' "$1"; then
  grep password "$1" >&2; echo "syntax error near {reject_if}" >&2; exit 3
fi
cp "$1" "$1.copy-$(basename "$RCONFD_CHECK_TARGET")" 2>/dev/null; exit 0
""")


def test_a_check_that_accepts_lets_the_files_land_and_sees_a_private_copy(tmp_path):
    chk = checker(tmp_path)
    cfg, out = setup(tmp_path, check=[str(chk), "{file}", "--strict"])
    run = rconfd("-d", cfg, "-v", env=ENV)
    assert run.rc == 0, run.err
    assert (out / "app.conf").read_text().startswith("user = bob\npassword = " + PW)
    log = (tmp_path / "check.log").read_text()
    for name in ("app.conf", "key.pem"):
        m = re.search(rf"argv (/\S+/rconfd-check-[^/]+/\d+/{re.escape(name)}) --strict\n"
                      rf"file (\S+) target (\S+)\n(\S+) ", log)
        assert m, log
        assert m.group(2) == m.group(1) and m.group(3) == str(out / name)
        assert m.group(4) == "-r--------"  # read-only, root's, in a dir only root enters
        assert not Path(m.group(1)).exists()  # removed after the check
    assert not list(out.glob(".*rconfd-tmp"))  # renamed, none left
    assert "ready" in (tmp_path / "hook-ran").read_text()


def test_a_check_that_rejects_keeps_the_old_files_and_runs_no_hook(tmp_path):
    chk = checker(tmp_path)
    cfg, out = setup(tmp_path, check=f"{chk} {{file}}")
    assert rconfd("-d", cfg, env=ENV).rc == 0
    old = {p.name: p.read_bytes() for p in out.iterdir()}
    before = snapshot(out)
    (tmp_path / "hook-ran").unlink()
    # a second template, whose check passes: not renamed either (one batch in one-shot)
    (cfg / "u.jsonnet").write_text("{ 'other.txt': 'new' }")
    conf = json.loads((cfg / "c.json").read_text())
    conf["u.jsonnet"] = {"dir": str(out)}
    (cfg / "c.json").write_text(json.dumps(conf))
    (cfg / "t.jsonnet").write_text(TEMPLATE.replace("port = 5432", "port = REJECT"))
    run = rconfd("-d", cfg, env=ENV)
    assert run.rc == 6, run.err
    assert f"c.json:t.jsonnet: check {chk} rejected {out / 'app.conf'}: exited with status 3" \
        in run.err
    assert "syntax error near REJECT" in run.err  # its stderr, logged...
    assert "password = <redacted>" in run.err  # ...masked
    assert_no_secret(run.err)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old
    assert snapshot(out) == before  # no temp file left, nothing renamed
    assert not (tmp_path / "hook-ran").exists()


def test_a_check_cannot_change_what_lands(tmp_path):
    """It is given a copy: whatever it writes there (or tries to), the rendered content lands."""
    sneaky = hook_script(tmp_path, "sneaky.sh",
                         'chmod u+w "$RCONFD_CHECK_FILE"; echo "extra" >> "$RCONFD_CHECK_FILE"\n')
    cfg, out = setup(tmp_path, check=str(sneaky))
    run = rconfd("-d", cfg, env=ENV)
    assert run.rc == 0, run.err
    assert "extra" not in (out / "app.conf").read_text()


def test_a_hostile_user_cannot_point_the_check_at_a_root_file(tmp_path, hostile, shared_tmp):
    """The staged file lies in the user's directory; the check never opens it, so swapping it
    for a link to a root-only file shows the check nothing of that file."""
    svc = shared_tmp / "svc"
    svc.mkdir()
    hostile.own(svc)
    secret = shared_tmp / "root-only"
    secret.write_text("ROOT-ONLY-CONTENT\n")
    secret.chmod(0o600)
    chk = hook_script(tmp_path, "cat.sh", 'cat "$1" >&2; exit 1\n')
    cfg, _ = setup(tmp_path, check=f"{chk} {{file}}")
    conf = json.loads((cfg / "c.json").read_text())
    conf["t.jsonnet"]["dir"] = str(svc)
    (cfg / "c.json").write_text(json.dumps(conf))
    run = rconfd("-d", cfg, env=ENV)
    assert run.rc == 6 and "ROOT-ONLY-CONTENT" not in run.err, run.err
    assert "user = bob" in run.err  # what it printed is the rendered copy (masked secrets)


def test_check_config_validation(tmp_path):
    cfg, _ = setup(tmp_path, check="relative/cmd {file}")
    run = rconfd("-d", cfg, env=ENV)
    assert run.rc == 2 and "'t.jsonnet'.check: the command must be an absolute path" in run.err
    cfg, _ = setup(tmp_path, check=str(tmp_path / "nonexistent"))
    run = rconfd("check", "-d", cfg, env=ENV)
    assert run.rc == 2 and f"'t.jsonnet'.check: {tmp_path / 'nonexistent'} is not an " \
                           f"executable file" in run.err


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_daemon_a_rejected_check_keeps_the_files_until_a_good_change(tmp_path, fmt):
    chk = checker(tmp_path)
    cfg, out = tmp_path / "cfg", tmp_path / "out"
    cfg.mkdir()
    src = tmp_path / "value.txt"
    src.write_text("good-value-1")
    (cfg / "t.jsonnet").write_text(
        "local s = std.extVar('secrets'); { 'app.conf': 'password = ' + s.v + '\\n' }")
    hook = hook_script(tmp_path, "hook.sh", f"echo modified >> {tmp_path}/hook-ran\n")
    (cfg / "c.json").write_text(json.dumps({"t.jsonnet": {
        "dir": str(out), "secrets": {f"file:str:{src}": "v"}, "check": f"{chk} {{file}}",
        "hooks": {"modified": str(hook)}}}))
    d = DaemonProc("-d", cfg, "--poll", "0.5", "-v", "--log-format", fmt, log=tmp_path / "log")
    try:
        d.wait_for(lambda: (out / "app.conf").exists(), 20, "the first render")
        src.write_text("REJECT-value-2")
        d.wait_for(lambda: "rejected" in d.text(), 20, "the rejection")
        time.sleep(1.5)
        assert (out / "app.conf").read_text() == "password = good-value-1\n"
        assert not (tmp_path / "hook-ran").exists()
        assert not list(out.glob(".*rconfd-tmp"))
        src.write_text("good-value-3")
        d.wait_for(lambda: (out / "app.conf").read_text() == "password = good-value-3\n", 30,
                   "the good change")
        d.wait_for(lambda: (tmp_path / "hook-ran").exists(), 10, "the modified hook")
    finally:
        assert d.stop() == 0
    text = d.text()
    if fmt == "json":  # every line of a daemon's run parses; the failure names its template
        records = parse_json_lines(text)
        assert any(r["level"] == "error" and r.get("template") == "c.json:t.jsonnet"
                   and r.get("file") == str(out / "app.conf") for r in records)
    assert "REJECT-value-2" not in text and "good-value-1" not in text
    assert "good-value-3" not in text
    assert "password = <redacted>" in text  # the check's stderr, masked
    # a rejected check is retried slowly (2 s doubling), not at a write failure's pace
    assert text.count("check.sh rejected") == 1, text  # logged once per distinct error


def test_help_names_the_new_flags():
    run = rconfd("--help")
    assert "--log-format {text,json}" in run.out and "--dry-run" in run.out
    assert 'or a "check" rejected it' in run.out


def test_a_rejected_check_is_retried_like_a_template_error_not_a_write_failure():
    from rconfd_py.daemon import policy
    from rconfd_py.errors import CheckError, OutputError

    def rng(lo: float, hi: float) -> float:
        return lo

    assert not policy.transient(CheckError("c.json:t: check /x rejected /f"))
    assert policy.transient(OutputError("cannot write /f: No space left on device"))
    plans = [policy.render_failed(n, CheckError("x"), 1000.0, 1005.0, rng).at
             for n in (1, 2, 3, 10)]
    assert plans == [1002.0, 1004.0, 1008.0, 1060.0]  # 2 s doubling to 60 s, expiry ignored


def test_a_rejected_check_and_a_dry_run_reload_no_real_s6_service(tmp_path):
    """Under a real s6-supervise: a rejected check, and a dry run, send no reload; an accepted
    change does (so the service would have seen one)."""
    import signal
    import subprocess

    from helpers import default_signals, require_binaries

    bins = require_binaries("s6-supervise")
    svc = tmp_path / "svc"
    svc.mkdir()
    applog = tmp_path / "app.log"
    hook_script(svc, "run", f"trap 'echo hup >> {applog}' HUP\necho start >> {applog}\n"
                            "while :; do sleep 0.1; done\n")
    sup = subprocess.Popen([bins["s6-supervise"], str(svc)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True,
                           preexec_fn=default_signals)
    try:
        deadline = time.time() + 10
        while not (applog.exists() and (svc / "supervise" / "control").exists()):
            assert time.time() < deadline, "s6-supervise did not start the service"
            time.sleep(0.1)
        chk = checker(tmp_path)
        cfg, _ = setup(tmp_path, check=f"{chk} {{file}}", reload=[str(svc)])
        assert rconfd("-d", cfg, env=ENV).rc == 0  # first write: nothing existed, no reload
        (cfg / "t.jsonnet").write_text(TEMPLATE.replace("port = 5432", "port = REJECT"))
        assert rconfd("-d", cfg, env=ENV).rc == 6
        assert rconfd("-d", cfg, "--dry-run", env=ENV).rc == 0
        time.sleep(0.5)
        assert "hup" not in applog.read_text()
        (cfg / "t.jsonnet").write_text(TEMPLATE.replace("port = 5432", "port = 5433"))
        run = rconfd("-d", cfg, env=ENV)
        assert run.rc == 0 and "sent s6 command 'h'" in run.err, run.err
        deadline = time.time() + 10
        while "hup" not in applog.read_text():
            assert time.time() < deadline, "the accepted change sent no reload"
            time.sleep(0.1)
    finally:
        os.killpg(sup.pid, signal.SIGTERM)
        sup.wait(10)


def test_dry_run_never_reads_through_a_hostile_users_links(hostile, shared_tmp, tmp_path):
    """A service user's dir (the user owns it): a link it plants at an output name is named,
    not read; a link it plants as a directory is refused with exit 6, as a real run would."""
    svc = shared_tmp / "svc"
    svc.mkdir()
    hostile.own(svc)
    vault = shared_tmp / "vault"
    vault.mkdir(mode=0o700)
    (vault / "shadow").write_text("root:SHADOW-SENTINEL\n")
    (vault / "b.conf").write_text("VAULT-SENTINEL\n")
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "t.jsonnet").write_text("{ 'app.conf': 'x', 'sub/b.conf': 'b' }")
    (cfg / "r.json").write_text(json.dumps({"t.jsonnet": {
        "dir": str(svc), "user": hostile.name}}))
    assert rconfd("-d", cfg).rc == 0
    hostile.run("ln", "-sf", str(vault / "shadow"), str(svc / "app.conf"))
    run = rconfd("-d", cfg, "--dry-run")
    assert run.rc == 0, run.err
    assert f"{svc / 'app.conf'} mode 0640 owner {hostile.name} (template r.json:t.jsonnet): " \
           f"a symbolic link, not read" in run.out
    assert "SENTINEL" not in run.out
    hostile.run("mv", str(svc / "sub"), str(svc / "sub.old"))
    hostile.run("ln", "-s", str(vault), str(svc / "sub"))
    real, dry = rconfd("-d", cfg), rconfd("-d", cfg, "--dry-run")
    assert real.rc == dry.rc == 6, dry.err
    assert f"{svc}/sub is a symbolic link owned by uid {hostile.uid}" in dry.err
    assert "SENTINEL" not in dry.out + dry.err
    assert sorted(os.listdir(vault)) == ["b.conf", "shadow"]


def test_json_formatter_masks_fields_tracebacks_and_what_json_escaping_completes():
    import logging

    from rconfd_py import logs, redact

    fmt = logs.JsonFormatter()
    redact.redactor.add("test-json-quote", 'pa"ss\\word')
    redact.redactor.add("test-json-ml", "first-line-x\nsecond-line-y")
    try:
        raise ValueError("boom first-line-x\nsecond-line-y")
    except ValueError:
        import sys

        exc = sys.exc_info()
    rec = logging.LogRecord("rconfd_py", logging.ERROR, "", 0, "failed %s\u2028x", ('pa"ss\\word',),
                            exc)
    rec.template, rec.file, rec.ttl = "t pa\"ss\\word", "/f\nsecond-line-y", 30
    line = fmt.format(rec)
    assert "\n" not in line
    out = json.loads(line)
    assert out["message"] == "failed <redacted>\\u2028x"
    assert out["template"] == "t <redacted>" and out["file"] == "/f\\n<redacted>"
    assert out["ttl"] == 30 and out["level"] == "error"  # lower case, set up or not
    assert "boom <redacted>" in out["exc"] and "Traceback" in out["exc"]
    for s in ('pa"ss\\word', "first-line-x", "second-line-y"):
        assert s not in line and json.dumps(s)[1:-1] not in line and s not in str(out)


def test_run_check_timeout_missing_command_and_bounded_stderr(tmp_path, caplog):
    import logging

    from rconfd_py import notify
    from rconfd_py.errors import CheckError

    staged, target = str(tmp_path / ".a.conf.0123abcd.rconfd-tmp"), str(tmp_path / "a.conf")
    slow = hook_script(tmp_path, "slow.sh", "sleep 30\n")
    t0 = time.monotonic()
    with pytest.raises(CheckError, match=r"^t: check .*slow.sh rejected .*a.conf: timed out "
                                         r"after 0.5s; nothing renamed"):
        notify.run_check("t", [str(slow)], staged, target, timeout=0.5)
    assert time.monotonic() - t0 < 10
    with pytest.raises(CheckError, match="check /nonexistent/check cannot run: No such file"):
        notify.run_check("t", ["/nonexistent/check"], staged, target)
    loud = hook_script(tmp_path, "loud.sh", "yes xxxxxxx | head -c 20000000 >&2; exit 1\n")
    with caplog.at_level(logging.ERROR, logger="rconfd_py"), pytest.raises(CheckError):
        notify.run_check("t", [str(loud)], staged, target)
    shown = [r.getMessage() for r in caplog.records if "loud.sh on" in r.getMessage()]
    assert len(shown) == 1 and shown[0].endswith("...") and len(shown[0]) < 2300
    assert shown[0].count("xxxxxxx") > 200  # its stderr, cut
    ok = hook_script(tmp_path, "ok.sh", "exit 0\n")
    notify.run_check("t", [str(ok)], staged, target)  # no error


def test_dry_run_masks_a_secret_in_an_output_path(tmp_path):
    """An output key built from a secret: masked in the === line and in the diff's headers."""
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "t.jsonnet").write_text("{ [std.extVar('secrets').n + '.conf']: 'x' }")
    (cfg / "a.json").write_text(json.dumps({"t.jsonnet": {
        "dir": str(tmp_path / "out"), "secrets": {"env:str:FILE_NAME": "n"}}}))
    r = rconfd("-d", cfg, "--dry-run", env={"FILE_NAME": "s3cr3t-file-name"})
    assert r.rc == 0, r.err
    assert "+++ " in r.out and "<redacted>" in r.out, r.out
    assert "s3cr3t-file-name" not in r.out + r.err, r.out
