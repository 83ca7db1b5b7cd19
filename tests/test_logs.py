"""The redactor masks secret values however a message prints them, and a log line is one line
whatever text it quotes: unit tests through the real logging pipeline, then the real CLI
against OpenBao at -v, as an attacker would try."""

import json
import logging
import re
from pathlib import Path

import pytest
from cli import rconfd
from helpers import captured_log

from rconfd_py import logs, redact
from rconfd_py.redact import MASK, Redactor


def test_masks_plain_escaped_numeric_and_multiline_values():
    r = Redactor()
    r.add("s", {"pw": "hunter2xx", "pin": 123456, "q": 'ab"cdef', "flag": True,
                "pem": "-----BEGIN KEY-----\nAAAABBBBCCCC\n-----END KEY-----"})
    text = r.redact('{"pw": "hunter2xx", "pin": 123456, "q": "ab\\"cdef"} line AAAABBBBCCCC')
    assert "hunter2xx" not in text and "123456" not in text and 'ab\\"cdef' not in text
    assert "AAAABBBBCCCC" not in text and text.count(MASK) == 4
    assert "true" in r.redact("true")  # booleans are no secrets


def test_registering_a_secret_again_replaces_its_old_values():
    r = Redactor()
    r.add("db", {"password": "first-password"})
    r.add("db", {"password": "second-password"})
    assert r.redact("first-password second-password") == f"first-password {MASK}"


def test_masks_non_ascii_values_as_json_escapes_them():
    r = Redactor()
    r.add("s", {"pw": "pässwörd-ü"})
    escaped = '"p\\u00e4ssw\\u00f6rd-\\u00fc"'  # json.dumps with ensure_ascii
    assert r.redact(f"raw pässwörd-ü, escaped {escaped}") == f'raw {MASK}, escaped "{MASK}"'


def test_a_value_registered_after_a_log_line_is_masked_in_the_next():
    r = Redactor()
    r.add("a", "first-secret")
    assert r.redact("first-secret") == MASK
    r.add("b", "second-secret")
    assert r.redact("first-secret second-secret") == f"{MASK} {MASK}"


# -- the real logging pipeline: RedactingFormatter with the daemon's format ------------------


@pytest.fixture
def fresh(monkeypatch):
    """A fresh redactor in place of the process-wide one (the formatter and the Vault client
    use `redact.redactor`)."""
    r = Redactor()
    monkeypatch.setattr(redact, "redactor", r)
    return r


def emit(msg, *args, exc_info=None, level=logging.ERROR) -> str:
    """What the CLI's handler prints for one log call."""
    with captured_log("rconfd-test-logs") as stream:
        logging.getLogger("rconfd-test-logs").log(level, msg, *args, exc_info=exc_info)
    return stream.getvalue()


def whole_word(value: str, text: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(value)}(?!\w)", text) is not None


def test_short_values_are_masked_as_whole_words_in_what_a_line_quotes(fresh):
    fresh.add("kv", {"pin": "735", "pw": "x#", "n": 42, "empty": "", "blank": "   ",
                     "on": True})
    for text in ("pin 735", "pin=735", '{"pin": "735"}', "735", "pin 735.", "x# ok",
                 "answer 42", "'x#'"):
        line = emit("%s", text)
        assert not whole_word("735", line) and not whole_word("42", line), line
        assert "x#" not in line and redact.MASK in line, line
    # inside a longer word it is no secret (and the text stays readable)
    assert emit("%s", "serial 7350 v735 a42b") == "rconfd-py: error: serial 7350 v735 a42b\n"
    # booleans, empty and blank values are never masked (they cannot leak anything)
    assert emit("%s", "True true  ") == "rconfd-py: error: True true  \n"
    # a message without arguments is all quoted text
    assert emit("pin 735 here") == f"rconfd-py: error: pin {redact.MASK} here\n"


