import json
import os
import re

import pytest
from cli import rconfd

from rconfd_py import errors
from rconfd_py.config import DEFAULT_MODE, load_config
from rconfd_py.errors import ConfigError


def write(d, name, obj):
    (d / name).write_text(json.dumps(obj))


def test_files_read_in_order_with_defaults(tmp_path):
    write(tmp_path, "b.json", {"two.jsonnet": {}})
    write(tmp_path, "a.json", {"/abs/one.jsonnet": {"dir": "/out/${HOME_X}", "mode": "0600"}})
    (tmp_path / "ignored.txt").write_text("{}")
    cfg = load_config(tmp_path, env={"HOME_X": "x"})
    one, two = cfg.templates
    assert str(one.template) == "/abs/one.jsonnet" and str(one.dir) == "/out/x"
    assert one.mode == 0o600
    assert two.template == tmp_path / "two.jsonnet" and two.dir == tmp_path
    assert two.mode == DEFAULT_MODE and two.user is None and two.secrets == ()


def test_secret_keys_substituted_and_shared(tmp_path):
    write(tmp_path, "a.json", {
        "a.jsonnet": {"secrets": {"vault:${NS}-role:kv/data/x": "x", "file:js:f.json": "f"}},
        "b.jsonnet": {"secrets": {"vault:prod-role:kv/data/x": "same"}},
    })
    cfg = load_config(tmp_path, env={"NS": "prod"})
    refs = cfg.by_ref
    assert len(refs) == 2  # the kv secret is shared by both templates
    vault = next(r for r in refs if r.backend == "vault")
    assert vault.role == "prod-role" and [t.name for t in refs[vault]] == ["a.jsonnet", "b.jsonnet"]
    file_ref = next(r for r in refs if r.backend == "file")
    assert file_ref.path == "f.json"  # relative to the working directory, as in rconfd


def test_hooks_split_like_a_shell_and_reload(tmp_path):
    write(tmp_path, "a.json", {"t": {"hooks": {"modified": "/bin/echo 'two words'",
                                               "ready": ["/bin/true"]},
                                     "reload": ["/run/service/app"], "reload_signal": "USR1"}})
    t = load_config(tmp_path, env={}).templates[0]
    assert t.hooks == {"modified": ("/bin/echo", "two words"), "ready": ("/bin/true",)}
    assert t.reload == ("/run/service/app",) and t.reload_signal == "usr1"


@pytest.mark.parametrize("body,where,why", [
    ({"t": {"colour": 1}}, "'t'.colour", "unknown key"),
    ({"t": {"dir": "${NOPE_UNSET}"}}, "'t'.dir", "undefined variable ${NOPE_UNSET}"),
    ({"t": {"mode": "0999"}}, "'t'.mode", "bad mode"),
    ({"t": {"mode": "rw-r--r--"}}, "'t'.mode", "bad mode"),
    ({"t": {"hooks": {"modified": "echo hi"}}}, "'t'.hooks.modified", "absolute"),
    ({"t": {"hooks": {"started": "/bin/true"}}}, "'t'.hooks.started", "unknown hook"),
    ({"t": {"secrets": {"env:str:A": "v", "env:str:B": "v"}}}, "secrets", "used twice"),
    ({"t": {"secrets": {"vault::x": "v"}}}, "secrets['vault::x']", "missing role"),
    ({"t": {"secrets": {"env:str:${NOPE_UNSET}": "v"}}}, "secrets", "undefined variable"),
    ({"t": {"user": "no-such-user-xyz"}}, "'t'.user", "no such user"),
    ({"t": {"reload": ["run/service/x"]}}, "'t'.reload", "absolute"),
    ({"t": {"reload_signal": "kill"}}, "'t'.reload_signal", "unknown signal"),
    ({"t": "not an object"}, "'t'", "expected an object"),
    ([1, 2], "a.json", "expected a JSON object"),
])
def test_errors_name_file_and_key(tmp_path, body, where, why):
    write(tmp_path, "a.json", body)
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path, env={})
    msg = str(e.value)
    assert str(tmp_path / "a.json") in msg and where in msg and why in msg
    assert "\n" not in msg


