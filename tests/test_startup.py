"""The run path stays lean: what a one-shot run with Vault secrets imports. (Speed itself is
measured by the benchmarks, not asserted here.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# http.client (and the ssl and email modules it imports) is the Vault transport since issue 12:
# measured at +9 ms and +1 MB with ssl already loaded, as in production (README, "Dependencies")
HEAVY = ("dataclasses", "typing", "inspect", "httpx", "hvac", "pydantic", "tenacity",
         "concurrent.futures", "shutil", "secrets",
         "rconfd_py.image", "rconfd_py.dev", "_jsonnet", "subprocess")

PROBE = """
import sys
from rconfd_py.cli import main
rc = main(sys.argv[1:])
print("MODULES", " ".join(sorted(sys.modules)))
sys.exit(rc)
"""


def test_one_shot_with_vault_secrets_imports_nothing_heavy(tmp_path, vault_env):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "t.jsonnet").write_text("local s = std.extVar('secrets'); "
                                   "{ 'a.txt': s.kv.data.username, 'b.txt': s.c.certificate }")
    (cfg / "a.json").write_text(json.dumps({"t.jsonnet": {"dir": str(tmp_path / "out"), "secrets": {
        "vault:test-role:kv/data/test/mysecret": "kv",
        "vault:test-role,POST,common_name=a.example.com:pki/issue/example.com": "c"}}}))
    r = subprocess.run([sys.executable, "-c", PROBE, "-d", str(cfg), "-u",
                        vault_env["VAULT_ADDR"], "-l", "/auth/jwt/login",
                        "-t", vault_env["VAULT_JWT_PATH"]], capture_output=True, text=True,
                       cwd=Path(__file__).parent.parent,  # state saved as by default, not in /run
                       env={**os.environ, "RCONFD_STATE_DIR": str(tmp_path / "state")})
    assert r.returncode == 0, r.stderr
    modules = set(r.stdout.split("MODULES", 1)[1].split())
    assert "rjsonnet" in modules and "rconfd_py.vault.http" in modules  # it did the work
    loaded = sorted(m for m in modules if m in HEAVY or m.split(".")[0] in ("httpx", "hvac"))
    assert loaded == []