def test_short_values_do_not_mask_our_own_wording_and_counts(fresh):
    fresh.add(("kwargs", "ref"), ("2", "abc"))
    line = emit("rendered %d template(s), %d file(s) changed; %s", 2, 2,
                "vault:r,POST,input=abc,version=2:transit/hmac/k: HTTP 400")
    assert line == ("rconfd-py: error: rendered 2 template(s), 2 file(s) changed; "
                    f"vault:r,POST,input={redact.MASK},version={redact.MASK}:transit/hmac/k: "
                    "HTTP 400\n")
    # %r and mapping arguments too
    assert emit("%r", "abc") == f"rconfd-py: error: '{redact.MASK}'\n"
    assert emit("%(k)s", {"k": "abc"}) == f"rconfd-py: error: {redact.MASK}\n"


def test_an_exception_argument_is_masked_by_its_text(fresh):
    fresh.add("s", {"pin": "735", "pw": "long-secret"})
    line = emit("%s", ValueError("bad pin 735 for long-secret"))
    assert "735" not in line and "long-secret" not in line and line.count(redact.MASK) == 2


def test_two_secrets_sharing_characters_are_both_hidden_entirely(fresh):
    fresh.add("a", "abcdef12")
    fresh.add("b", "ef12ghij")
    line = emit("%s", "xx abcdef12ghij yy")
    assert line == f"rconfd-py: error: xx {redact.MASK} yy\n"


@pytest.mark.parametrize("evil,shown", [
    ("a\nrconfd-py: info: forged", "a\\nrconfd-py: info: forged"),
    ("a\r\nrconfd-py: info: forged", "a\\r\\nrconfd-py: info: forged"),
    ("a\rrconfd-py: info: forged", "a\\rrconfd-py: info: forged"),
    ("\x1b[2K\x1b[1Arconfd-py: info: x", "\\x1b[2K\\x1b[1Arconfd-py: info: x"),
    ("nul\x00 del\x7f c1\x85\x9b bell\x07 tab\t",
     "nul\\x00 del\\x7f c1\\x85\\x9b bell\\x07 tab\\t"),
    ("ls\u2028ps\u2029rtl\u202eltr\u2066", "ls\\u2028ps\\u2029rtl\\u202eltr\\u2066"),
    ("zw\u200bbom\ufeffalm\u061cwj\u2060", "zw\\u200bbom\\ufeffalm\\u061cwj\\u2060"),
    ("plain ü 日本 \\n stays", "plain ü 日本 \\n stays"),
])
def test_control_characters_cannot_split_or_forge_a_line(fresh, evil, shown):
    for line in (emit("%s: wrote %s", "t.jsonnet", evil), emit(evil)):
        assert line.endswith(shown + "\n") and line.count("\n") == 1, line
        assert line.startswith("rconfd-py: error: ")


def test_a_multi_line_secret_is_masked_raw_before_its_newlines_are_escaped(fresh):
    pem = "-----BEGIN KEY-----\nAAAABBBBCCCC\nDDDD\n-----END KEY-----"
    fresh.add("cert", {"private_key": pem})
    for text in (f"key: {pem} end", json.dumps({"k": pem}), repr(pem),
                 f"line {pem.splitlines()[1]}"):
        line = emit("%s", text)
        assert line.count("\n") == 1, line
        for part in (pem, "AAAABBBBCCCC", "DDDD", "BEGIN KEY", json.dumps(pem)[1:-1]):
            assert part not in line, line
    # the whole value, not four masks with escaped newlines between them
    assert emit("%s", f"key: {pem} end") == f"rconfd-py: error: key: {redact.MASK} end\n"


def test_every_form_a_message_prints_a_value_in_is_masked(fresh):
    """repr() escapes what JSON does not (both quotes, a no-break space as \\xa0), Go's %q (how
    Vault quotes an echoed value) names \\a and \\v, and our own escaping leaves backslashes."""
    value = 'it\'s "q" \\ \xa0\x07\x0b end'
    fresh.add("s", {"pw": value})
    go = 'it\'s \\"q\\" \\\\ \\u00a0\\a\\v end'  # strconv.Quote's output
    for text in (value, repr(value), json.dumps(value), json.dumps(value, ensure_ascii=False),
                 f'invalid duration "{go}"', f"{value!r:>60}"):
        line = emit("%s", text)
        assert "it's" not in line and "end" not in line, (text, line)
        assert line.count("\n") == 1