def test_invalid_json_and_missing_dir(tmp_path):
    (tmp_path / "a.json").write_text("{oops")
    with pytest.raises(ConfigError, match="a.json: invalid JSON"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope")


def test_same_template_in_two_files_is_an_error(tmp_path):
    write(tmp_path, "a.json", {"t.jsonnet": {}})
    write(tmp_path, "b.json", {"t.jsonnet": {}})
    with pytest.raises(ConfigError, match="already declared in .*a.json"):
        load_config(tmp_path)


def test_environment_defaults_to_process_env(tmp_path, monkeypatch):
    monkeypatch.setenv("RCONFD_TEST_DIR", "/srv")
    write(tmp_path, "a.json", {"t": {"dir": "${RCONFD_TEST_DIR}/x"}})
    assert str(load_config(tmp_path).templates[0].dir) == "/srv/x"
    assert os.environ["RCONFD_TEST_DIR"] == "/srv"


def test_nul_bytes_and_deep_nesting_are_config_errors(tmp_path):
    (tmp_path / "a.json").write_text('{"t": {"user": "a\\u0000b"}}')
    with pytest.raises(ConfigError, match="a.json: a string contains a NUL byte"):
        load_config(tmp_path)
    (tmp_path / "a.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(tmp_path)


# -- modes: one strict grammar, at most 0777 ------------------------------------------------

@pytest.mark.parametrize("text,mode", [
    ("0640", 0o640), ("640", 0o640), ("0600", 0o600), ("600", 0o600), ("0777", 0o777),
    ("0", 0), ("0000", 0), ("7", 0o7), ("44", 0o44), ("0444", 0o444),
])
def test_modes_accepted(tmp_path, text, mode):
    write(tmp_path, "a.json", {"t": {"mode": text}})
    assert load_config(tmp_path, env={}).templates[0].mode == mode


@pytest.mark.parametrize("text,why", [
    ("7777", "setuid, setgid and sticky bits are not allowed"),
    ("4755", "setuid, setgid and sticky bits are not allowed"),
    ("2750", "setuid, setgid and sticky bits are not allowed"),
    ("1777", "setuid, setgid and sticky bits are not allowed"),
    ("0o640", "expected 1 to 4 octal digits"),
    ("0O640", "expected 1 to 4 octal digits"),
    (" 0640", "expected 1 to 4 octal digits"),
    ("0640 ", "expected 1 to 4 octal digits"),
    ("0640\n", "expected 1 to 4 octal digits"),
    ("+640", "expected 1 to 4 octal digits"),
    ("-640", "expected 1 to 4 octal digits"),
    ("0_640", "expected 1 to 4 octal digits"),
    ("00640", "expected 1 to 4 octal digits"),
    ("", "expected 1 to 4 octal digits"),
    ("0x1a4", "expected 1 to 4 octal digits"),
    ("0999", "expected 1 to 4 octal digits"),
    ("\u0666\u0664\u0660", "expected 1 to 4 octal digits"),  # Arabic-Indic digits: int() takes them
])
def test_modes_refused(tmp_path, text, why):
    write(tmp_path, "a.json", {"t": {"mode": text}})
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path, env={})
    msg = str(e.value)
    assert f"a.json: 't'.mode: bad mode {text!r}" in msg and why in msg and "\n" not in msg, msg


# -- ${...}: malformed is an error naming the file and key ----------------------------------

@pytest.mark.parametrize("key,value,where", [
    ("dir", "/out/${", "'t'.dir"),
    ("dir", "/out/${}", "'t'.dir"),
    ("dir", "/out/${A${B}}", "'t'.dir"),
    ("dir", "/out/${UNDEF:-x}", "'t'.dir"),
    ("dir", "/out/${1A}", "'t'.dir"),
    ("reload", ["/run/service/${A"], "'t'.reload"),
    ("secrets", {"env:str:${A${B}}": "v"}, "'t'.secrets['env:str:${A${B}}']"),
    ("secrets", {"vault:${}-role:kv/x": "v"}, "'t'.secrets['vault:${}-role:kv/x']"),
])
def test_malformed_substitution_is_an_error(tmp_path, key, value, where):
    write(tmp_path, "a.json", {"t": {key: value}})
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path, env={"A": "a", "B": "b"})
    msg = str(e.value)
    assert f"a.json: {where}: malformed ${{...}}: " in msg and "\n" not in msg, msg


