"""Rendering odd template output: every failure is a one-line TemplateError naming the template
(and the output key when it can), with both engines; never an internal error."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli import rconfd
from helpers import require

from rconfd_py import errors
from rconfd_py.errors import TemplateError
from rconfd_py.render import render_files


def _has_official_engine() -> bool:
    try:
        import _jsonnet  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(params=["rjsonnet", "jsonnet"])
def engine(request) -> str:
    if request.param == "jsonnet":
        require("the official jsonnet binding (extra [jsonnet])", _has_official_engine())
    return request.param


def run(tmp_path: Path, code: str, engine: str, secrets: dict | None = None) -> dict[str, bytes]:
    t = tmp_path / "t.jsonnet"
    t.write_text(code)
    return render_files(t, secrets or {}, engine=engine)


def fails(tmp_path: Path, code: str, engine: str, secrets: dict | None = None) -> str:
    with pytest.raises(TemplateError) as e:
        run(tmp_path, code, engine, secrets)
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 't.jsonnet'}: ") and "\n" not in msg, msg
    return msg


@pytest.mark.parametrize("code,key", [
    ("{ 'v.txt': 1e400 }", "'v.txt'"),
    ("{ 'a.txt': 'inf', 'v.txt': -1e400 }", "'v.txt'"),
    ("{ 'a.txt': 1, 'v.txt': { inf: [1, std.pow(10, 400)] } }", "'v.txt'"),
    ("{ 'v.txt': std.exp(1000) }", "'v.txt'"),
    ("{ 'v.txt': std.log(0) }", "'v.txt'"),
    ("{ 'v.txt': std.acos(2) }", "'v.txt'"),  # NaN with rjsonnet
    ("{ 'v.txt': std.floor(1e400) }", "'v.txt'"),
])
def test_non_finite_numbers_are_template_errors(tmp_path, engine, code, key):
    msg = fails(tmp_path, code, engine)
    if engine == "rjsonnet":  # rjsonnet evaluates them; the key holding one is named
        assert f"{key}: not a finite number (" in msg and "JSON cannot hold it" in msg, msg
    else:  # the official engine refuses them itself, with a location
        assert ("overflow" in msg or "not a number" in msg) and "t.jsonnet:1:" in msg, msg


def test_finite_odd_numbers_still_render(tmp_path, engine):
    files = run(tmp_path, "{ 'v.txt': [1e300, -0, 1e-400, 12345678901234567890, 'inf', 'NaN'] }",
                engine)
    values = json.loads(files["v.txt"])
    assert float(values[0]) == 1e300 and values[1:3] == [0, 0] and values[4:] == ["inf", "NaN"]
    assert abs(values[3] - 12345678901234567890) < 1e5


def test_output_nested_too_deeply(tmp_path, engine):
    msg = fails(tmp_path, "{ 'v.txt': std.foldl(function(a, b) [a], std.range(1, 3000), []) }",
                engine)
    assert "nested too deeply" in msg or "max stack frames" in msg, msg


def test_nested_but_loadable_output_renders_or_fails_cleanly(tmp_path):
    """Depths around Python's recursion limit: written, or a TemplateError, never a crash."""
    for depth in (500, 900, 950, 990):
        code = f"{{ 'v.txt': std.foldl(function(a, b) [a], std.range(1, {depth}), []) }}"
        try:
            files = run(tmp_path, code, "rjsonnet")
        except TemplateError as e:
            assert "nested too deeply" in str(e)
        else:
            assert files["v.txt"].count(b"[") == depth + 1


def test_lone_surrogate_in_output(tmp_path, engine):
    msg = fails(tmp_path, "{ 'v.txt': 'a' + std.char(55296) }", engine)
    # rjsonnet refuses the code point itself; the official binding cannot decode its output.
    assert "invalid unicode codepoint" in msg or "lone surrogate" in msg, msg


@pytest.mark.parametrize("name", ["", "a\u0000b", "a\nb.txt", "tab\t", "del\u007f", "c1\u0085"])
def test_bad_output_file_names(tmp_path, engine, name):
    msg = fails(tmp_path, f"{{ [{json.dumps(name)}]: 'x' }}", engine)
    assert f"invalid output file name {name!r}" in msg