def test_a_traceback_keeps_its_lines_indented_and_masked(fresh):
    fresh.add("s", {"pw": "hunter2-long", "pin": "735"})
    try:
        raise ValueError("bad hunter2-long 735\nrconfd-py: error: forged\x1b[2K")
    except ValueError as e:
        out = emit("internal error: %s", e, exc_info=True)
    first, *rest = out.rstrip("\n").split("\n")
    assert first == f"rconfd-py: error: internal error: bad {redact.MASK} {redact.MASK}\\n" \
                    "rconfd-py: error: forged\\x1b[2K"
    assert rest[0] == "  Traceback (most recent call last):" and len(rest) > 2
    assert all(ln.startswith("  ") for ln in rest)  # no line at column 0 but the record's
    assert "hunter2-long" not in out and not whole_word("735", out) and "\x1b" not in out


def test_the_short_value_pattern_is_built_once_per_change_of_the_set(fresh, monkeypatch):
    compiled = []
    real = re.compile
    monkeypatch.setattr(redact.re, "compile", lambda *a: compiled.append(a) or real(*a))
    fresh.add("pin", "735")
    for _ in range(5):
        emit("%s", "735")
    fresh.add("cert", "a-long-certificate-1")  # long values: the short set is unchanged
    fresh.add("cert", "a-long-certificate-2")
    for _ in range(5):
        emit("%s", "735")
    assert len(compiled) == 1
    fresh.add("pin", "736")
    assert emit("%s", "735 736") == "rconfd-py: error: 735 <redacted>\n"
    assert len(compiled) == 2


def test_version_numbers_are_bookkeeping_not_secrets(fresh):
    """kv v2 answers carry `metadata.version`, transit ones `key_version`, a kv read may ask
    `version=2`: masked, they would hide every line number they equal in a template error."""
    fresh.add("kv", {"data": {"pin": "735"}, "metadata": {"version": 1, "created_time": "x"}})
    fresh.add("transit", {"ciphertext": "vault:v1:abcd", "key_version": 2})
    fresh.add("kwargs", [{"version": "3"}, {"input": "abc"}, {"input": "2nd"}])
    line = emit("%s", "t.jsonnet:1:15 t.jsonnet:2:3 version=3 pin 735 input=abc input=2nd")
    assert line == (f"rconfd-py: error: t.jsonnet:1:15 t.jsonnet:2:3 version=3 pin {MASK} "
                    f"input={MASK} input={MASK}\n")
    fresh.add("user", {"version": "1234", "pin_version": "x9"})  # not a short number: a secret
    assert emit("%s", "1234 x9") == f"rconfd-py: error: {MASK} {MASK}\n"


def test_a_message_that_cannot_be_formatted_does_not_dump_its_arguments(fresh, capsys):
    fresh.add("s", "long-secret-value")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.setup(False)
        logging.getLogger("rconfd-test-logs-bad").error("%d items", "long-secret-value")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    err = capsys.readouterr().err
    assert err == "rconfd-py: error: cannot log '%d items'\n"


# -- the real CLI against OpenBao, at -v: what an attacker would try --------------------------


def jwt_args(vault_env) -> list[str]:
    return ["-u", vault_env["VAULT_ADDR"], "-l", "/auth/jwt/login",
            "-t", vault_env["VAULT_JWT_PATH"]]


def config(tmp_path: Path, template: str, secrets: dict) -> tuple[Path, Path]:
    out, cfg = tmp_path / "out", tmp_path / "cfg"
    cfg.mkdir(parents=True)
    (cfg / "t.jsonnet").write_text(template)
    (cfg / "a.json").write_text(json.dumps({"t.jsonnet": {"dir": str(out), "secrets": secrets}}))
    return cfg, out


def test_cli_a_3_character_secret_in_a_template_error_is_masked(tmp_path, vault_env, stack):
    stack.client().secrets.kv.v2.create_or_update_secret(
        path="logs/pin", secret={"pin": "7q3", "password": "long-pass-xyz"}, mount_point="kv")
    tpl = ("local s = std.extVar('secrets');\n"
           "{ 'a.txt': error 'bad pin ' + s.kv.data.pin + ' (' + std.toString(s.kv.data) + ')' }")
    cfg, out = config(tmp_path, tpl, {"vault:test-role:kv/data/logs/pin": "kv"})
    r = rconfd("-d", cfg, "-v", *jwt_args(vault_env))
    assert r.rc == 3 and "bad pin" in r.err and "debug:" in r.err, r.err
    assert not whole_word("7q3", r.err) and "long-pass-xyz" not in r.err, r.err
    assert f"bad pin {redact.MASK}" in r.err and not out.exists()