def test_dollar_without_brace_stays_literal_and_values_are_not_rescanned(tmp_path):
    write(tmp_path, "a.json", {"t": {"dir": "/out/$A/${V}", "secrets": {"env:str:$HOME": "h"}}})
    t = load_config(tmp_path, env={"V": "${A}"}).templates[0]
    assert str(t.dir) == "/out/$A/${A}" and t.refs[0].path == "$HOME"


# -- hostile JSON: always a one-line ConfigError ---------------------------------------------

@pytest.mark.parametrize("text,why", [
    ('{"t": {"dir": ' + "1" * 5000 + "}}", "invalid JSON: a number with 5000 digits"),
    ('{"t": {"dir": 1e400}}', "'t'.dir: expected a string"),
    ('{"t": {"dir": NaN}}', "'t'.dir: expected a string"),
    ('{"t": {"mode": 420}}', "'t'.mode: expected a string"),
    ('{"t": ' + "[" * 50000 + "]" * 50000 + "}", "nested too deeply"),
    ('{"t": {"user": {"a": ' + "[" * 900 + "]" * 900 + "}}}", "'t'.user: expected a string"),
    ('{"t": {"user": {"a": ' + "[" * 900 + '"\\u0000"' + "]" * 900 + "}}}", "NUL byte"),
    ('{"t": []}', "'t': expected an object"),
    ('{"t": null}', "'t': expected an object"),
    ('"t"', "expected a JSON object"),
    ("null", "expected a JSON object"),
    ("", "invalid JSON"),
    ('{"t": {"hooks": {"ready": ["/bin/true", 1]}}}', "'t'.hooks.ready: expected a command"),
    ('{"t": {"hooks": {"ready": []}}}', "'t'.hooks.ready: the command must be an absolute path"),
    ('{"t": {"hooks": {"ready": false}}}', "'t'.hooks.ready: expected a command"),
    ('{"t": {"hooks": []}}', "'t'.hooks: expected an object"),
    ('{"t": {"hooks": {"re\\nady": "/bin/true"}}}', "'t'.hooks.'re\\nady': unknown hook"),
    ('{"t": {"co\\nlour": 1}}', "'t'.'co\\nlour': unknown key"),
    ('{"t": {"reload": [1]}}', "'t'.reload: expected a list"),
    ('{"t": {"reload": ["/run/a\\u0000b"]}}', "a string contains a NUL byte"),
    ('{"t": {"reload": ["/run/a\\nb"]}}', "'t'.reload: contains a control character"),
    ('{"t": {"user": "root\\n"}}', "'t'.user: contains a control character"),
    ('{"t": {"user": "\\ud800"}}', "lone surrogate \\ud800"),
    ('{"t": {"user": 0}}', "'t'.user: expected a string"),
    ('{"t": {"user": "0"}}', "'t'.user: no such user '0'"),
    ('{"t\\n.jsonnet": {}}', "'t\\n.jsonnet': the template path contains a control character"),
    ('{"t\\u0000.jsonnet": {}}', "a string contains a NUL byte"),
    ('{"\\udfff.jsonnet": {}}', "lone surrogate \\udfff"),
    ('{"t": {"dir": "/a\\tb"}}', "'t'.dir: contains a control character"),
    ('{"t": {"dir": "${NL}"}}', "'t'.dir: contains a control character"),
    ('{"t": {"secrets": {"env:str:A\\nB": "v"}}}', "control character '\\n' at offset 9"),
    ('{"t": {"secrets": {"env:str:A": ""}}}', "variable name must be a non-empty string"),
    ('{"t": {"secrets": {"env:str:A": 1}}}', "variable name must be a non-empty string"),
    ('{"t": {"secrets": []}}', "'t'.secrets: expected an object"),
    ('{"t": {"secrets": {"": "v"}}}', "expected backend:args:path"),
    ('{"t": {"reload_signal": 1}}', "'t'.reload_signal: expected a string"),
])
def test_hostile_json_is_a_one_line_config_error(tmp_path, text, why):
    (tmp_path / "a.json").write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path, env={"NL": "a\nb"})
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'a.json'}: ") and why in msg and "\n" not in msg, msg


def test_encoding(tmp_path):
    (tmp_path / "a.json").write_bytes(b'{"t": {"dir": "/caf\xe9"}}')
    with pytest.raises(ConfigError, match=r"a.json: not valid UTF-8 \(byte 19\)"):
        load_config(tmp_path, env={})
    (tmp_path / "a.json").write_bytes(b'{"t": {"dir": "/\xed\xa0\x80"}}')  # encoded surrogate
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        load_config(tmp_path, env={})
    (tmp_path / "a.json").write_text('{"t": {"dir": "/caf\u00e9/\\ud83d\\ude00"}}',
                                     encoding="utf-8-sig")  # BOM, and a valid surrogate pair
    assert str(load_config(tmp_path, env={}).templates[0].dir) == "/caf\u00e9/\U0001f600"


