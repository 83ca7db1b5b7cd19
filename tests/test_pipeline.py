"""pipeline.py: one pass, through the real command line (local secrets: no Vault needed)."""

from __future__ import annotations

import json

import pytest
from cli import rconfd


def config(tmp_path, templates: dict[str, str], dirs: dict[str, str] | None = None):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    body = {}
    for name, text in templates.items():
        (cfg / name).write_text(text)
        body[name] = {"dir": str((dirs or {}).get(name, out))}
    (cfg / "r.json").write_text(json.dumps(body))
    return cfg, out


@pytest.mark.parametrize("second", ["./a.txt", "x/../a.txt", "ABS"])
def test_two_keys_naming_the_same_file_are_a_template_error(tmp_path, second):
    second = str(tmp_path / "out" / "a.txt") if second == "ABS" else second
    cfg, out = config(tmp_path, {"t.jsonnet": json.dumps({"a.txt": "one", second: "two"})})
    (out / "a.txt").write_text("old\n")
    run = rconfd("-d", cfg)
    assert run.rc == 3 and len(run.lines) == 1, run.err
    keys = sorted(["a.txt", second])  # jsonnet orders the keys
    assert f"output keys {keys[0]!r} and {keys[1]!r} both name {out}/a.txt" in run.err
    assert (out / "a.txt").read_text() == "old\n"


def test_two_templates_writing_the_same_file_are_an_error(tmp_path):
    cfg, out = config(tmp_path, {"a.jsonnet": "{ 'x.txt': 'a', 'a.txt': 'a' }",
                                 "b.jsonnet": "{ 'x.txt': 'b' }"})
    run = rconfd("-d", cfg)
    assert run.rc == 3 and len(run.lines) == 1, run.err
    assert f"r.json:a.jsonnet and r.json:b.jsonnet both write {out}/x.txt" in run.err
    assert sorted(p.name for p in out.iterdir()) == []


def test_a_template_that_cannot_be_written_leaves_the_others_untouched(tmp_path):
    """All or nothing across templates: B's dir is blocked by a file, so A is not renamed."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where B wants a directory")
    cfg, out = config(tmp_path, {"a.jsonnet": "{ 'a.txt': 'new' }",
                                 "b.jsonnet": "{ 'b.txt': 'new' }"},
                      dirs={"b.jsonnet": str(blocker / "sub")})
    (out / "a.txt").write_text("old\n")
    run = rconfd("-d", cfg)
    assert run.rc == 6 and len(run.lines) == 1, run.err
    assert f"cannot write {blocker}/sub/b.txt: {blocker} is not a directory" in run.err
    assert (out / "a.txt").read_text() == "old\n"
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]
