"""`rconfd-py check`: offline validation (no Vault is contacted)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cli import rconfd

from rconfd_py import errors

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_examples_and_rconfd_example_pass(tmp_path):
    env = {"RCONFD_OUT": str(tmp_path), "VAULT_ROLE": "r", "NAMESPACE": "ns", "INSTANCE": "i"}
    r = rconfd("check", "-d", ROOT / "templates" / "examples", "-j", ROOT / "templates" / "lib",
               env=env)
    assert r.rc == 0, r.err
    assert "3 template(s)" in r.err
    cfg = tmp_path / "readme"
    shutil.copytree(ROOT / "tests" / "data" / "rconfd_readme", cfg)
    (cfg / "test.json").write_text((cfg / "test.json").read_text().replace("test-user", "nobody"))
    r = rconfd("check", "-d", cfg, env=env, cwd=ROOT / "tests" / "data" / "rconfd_readme_cwd")
    assert r.rc == 0, r.err


def test_check_needs_no_vault(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "t.jsonnet").write_text("{ a: std.extVar('secrets').x }")
    (cfg / "a.json").write_text(json.dumps({"t.jsonnet": {
        "secrets": {"vault:role:kv/data/x": "x"}}}))
    r = rconfd("check", "-d", cfg, env={"VAULT_ADDR": "http://127.0.0.1:9"})
    assert r.rc == 0, r.err


def test_check_reports_every_problem(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "bad.jsonnet").write_text("{ a: }")
    (cfg / "a.json").write_text(json.dumps({
        "bad.jsonnet": {"hooks": {"ready": "/nonexistent/hook"}},
        "missing.jsonnet": {"secrets": {"exe:str:/nonexistent/exe": "x",
                                        "file:str:nope.txt": "y"}},
    }))
    r = rconfd("check", "-d", cfg)
    assert r.rc == errors.EXIT_TEMPLATE  # the first problem found
    text = r.err
    for needle in ("bad.jsonnet:1", "/nonexistent/hook is not an executable",
                   "missing.jsonnet does not exist", "/nonexistent/exe is not an executable",
                   "nope.txt does not exist"):
        assert needle in text, text


def test_check_names_a_file_secret_that_is_not_a_regular_file(tmp_path):
    """A directory or a device is not "missing": check says what the real run would refuse."""
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "t.jsonnet").write_text("{}")
    (cfg / "a.json").write_text(json.dumps({"t.jsonnet": {"secrets": {
        f"file:str:{tmp_path}": "d", "file:str:/dev/null": "n"}}}))
    r = rconfd("check", "-d", cfg)
    assert r.rc != 0
    assert f"{tmp_path} is not a regular file" in r.err, r.err
    assert "/dev/null is not a regular file" in r.err, r.err
    assert "does not exist" not in r.err, r.err


def test_check_config_error_names_key(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "a.json").write_text(json.dumps({"t.jsonnet": {"secrets": {"env:str:${UNSET_X}": "x"}}}))
    r = rconfd("check", "-d", cfg)
    assert r.rc == errors.EXIT_CONFIG and "undefined variable ${UNSET_X}" in r.err


def test_check_cannot_evaluate_values_the_run_refuses_them(tmp_path):
    """check parses templates but cannot evaluate them (no secrets): a value JSON cannot hold is
    found by the run, as a template error (exit 3), not by check."""
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "t.jsonnet").write_text("{ 'v.txt': 1e400 }")
    (cfg / "a.json").write_text(json.dumps({"t.jsonnet": {"dir": str(tmp_path / "out")}}))
    assert rconfd("check", "-d", cfg).rc == 0
    r = rconfd("-d", cfg)
    assert r.rc == errors.EXIT_TEMPLATE and "'v.txt': not a finite number" in r.err, r.err
    assert not (tmp_path / "out").exists()


def test_check_reports_malformed_substitution_instead_of_ok(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "t.jsonnet").write_text("{}")
    (cfg / "a.json").write_text(json.dumps({"t.jsonnet": {"dir": str(tmp_path / "${")}}))
    r = rconfd("check", "-d", cfg)
    assert r.rc == errors.EXIT_CONFIG, r.err
    assert r.lines == [f"rconfd-py: error: {cfg / 'a.json'}: 't.jsonnet'.dir: malformed ${{...}}: "
                       f"unterminated '${{' at offset {len(str(tmp_path)) + 1} "
                       f"(expected ${{NAME}})"], r.err