@pytest.mark.parametrize("value,why", [
    (float("inf"), "holds a NaN or infinite number"),
    ({"a": [float("nan")]}, "holds a NaN or infinite number"),
    ("x\udcff", "holds a lone surrogate"),  # a non-UTF-8 env var, surrogate-escaped
])
def test_secret_jsonnet_cannot_read_names_the_variable(tmp_path, engine, value, why):
    msg = fails(tmp_path, "{ 'v.txt': std.extVar('secrets').bad }", engine,
                {"good": "fine", "bad": value})
    assert f"secret 'bad' {why}" in msg and "fine" not in msg, msg


def test_template_that_is_a_directory(tmp_path, engine):
    """The official engine aborts the whole process on a directory: never hand it one. (Through
    the CLI, in a subprocess, so that a regression cannot abort the test run itself.)"""
    cfg = tmp_path / "cfg"
    (cfg / "t.jsonnet").mkdir(parents=True)
    (cfg / "a.json").write_text(json.dumps({"t.jsonnet": {"dir": str(tmp_path / "out")}}))
    r = rconfd("-d", cfg, "--engine", engine)
    assert r.rc == errors.EXIT_TEMPLATE, (r.rc, r.err)
    assert r.lines == [f"rconfd-py: error: {cfg / 't.jsonnet'}: no such template file"], r.err
    assert not (tmp_path / "out").exists()


def test_valid_output_unchanged(tmp_path, engine):
    files = run(tmp_path, "{ 'a.txt': 'x', 'b.json': { k: [1, 2.5, 'é'] }, 'c.txt': 'y\\n' }",
                engine)
    assert files == {"a.txt": b"x\n", "c.txt": b"y\n",
                     "b.json": json.dumps({"k": [1, 2.5, "é"]}, indent=2,
                                          ensure_ascii=False).encode() + b"\n"}


# -- through the real command line ---------------------------------------------------------

def test_cli_non_finite_number_exit_3_and_nothing_touched(tmp_path, engine):
    out = tmp_path / "out"
    out.mkdir()
    (out / "v.txt").write_text("previous\n")
    os.utime(out / "v.txt", (1_000_000_000, 1_000_000_000))
    before = (out / "v.txt").read_bytes(), (out / "v.txt").stat().st_mtime_ns
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "t.jsonnet").write_text("{ 'v.txt': 1e400 }")
    (cfg / "a.json").write_text(json.dumps({"t.jsonnet": {"dir": str(out)}}))
    r = rconfd("-d", cfg, "--engine", engine)
    assert r.rc == errors.EXIT_TEMPLATE, r.err
    lines = [ln for ln in r.lines if ": error: " in ln]
    assert len(lines) == 1, r.err
    assert str(cfg / "t.jsonnet") in lines[0]
    if engine == "rjsonnet":
        assert "'v.txt': not a finite number (Infinity)" in lines[0], lines[0]
    else:
        assert "overflow" in lines[0] and "t.jsonnet:1:" in lines[0], lines[0]
    assert "Traceback" not in r.err and "internal error" not in r.err
    assert ((out / "v.txt").read_bytes(), (out / "v.txt").stat().st_mtime_ns) == before
    assert sorted(p.name for p in out.iterdir()) == ["v.txt"]


@pytest.mark.parametrize("out,key,shown", [
    ('{"a.txt": "x\\" inf NaN", "b.txt": [1, -inf]}', "'b.txt'", "-Infinity"),
    ('{"inf": "inf", "NaN": {"k": NaN}}', "'NaN'", "NaN"),
    ('{"a": Infinity}', "'a'", "Infinity"),
])
def test_non_finite_key_found_without_touching_strings(out, key, shown):
    from rconfd_py.render import _load_output

    with pytest.raises(TemplateError) as e:
        _load_output(Path("/t.jsonnet"), out)
    assert str(e.value) == f"/t.jsonnet: {key}: not a finite number ({shown}): JSON cannot hold it"


def test_output_that_is_not_json():
    from rconfd_py.render import _load_output

    with pytest.raises(TemplateError, match=r"^/t.jsonnet: the engine's output is not JSON: "
                                            r"Expecting value: line 1 column 8"):
        _load_output(Path("/t.jsonnet"), '{"a": [infinity]}')
    assert _load_output(Path("/t.jsonnet"), '{"a": "inf"}') == {"a": "inf"}
