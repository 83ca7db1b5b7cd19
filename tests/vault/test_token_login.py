"""Token login against the real OpenBao: VAULT_TOKEN or --vault-token-file used for every role
instead of a login; a dead token is a clear exit 4; the daemon renews the token, and picks up a
new one written into the file; the token is never logged, never revoked by us."""

from __future__ import annotations

import json
import time
from pathlib import Path

from cli import DaemonProc, rconfd
from helpers import audit_request_paths

from rconfd_py.dev.seed import POLICY_NAME
from rconfd_py.settings import Settings

KV = "vault:test-role:kv/data/test/mysecret"
KV_OTHER_ROLE = "vault:other-role:kv/data/test/mysecret"
PKI = "vault:test-role,POST,common_name=svc.example.com:pki/issue/example.com"
TEMPLATE = "local s = std.extVar('secrets'); { 'a.json': { user: s.kv.data.username } }"
LEASED = ("local s = std.extVar('secrets'); "
          "{ 'a.json': { user: s.kv.data.username }, 'cert.pem': s.cert.certificate }")


def setup(tmp_path: Path, secrets: dict[str, str] | None = None, leased: bool = False) -> Path:
    """A config rendering the kv secret (and with `leased`, a 10 s PKI certificate: the daemon
    keeps running)."""
    cfg = tmp_path / "cfg"
    cfg.mkdir(exist_ok=True)
    (cfg / "t.jsonnet").write_text(LEASED if leased else TEMPLATE)
    if leased:
        secrets = {KV: "kv", PKI: "cert"}
    (cfg / "a.json").write_text(json.dumps({"t.jsonnet": {
        "dir": str(tmp_path / "out"), "secrets": secrets or {KV: "kv"}}}))
    return cfg


def new_token(stack, ttl: str = "10m", **kw) -> dict:
    """A child token of the root token with the rconfd policy: its auth block."""
    answer = stack.client().auth.token.create(policies=[POLICY_NAME], ttl=ttl, **kw)
    return answer["auth"]


def lookup(stack, token: str) -> dict:
    """The token's data, or {} when it is gone."""
    import hvac

    try:
        return stack.client().auth.token.lookup(token)["data"]
    except hvac.exceptions.Forbidden:
        return {}


def test_vault_token_is_used_for_every_role_instead_of_a_login(tmp_path, stack):
    tok = new_token(stack)
    cfg = setup(tmp_path, {KV: "kv", KV_OTHER_ROLE: "kv2"})
    before = len(audit_request_paths(stack.audit_log))
    r = rconfd("-d", cfg, "-u", stack.addr, "-v", env={"VAULT_TOKEN": tok["client_token"]})
    assert r.rc == 0, r.err
    assert json.loads((tmp_path / "out" / "a.json").read_text()) == {"user": "alice"}
    paths = audit_request_paths(stack.audit_log)[before:]
    assert not any("login" in p for p in paths), paths
    assert "auth/token/lookup-self" in paths
    assert tok["client_token"] not in r.err and tok["accessor"] in r.err  # shown: accessor only
    assert "using the vault token of VAULT_TOKEN" in r.err


def test_token_file_wins_over_vault_token(tmp_path, stack):
    tok = new_token(stack)
    path = tmp_path / "token"
    path.write_text(tok["client_token"] + "\n")  # as an agent sink writes it
    cfg = setup(tmp_path)
    for how in (("--vault-token-file", path), ()):
        env = {"VAULT_TOKEN": "s.not-a-valid-token"}
        if not how:
            env["RCONFD_VAULT_TOKEN_FILE"] = str(path)
        r = rconfd("-d", cfg, "-u", stack.addr, *how, env=env)
        assert r.rc == 0, r.err
        assert f"using the vault token of --vault-token-file {path}" in r.err
    assert json.loads((tmp_path / "out" / "a.json").read_text()) == {"user": "alice"}