def test_cli_request_parameters_are_secrets(tmp_path, vault_env):
    hmac_input = "c2VjcmV0LWhtYWMtaW5wdXQ="  # base64: accepted, and fetched
    tpl = "local s = std.extVar('secrets'); { 'mac.txt': s.mac.hmac }"
    cfg, out = config(tmp_path, tpl, {"vault:test-role,POST,input=${IN}:transit/hmac/mysecret":
                                      "mac"})
    ok = rconfd("-d", cfg, "-v", *jwt_args(vault_env), env={"IN": hmac_input})
    assert ok.rc == 0, ok.err
    assert f"fetched vault:test-role,POST,input={redact.MASK}:transit/hmac/mysecret" in ok.err
    assert hmac_input not in ok.err and hmac_input[:12] not in ok.err
    # Vault echoes a refused common_name in its error: a short one and a long one
    secrets = {"vault:test-role,POST,common_name=${CN1}:pki/issue/example.com": "c1",
               "vault:test-role,POST,common_name=${CN2}:pki/issue/example.com": "c2"}
    (tmp_path / "2").mkdir()
    cfg, out = config(tmp_path / "2", "{}", secrets)
    bad = rconfd("-d", cfg, "-v", *jwt_args(vault_env),
                 env={"CN1": "q.z", "CN2": "secret-cn.attacker.org"})
    assert bad.rc == 4, bad.err
    refused = [ln for ln in bad.lines if "not allowed by this role" in ln]
    assert len(refused) == 2, bad.err  # Vault did echo both values
    assert f"common_name={redact.MASK}:pki/issue/example.com" in refused[0]
    assert f"common name {redact.MASK} not allowed" in refused[0]
    assert not whole_word("q.z", bad.err) and "secret-cn" not in bad.err, bad.err


def test_cli_a_jwt_vault_echoes_in_a_long_error_is_never_printed_in_part(tmp_path, vault_env):
    """Vault's field validation quotes a bad value (`invalid duration "..."`); the JWT sent as
    one goes past the 300 characters the client keeps of an error."""
    jwt_text = Path(vault_env["VAULT_JWT_PATH"]).read_text().strip()
    assert len(jwt_text) > 300
    secrets = {"vault:test-role,POST,common_name=www.example.com,ttl=${JWT}:pki/issue/example.com":
               "cert"}
    cfg, _ = config(tmp_path, "{}", secrets)
    r = rconfd("-d", cfg, "-v", *jwt_args(vault_env), env={"JWT": jwt_text})
    assert r.rc == 4 and "invalid duration" in r.err, r.err  # Vault echoed it
    pieces = [jwt_text[i:i + 16] for i in range(len(jwt_text) - 15)]
    assert not [p for p in pieces if p in r.err], r.err
    assert f'invalid duration "{redact.MASK}"' in r.err
    assert all(ln.startswith("rconfd-py: ") for ln in r.lines)


def test_cli_a_piece_of_a_request_parameter_vault_quotes_is_masked(tmp_path, vault_env):
    """OpenBao parses `ttl=hunter2longpassword` as days ("d") and quotes the rest back."""
    secrets = {"vault:test-role,POST,common_name=www.example.com,ttl=${TTL}:pki/issue/example.com":
               "cert"}
    cfg, _ = config(tmp_path, "{}", secrets)
    r = rconfd("-d", cfg, "-v", *jwt_args(vault_env), env={"TTL": "hunter2longpassword"})
    assert r.rc == 4 and "strconv.ParseInt: parsing" in r.err, r.err  # Vault echoed a piece
    assert "hunter2" not in r.err and f'parsing "{redact.MASK}"' in r.err, r.err


