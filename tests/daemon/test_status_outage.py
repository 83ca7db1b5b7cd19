"""`rconfd-py status`, /metrics and /healthz against a real daemon holding a database lease
(10 s) from the real OpenBao, through an outage (SIGSTOP of OpenBao) long enough for the lease
to expire, and after it."""

from __future__ import annotations

import json
import os
import signal
import time

from cli import DaemonProc, rconfd
from test_status import get, metrics_port, prometheus, scrape

DB = "vault:test-role:database/creds/mydb"


def jwt(vault_env) -> list[str]:
    return ["-u", vault_env["VAULT_ADDR"], "-l", "/auth/jwt/login",
            "-t", vault_env["VAULT_JWT_PATH"]]


def status(path) -> tuple[int, str, dict]:
    text = rconfd("status", "--status-file", path)
    doc = rconfd("status", "--json", "--status-file", path)
    return text.rc, text.out, (json.loads(doc.out) if doc.out else {})


def db_line(out: str) -> str:
    return next(ln for ln in out.splitlines() if "database/creds/mydb" in ln)


def test_status_and_healthz_through_a_vault_outage(tmp_path, vault_env, pg, stack):
    """~40 s. During the outage: the database secret shows its error and that it expired,
    `status` exits 1, /healthz 503. After SIGCONT: 0 and 200 again. No secret value in the
    status file, `status --json` or the metrics."""
    prometheus()
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "t.jsonnet").write_text("local s = std.extVar('secrets'); "
                                   "{ 'db.json': { user: s.db.username, pw: s.db.password } }")
    (cfg / "a.json").write_text(json.dumps(
        {"t.jsonnet": {"dir": str(tmp_path / "out"), "secrets": {DB: "db"}}}))
    path = tmp_path / "status.json"
    d = DaemonProc("-d", cfg, *jwt(vault_env), "--metrics-addr", "127.0.0.1:0",
                   "--status-file", path, env={"RCONFD_TIMEOUT": "2"}, log=tmp_path / "log")
    seen = []  # every status text, JSON and metrics page, searched for the secrets at the end
    try:
        port = metrics_port(d)
        d.wait_for(lambda: status(path)[0] == 0, 20, "a healthy status")
        _, out, doc = status(path)
        seen += [out, json.dumps(doc)]
        creds = [json.loads((tmp_path / "out" / "db.json").read_text())]
        line = db_line(out)
        assert "kind=renewable" in line and "role=test-role" in line and "s left" in line
        assert "next: renew at" in line
        assert any(e["kind"] == "token" and e["role"] == "test-role" for e in doc["tokens"])
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        m = scrape(port)
        expiry = {(lab["path"], lab["kind"]): v
                  for lab, v in m["rconfd_expiry_timestamp_seconds"]}
        assert 0 < expiry[(DB, "renewable")] - time.time() <= 11
        assert ("token:test-role", "token") in expiry
        os.kill(stack.bao_pid, signal.SIGSTOP)
        try:
            def outage_seen():
                rc, out, doc = status(path)
                seen.extend([out, json.dumps(doc)])
                lines = out.splitlines()
                i = lines.index(db_line(out))
                # the secret's own failure: a request still in flight (a long timeout once
                # nothing alive is left to race) has not failed yet
                return (rc == 1 and "EXPIRED" in lines[i] and i + 1 < len(lines)
                        and "FAILING since" in lines[i + 1] and out)
            # up to 3 knocks, then a request waiting with patience (6 x the 2 s timeout; status
            # shows it as failing from its first unanswered probe)
            out = d.wait_for(outage_seen, 40, "the lease expired in `status`", step=1)
            lines = out.splitlines()
            i = lines.index(db_line(out))
            assert "FAILING since" in lines[i + 1]  # the failing secret and its error
            code, body = get(f"http://127.0.0.1:{port}/healthz")
            assert (code, body) == (503, "expired\n")
            m = scrape(port)
            assert m["rconfd_expired"][0][1] >= 1
            assert ({"path": DB, "role": "test-role", "kind": "renewable"}, 1.0) in \
                m["rconfd_failing"]
            assert any(lab["result"] == "failed" and v >= 1
                       for lab, v in m["rconfd_renewals_total"])
        finally:
            os.kill(stack.bao_pid, signal.SIGCONT)
        d.wait_for(lambda: status(path)[0] == 0, 30, "healthy again after SIGCONT", step=0.5)
        assert get(f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")
        m = scrape(port)
        seen.append(get(f"http://127.0.0.1:{port}/metrics")[1])
        assert m["rconfd_expired"] == [({}, 0.0)]
        assert any(lab["result"] == "ok" for lab, _ in m["rconfd_refetches_total"])
        assert sum(v for lab, v in m["rconfd_vault_request_duration_seconds_count"]) >= 2
        seen.append(path.read_text())
    finally:
        assert d.stop() == 0
    creds.append(json.loads((tmp_path / "out" / "db.json").read_text()))
    assert creds[0] != creds[1]  # a new credential after the outage
    for text in seen:
        for db in creds:
            assert db["user"] not in text and db["pw"] not in text