def test_a_revoked_token_is_a_clear_exit_4_and_nothing_is_written(tmp_path, stack):
    tok = new_token(stack)
    stack.client().auth.token.revoke(tok["client_token"])
    cfg = setup(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.json").write_text("old")
    r = rconfd("-d", cfg, "-u", stack.addr, env={"VAULT_TOKEN": tok["client_token"]})
    assert r.rc == 4, r.err
    assert "vault token (VAULT_TOKEN) is invalid or expired: permission denied" in r.err
    assert tok["client_token"] not in r.err and "Traceback" not in r.err
    assert (out / "a.json").read_text() == "old"
    path = tmp_path / "token"
    path.write_text(tok["client_token"])
    r = rconfd("-d", cfg, "-u", stack.addr, "--vault-token-file", path)
    assert r.rc == 4 and f"vault token (--vault-token-file {path}) is invalid" in r.err, r.err
    assert tok["client_token"] not in r.err
    for text, needle in (("", "is empty"), ("a b\n", "does not hold a token")):
        path.write_text(text)
        r = rconfd("-d", cfg, "-u", stack.addr, "--vault-token-file", path)
        assert r.rc == 2 and needle in r.err and len(r.lines) == 1, r.err
    r = rconfd("-d", cfg, "-u", stack.addr, "--vault-token-file", tmp_path / "nope")
    assert r.rc == 2 and f"cannot read the vault token file {tmp_path / 'nope'}" in r.err
    assert (out / "a.json").read_text() == "old"


def test_settings_vault_token_and_the_file():
    s = Settings.build({}, {"VAULT_TOKEN": " tok-1 \n"})
    assert s.vault_token == "tok-1" and "tok-1" not in repr(s)
    s = Settings.build({"vault_token_file": "/t"}, {"VAULT_TOKEN": "tok-1"})
    assert s.vault_token is None and s.vault_token_file == "/t"
    assert Settings.build({}, {"RCONFD_VAULT_TOKEN_FILE": "/f"}).vault_token_file == "/f"


def test_the_daemon_renews_a_short_token_and_never_revokes_it(tmp_path, stack):
    """A renewable 8 s token (max 60 s) stays alive past its first TTL: renew-self works;
    --revoke-on-exit leaves it alone (it is not ours)."""
    tok = new_token(stack, ttl="8s", explicit_max_ttl="60s")
    cfg = setup(tmp_path, leased=True)
    d = DaemonProc("-d", cfg, "-u", stack.addr, "--revoke-on-exit", "--status-file", "none",
                   env={"VAULT_TOKEN": tok["client_token"]}, log=tmp_path / "log")
    try:
        d.wait_for(lambda: (tmp_path / "out" / "a.json").exists(), 20, "the first render")
        time.sleep(12)  # past the token's first 8 s
        data = lookup(stack, tok["client_token"])  # still alive: it was renewed
        assert data.get("ttl", 0) > 0 and data["last_renewal_time"], d.text()
        assert d.stop() == 0
    finally:
        d.stop()
    assert lookup(stack, tok["client_token"]).get("ttl", 0) > 0, d.text()  # not revoked
    text = d.text()
    assert tok["client_token"] not in text
    assert "left alone" in text, text


def test_the_daemon_picks_up_a_new_token_written_into_the_file(tmp_path, stack):
    """The first token reaches its max TTL (12 s); the test writes a second one into the file:
    the daemon switches to it and keeps rendering; the old one is not revoked by us."""
    first = new_token(stack, ttl="6s", explicit_max_ttl="12s")
    second = new_token(stack, ttl="10m")
    path = tmp_path / "token"
    path.write_text(first["client_token"])
    cfg = setup(tmp_path, leased=True)
    d = DaemonProc("-d", cfg, "-u", stack.addr, "--vault-token-file", path,
                   "--status-file", "none", "-v", env={}, log=tmp_path / "log")
    try:
        d.wait_for(lambda: (tmp_path / "out" / "a.json").exists(), 20, "the first render")
        time.sleep(2)
        tmp = tmp_path / "token.new"
        tmp.write_text(second["client_token"] + "\n")
        tmp.rename(path)  # as an agent sink writes: atomically
        d.wait_for(lambda: "using the vault token of --vault-token-file" in d.text()
                   and d.text().count("using the vault token") >= 2, 30, "the new token")
        time.sleep(14)  # the first token is dead by now
        assert (tmp_path / "out" / "a.json").exists()
        assert d.proc.poll() is None, d.text()
        # the daemon runs on the second token: its reads are audited under its accessor
        assert lookup(stack, second["client_token"]).get("ttl", 0) > 0
        assert "invalid or expired" not in d.text(), d.text()
    finally:
        d.stop()
    text = d.text()
    assert first["client_token"] not in text and second["client_token"] not in text
    assert second["accessor"] in text


def test_the_same_dead_token_in_the_file_is_an_error_naming_it(tmp_path, stack):
    """The token in the file dies (max TTL 8 s) and nobody writes a new one: the daemon says
    the file still holds the dead token, and keeps the rendered file."""
    tok = new_token(stack, ttl="4s", explicit_max_ttl="8s")
    path = tmp_path / "token"
    path.write_text(tok["client_token"])
    cfg = setup(tmp_path, leased=True)
    d = DaemonProc("-d", cfg, "-u", stack.addr, "--vault-token-file", path,
                   "--status-file", "none", env={}, log=tmp_path / "log")
    try:
        d.wait_for(lambda: (tmp_path / "out" / "a.json").exists(), 20, "the first render")
        d.wait_for(lambda: "still holds the token that was refused" in d.text(), 30,
                   "the dead-token error")
        assert json.loads((tmp_path / "out" / "a.json").read_text()) == {"user": "alice"}
    finally:
        d.stop()
    assert tok["client_token"] not in d.text()


def test_the_token_is_registered_with_the_redactor(tmp_path, stack):
    """Whatever line would quote it (an error echoing a request, a traceback), the token is
    masked: VAULT_TOKEN from the start, a file's token as soon as it is read."""
    import logging

    from helpers import captured_log, fresh_redactor

    from rconfd_py.pipeline import Pipeline

    env_tok, file_tok = new_token(stack), new_token(stack)
    path = tmp_path / "token"
    path.write_text(file_tok["client_token"])
    cfg = setup(tmp_path)
    log = logging.getLogger("rconfd_py")
    for flags, env, tok in (({}, {"VAULT_TOKEN": env_tok["client_token"]}, env_tok),
                            ({"vault_token_file": str(path)}, {}, file_tok)):
        with fresh_redactor(), captured_log() as out:
            settings = Settings.build({"dir": str(cfg), "url": stack.addr, "state_dir": "none",
                                       **flags}, env)
            pipeline = Pipeline(settings)
            try:
                assert pipeline.tokens.get("r").client_token == tok["client_token"]
                log.error("echoed: %s", tok["client_token"])
            finally:
                pipeline.close()
        assert tok["client_token"] not in out.getvalue() and "echoed: " in out.getvalue()


def test_with_a_state_dir_a_new_token_in_the_file_wins_over_the_saved_one(tmp_path, stack):
    """The state (--state-dir) saved the first token; the file now holds a second one: the
    restart uses the second (the first still lives: a saved token is no reason to keep it), and
    the certificate fetched under the first is fetched again under the second."""
    first, second = new_token(stack), new_token(stack)
    path, state = tmp_path / "token", tmp_path / "state"
    path.write_text(first["client_token"])
    cfg = setup(tmp_path, leased=True)
    r = rconfd("-d", cfg, "-u", stack.addr, "--vault-token-file", path, "-v",
               env={"RCONFD_STATE_DIR": str(state)})
    assert r.rc == 0 and first["accessor"] in r.err, r.err
    cert = (tmp_path / "out" / "cert.pem").read_text()
    path.write_text(second["client_token"])
    r = rconfd("-d", cfg, "-u", stack.addr, "--vault-token-file", path, "-v",
               env={"RCONFD_STATE_DIR": str(state)})
    assert r.rc == 0, r.err
    assert f"using the vault token of --vault-token-file {path}" in r.err
    assert second["accessor"] in r.err and first["accessor"] not in r.err, r.err
    assert (tmp_path / "out" / "cert.pem").read_text() != cert
    assert lookup(stack, first["client_token"]).get("ttl", 0) > 0  # not revoked by us


def test_a_token_supplied_once_is_never_reused_by_a_login_run_nor_revoked(tmp_path, stack,
                                                                          vault_env):
    """The state saved a VAULT_TOKEN (an operator's or CI token); the next run logs in itself
    with the same state dir and --revoke-on-exit: it logs in, and the supplied token lives."""
    tok = new_token(stack)
    state = tmp_path / "state"
    cfg = setup(tmp_path, leased=True)
    r = rconfd("-d", cfg, "-u", stack.addr, "-v", env={"VAULT_TOKEN": tok["client_token"],
                                                       "RCONFD_STATE_DIR": str(state)})
    assert r.rc == 0, r.err
    before = audit_request_paths(stack.audit_log).count("auth/jwt/login")
    r = rconfd("-d", cfg, "-u", stack.addr, "-l", "/auth/jwt/login", "-t",
               vault_env["VAULT_JWT_PATH"], "--revoke-on-exit", "-v",
               env={"RCONFD_STATE_DIR": str(state)})
    assert r.rc == 0, r.err
    assert audit_request_paths(stack.audit_log).count("auth/jwt/login") == before + 1
    assert tok["accessor"] not in r.err, r.err
    assert lookup(stack, tok["client_token"]).get("ttl", 0) > 0  # not revoked by us


def test_a_lookup_that_timed_out_stays_a_timeout():
    """The daemon waits out a timeout before trying again (policy.timed_out): the supplied
    token's lookup keeps that mark when its error is told again."""
    from rconfd_py.errors import VaultError
    from rconfd_py.vault.token_file import SuppliedToken

    class Frozen:
        def request(self, *a, **k):
            raise VaultError("GET /v1/auth/token/lookup-self: Vault did not answer in time",
                             timed_out=True)
    try:
        SuppliedToken("hvs.some-token-value").use(Frozen(), "hvs.some-token-value", "app",
                                                  1000.0, None)
    except VaultError as e:
        assert e.timed_out and e.transient and str(e).startswith("vault token (VAULT_TOKEN): ")
    else:
        raise AssertionError("no error")