def test_cli_output_keys_and_errors_cannot_forge_log_lines(tmp_path):
    # (whether such a file name is written or refused, the line naming it stays one line)
    cfg, out = config(tmp_path, "{ 'a\\nrconfd-py: info: forged-by-key.txt': 'x' }", {})
    r = rconfd("-d", cfg, "-v")
    (tmp_path / "2").mkdir()
    cfg2, _ = config(tmp_path / "2", "{ x: error 'nope\\nrconfd-py: info: forged\\u001b[1A' }", {})
    bad = rconfd("-d", cfg2, "-v")
    assert bad.rc == 3, bad.err
    for run in (r, bad):
        assert all(ln.startswith("rconfd-py: ") for ln in run.err.splitlines()), run.err
        assert "\x1b" not in run.err and "forged" in run.err  # there, quoted in a line
        assert not [ln for ln in run.err.splitlines() if ln.startswith("rconfd-py: info: forged")]
        lines = run.err.split("\n")
        assert lines[-1] == "" and all(ln.startswith(("rconfd-py: ", "  ")) for ln in lines[:-1])


# -- a hostile review's attacks, each through the real CLI (each leaked before its fix) ---------

ERROR_PW = "local s = std.extVar('secrets');\n{ 'a.txt': error s.pw }"


def env_run(tmp_path: Path, template: str, value: str, *args: str, kind: str = "str"):
    cfg, out = config(tmp_path, template, {f"env:{kind}:PW": "pw"})
    return rconfd("-d", cfg, *args, env={"PW": value}), out


def shown(part: str, text: str) -> bool:
    """Whether `part` of a secret shows: anywhere (4+ characters) or as a whole word."""
    return part in text if len(part) >= redact.MIN_LEN else whole_word(part, text)


def assert_log_lines(err: str) -> None:
    """Every line of stderr is a record's (`rconfd-py: `) or an indented traceback line, and
    no other line break is left in any."""
    lines = err.split("\n")
    assert lines[-1] == "" and all(ln.startswith(("rconfd-py: ", "  ")) for ln in lines[:-1]), err
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]", err), err


@pytest.mark.parametrize("value", ["abc\ndef", "12\n34567890", "xy\u2028secretpart",
                                   "ab\r\nsecret-tail\nz9", "q\x1e\x85wxyz-long\x0bk",
                                   "+-*\n=/%"])
def test_cli_a_multi_line_secret_with_short_lines_shows_none_of_them(tmp_path, value):
    """The engine's message is cut to its first line, and at -v split in records: masked
    whole first (a line of punctuation, "+-*", is no secret of its own: only the whole value
    hides it)."""
    r, out = env_run(tmp_path, ERROR_PW, value, "-v")
    assert r.rc == 3 and "runtime error: " in r.err and "error statement" in r.err, r.err
    parts = [p.strip(redact.BLANK) for p in re.split("[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]", value)]
    assert [p for p in parts if p and shown(p, r.err)] == [], r.err
    assert_log_lines(r.err)
    assert not out.exists()


@pytest.mark.parametrize("value", ["abc\ndef", "12\n34567890", "xy\u2028secretpart"])
def test_cli_a_template_error_quoting_one_short_line_of_a_secret_masks_it(tmp_path, value):
    """Each short line (with a letter or digit) of a multi-line value is a whole-word secret."""
    tpl = ("local s = std.extVar('secrets');\n"
           "{ 'a.txt': error 'bad: ' + std.split(std.strReplace(s.pw, '\\u2028', '\\n'), "
           "'\\n')[0] }")
    r, _ = env_run(tmp_path, tpl, value, "-v")
    assert r.rc == 3 and f"bad: {MASK}" in r.err, r.err
    assert not shown(re.split("[\n\u2028]", value)[0], r.err), r.err


def test_guarded_masks_an_error_detail_whole_before_splitting_it(fresh):
    """`guarded` logs -v detail (a build's output) one record per line: masked first."""
    from rconfd_py.errors import BuildError, guarded

    fresh.add("s", "+-*\n=/%\nlong-enough-line")

    def work():
        raise BuildError("build failed", detail="out: +-*\n=/%\nlong-enough-line\u2028tail")

    with captured_log() as stream:
        assert guarded(work) == BuildError.exit_code
    assert stream.getvalue() == ("rconfd-py: error: build failed\n"
                                 f"rconfd-py: debug: out: {MASK}\\u2028tail\n")