# -- through the real command line: run and check ------------------------------------------

def _snapshot(root):
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None,
                                       p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("settings,text,needles", [
    # 2. setuid/setgid/sticky
    ({"mode": "7777"}, None, ["'t.jsonnet'.mode", "bad mode '7777'", "setuid"]),
    # 3. one strict mode grammar
    ({"mode": "0o640"}, None, ["'t.jsonnet'.mode", "bad mode '0o640'", "1 to 4 octal digits"]),
    ({"mode": " 0640"}, None, ["'t.jsonnet'.mode", "bad mode ' 0640'", "1 to 4 octal digits"]),
    # 4. malformed ${...}: never a directory literally named "${"
    ({"dir": "{out}/${"}, None, ["'t.jsonnet'.dir", "malformed ${...}: unterminated"]),
    ({"dir": "{out}/${A${B}}"}, None, ["'t.jsonnet'.dir", "nested"]),
    ({"reload": ["/run/service/${UNDEF:-x}"]}, None, ["'t.jsonnet'.reload", "defaults"]),
    ({"secrets": {"env:str:${}": "v"}}, None, ["'t.jsonnet'.secrets['env:str:${}']", "empty"]),
    # 5. hostile JSON
    (None, '{"t.jsonnet": {"dir": "{out}", "user": "\\ud800"}}', ["lone surrogate"]),
    (None, '{"t.jsonnet\\n": {"dir": "{out}"}}', ["'t.jsonnet\\n'", "control character"]),
    (None, '{"t.jsonnet": {"dir": "{out}", "reload": ["/x\\u0000"]}}', ["NUL byte"]),
    (None, '{"t.jsonnet": {"dir": "{out}", "mode": ' + "7" * 200 + '}}', ["200 digits"]),
    (None, '{"t.jsonnet": {"dir": "{out}", "hooks": {"ready": ["/bin/true", null]}}}',
     ["'t.jsonnet'.hooks.ready", "expected a command"]),
])
@pytest.mark.parametrize("command", ["run", "check"])
def test_cli_config_error_exit_2_one_line_nothing_touched(tmp_path, command, settings, text,
                                                         needles):
    out = tmp_path / "out"
    out.mkdir()
    (out / "v.txt").write_text("previous\n")
    os.utime(out / "v.txt", (1_000_000_000, 1_000_000_000))
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "t.jsonnet").write_text("{ 'v.txt': 'new' }")
    if text is None:
        body = {"dir": str(out), **settings}
        if "dir" in settings:
            body["dir"] = settings["dir"].replace("{out}", str(out))
        text = json.dumps({"t.jsonnet": body})
    else:
        text = text.replace("{out}", str(out))
    (cfg / "a.json").write_text(text)
    before = _snapshot(out)
    r = rconfd(*(["check"] if command == "check" else []), "-d", cfg, env={"A": "a", "B": "b"})
    assert r.rc == errors.EXIT_CONFIG, r.err
    lines = [ln for ln in r.lines if ": error: " in ln]
    assert len(lines) == 1 and len(r.lines) == 1, r.err
    assert f"{cfg / 'a.json'}: " in lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in r.err and "internal error" not in r.err
    assert _snapshot(out) == before
    assert (out / "v.txt").read_text() == "previous\n"


@pytest.mark.parametrize("text, key", [
    ('{"t.jsonnet": {"mode": "0600"}, "t.jsonnet": {"mode": "0644"}}', "t.jsonnet"),
    ('{"t.jsonnet": {"mode": "0600", "mode": "0644"}}', "mode"),
    ('{"t.jsonnet": {"secrets": {"env:str:A": "a", "env:str:A": "b"}}}', "env:str:A"),
])
def test_a_key_twice_in_one_object_is_an_error_not_last_wins(tmp_path, text, key):
    (tmp_path / "a.json").write_text(text)
    with pytest.raises(ConfigError, match=rf"a.json: key '{re.escape(key)}' appears twice"):
        load_config(tmp_path, env={})