@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\x1e", "\x1c", "\x85", "\x0c", "\x0b", "\r"])
def test_cli_a_template_error_cannot_break_a_record_with_any_line_separator(tmp_path, sep):
    """str.splitlines() breaks at more than "\\n": the error keeps its whole first line (what
    follows the separator too, escaped), and at -v no line but a record's shows."""
    tpl = f"{{ 'a.txt': error 'x' + std.char({ord(sep)}) + 'rconfd-py: error: forged' }}"
    cfg, _ = config(tmp_path, tpl, {})
    r = rconfd("-d", cfg, "-v")
    assert r.rc == 3, r.err
    assert_log_lines(r.err)
    errors = [ln for ln in r.err.split("\n") if ln.startswith("rconfd-py: error: ")]
    assert len(errors) == 1 and "x" + redact.escape(sep) + "rconfd-py: error: forged" in errors[0]
    assert not [ln for ln in r.err.split("\n") if "debug: rconfd-py:" in ln], r.err


def test_cli_a_value_rjsonnet_prints_with_rust_escapes_is_masked(tmp_path):
    """rjsonnet quotes a value in Rust's debug form (`"abc\\u{7f}defgh" is not a base 10
    integer`): that form is masked, and so is each printable run of the value."""
    tpl = "local s = std.extVar('secrets');\n{ 'a.txt': std.parseInt(s.pw) }"
    r, _ = env_run(tmp_path, tpl, '"abc\\u007fdefgh\\u00a0xyzzy"', "-v", kind="js")
    assert r.rc == 3 and "is not a base 10 integer" in r.err, r.err
    assert [p for p in ("abc", "defgh", "xyzzy", "\\u{7f}") if shown(p, r.err)] == [], r.err
    assert_log_lines(r.err)


def test_cli_std_trace_output_is_logged_masked_not_printed_raw(tmp_path):
    """std.trace writes to fd 2 from the engine itself: captured, masked, one record a line."""
    tpl = ("local s = std.extVar('secrets');\n"
           "{ 'a.txt': std.trace('pw is ' + s.pw + '\\nrconfd-py: error: forged', 'x') }")
    r, out = env_run(tmp_path, tpl, "hunter2-trace\nab\x1b[2K")
    assert r.rc == 0 and (out / "a.txt").read_text() == "x\n", r.err
    assert "rconfd-py: info: TRACE: " in r.err and f"pw is {MASK}" in r.err, r.err
    assert not shown("hunter2-trace", r.err) and not shown("ab", r.err), r.err
    assert "rconfd-py: info: rconfd-py: error: forged" in r.err  # quoted in a record
    assert_log_lines(r.err)


def test_cli_a_4_character_request_parameter_vault_echoes_3_of_is_masked(tmp_path, vault_env):
    """OpenBao parses `ttl=abcd` as days ("d") and quotes "abc" back: a piece one character
    short of a secret is masked too."""
    secrets = {"vault:test-role,POST,common_name=www.example.com,ttl=${TTL}:pki/issue/example.com":
               "cert"}
    cfg, _ = config(tmp_path, "{}", secrets)
    r = rconfd("-d", cfg, "-v", *jwt_args(vault_env), env={"TTL": "wxyd"})
    assert r.rc == 4 and "strconv.ParseInt: parsing" in r.err, r.err  # Vault echoed a piece
    assert '"wxy"' not in r.err and f'parsing "{MASK}"' in r.err, r.err


def test_importing_the_logs_module_compiles_no_regex():
    """The daemon's and the one-shot's import path: the control class and the quoted-string
    pattern are compiled on first need, not at import."""
    import subprocess
    import sys
    code = ("import re, logging, threading, json.encoder, itertools\n"
            "seen = []\nreal = re.compile\n"
            "re.compile = lambda *a, **k: seen.append(a[0]) or real(*a, **k)\n"
            "import rconfd_py.redact as redact\nassert seen == [], seen\n"
            "assert redact.escape('plain ascii') == 'plain ascii' and seen == [], seen\n"
            "assert redact.escape('a\\u2028b') == 'a\\\\u2028b' and len(seen) == 1, seen\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          env={"PYTHONPATH": str(Path(__file__).resolve().parent.parent),
                               "PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode == 0, proc.stderr
