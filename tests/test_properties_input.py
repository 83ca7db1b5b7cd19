"""Property-based tests of the input side: secret paths, ${VAR} substitution, the config loader.

Whatever the input, the only errors are the project's own one-line ones (RefError from
parse_ref, UndefinedVariable/BadSubstitution from substitute, ConfigError from the loader), and
what is accepted is parsed consistently.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from rconfd_py.config import MAX_MODE, load_config, load_file
from rconfd_py.errors import ConfigError
from rconfd_py.refs import METHODS, RefError, SecretRef, parse_ref
from rconfd_py.subst import BadSubstitution, UndefinedVariable, substitute

# Modest budgets (CI has 2 cores); no example database: a failure prints its example.
FEW = settings(max_examples=200, deadline=None, database=None)
SOME = settings(max_examples=400, deadline=None, database=None)

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def one_line(e: BaseException) -> str:
    msg = str(e)
    assert msg and "\n" not in msg and len(msg.splitlines()) == 1, repr(msg)
    return msg


# Text that favours the characters the grammars care about, plus anything else.
SYNTAX = st.sampled_from(list(":,=/$ {}\\'\"\n\t\x00vaultenvfilexestrjsGETPOSTv1") +
                         ["vault:", "env:", "file:", "exe:", "str", "js", ",dynamic", ",POST",
                          "${", "${A}", "}", "\ud800", "\x85", "é", "/v1/"])
TRICKY = st.lists(st.one_of(SYNTAX, st.text(max_size=5)), max_size=20).map("".join)
ANY_TEXT = st.one_of(st.text(), TRICKY)


# -- secret paths --------------------------------------------------------------------------

@SOME
@given(ANY_TEXT)
@example("vault:r:/v1/")
@example("exe:str:/bin/echo '")
def test_parse_ref_raises_only_one_line_ref_errors(text):
    try:
        ref = parse_ref(text)
    except RefError as e:
        one_line(e)
        return
    assert isinstance(ref, SecretRef) and ref.text == text and str(ref) == text
    assert not CONTROL.search(text)
    backend, args, path = text.split(":", 2)
    assert ref.backend == backend and ref.path
    if backend == "exe":
        assert ref.argv and ref.argv[0].startswith("/")
    assert hash(ref) == hash(parse_ref(text)) and ref == parse_ref(text)


# Parts of a vault path: no control character; role and kwargs hold no ':' or ','.
PART = st.text(st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters=":,"),
               max_size=12)
NAME_PART = PART.filter(lambda s: s and "=" not in s)


@SOME
@given(role=NAME_PART,
       method=st.one_of(st.none(), st.sampled_from(METHODS).flatmap(
           lambda m: st.sampled_from([m, m.lower(), m.capitalize()]))),
       kwargs=st.lists(st.tuples(NAME_PART, PART), max_size=4),
       path=st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30))
def test_vault_ref_round_trips(role, method, kwargs, path):
    args = [role] + ([method] if method else []) + [f"{k}={v}" for k, v in kwargs]
    text = f"vault:{','.join(args)}:{path}"
    expected_path = path.strip("/").removeprefix("v1/")
    try:
        ref = parse_ref(text)
    except RefError as e:
        if not expected_path:
            assert "empty path" in one_line(e)
        else:  # '.', '..' or '' between slashes: refused, never sent to Vault
            assert "an empty segment" in one_line(e)
            assert any(seg in (".", "..", "") for seg in expected_path.split("/"))
        return
    assert not any(seg in (".", "..", "") for seg in ref.path.split("/"))
    assert (ref.backend, ref.role, ref.method, ref.kwargs, ref.path) == (
        "vault", role, (method or "GET").upper(), tuple(kwargs), expected_path)
    assert ref.text == text


@SOME
@given(backend=st.sampled_from(["env", "file", "exe"]), fmt=st.sampled_from(["str", "js"]),
       kind=st.sampled_from([None, "static", "dynamic"]),
       path=st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30))
def test_other_refs_round_trip(backend, fmt, kind, path):
    if backend == "exe":
        path = "/" + path
    args = fmt + (f",{kind}" if kind and backend == "exe" else "")
    text = f"{backend}:{args}:{path}"
    try:
        ref = parse_ref(text)
    except RefError as e:
        assert backend == "exe" and "cannot split" in one_line(e)  # an unbalanced quote
        return
    assert (ref.backend, ref.fmt, ref.path, ref.dynamic) == (
        backend, fmt, path, backend == "exe" and kind == "dynamic")


@FEW
@given(prefix=st.sampled_from(["env:str:A", "vault:role:kv/x", "file:js:/f", "exe:str:/bin/x"]),
       cut=st.integers(0, 20), char=st.characters(min_codepoint=0, max_codepoint=0x9f).filter(
           lambda c: CONTROL.match(c)))
def test_a_control_character_anywhere_is_refused(prefix, cut, char):
    cut = min(cut, len(prefix))
    with pytest.raises(RefError) as e:
        parse_ref(prefix[:cut] + char + prefix[cut:])
    assert "control character" in one_line(e.value)


# -- ${VAR} substitution -------------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
ENVS = st.dictionaries(NAMES, st.one_of(st.text(max_size=8), st.sampled_from(
    ["${A}", "${", "$", "${B}}", "}"])), max_size=5)


class Everything(Mapping):
    """An environment where every variable is defined."""

    def __getitem__(self, key):
        return "<" + key + ">"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@SOME
@given(st.text())
def test_text_without_dollar_brace_is_identity(text):
    assume("${" not in text)
    assert substitute(text, {}) == text


@SOME
@given(ANY_TEXT, ENVS)
def test_substitute_raises_only_its_one_line_errors(text, env):
    try:
        out = substitute(text, env)
    except UndefinedVariable as e:
        assert e.args[0] not in env and "${" + e.args[0] + "}" in text
        return
    except BadSubstitution as e:
        one_line(e)
        return
    assert isinstance(out, str)


@SOME
@given(ANY_TEXT)
@example("$${A}{")
@example("${${A}")
@example("${A}${")
def test_malformed_iff_a_dollar_brace_is_left_after_removing_the_references(text):
    """Oracle: replace every ${NAME} by a neutral character; any `${` left is malformed."""
    assume("\x01" not in text)
    malformed = "${" in VAR.sub("\x01", text)
    try:
        out = substitute(text, Everything())
    except BadSubstitution as e:
        assert malformed, text
        one_line(e)
        return
    assert not malformed
    assert out == VAR.sub(lambda m: "<" + m.group(1) + ">", text)


LITERAL = st.text(st.sampled_from(list("ab/-$}{ é\n")), max_size=6)


@SOME
@given(parts=st.lists(st.one_of(st.tuples(st.just("lit"), LITERAL),
                                st.tuples(st.just("var"), NAMES)), max_size=8),
       values=st.dictionaries(NAMES, st.text(max_size=8)))
def test_each_value_lands_where_its_reference_was(parts, values):
    env = dict(values)
    for kind, s in parts:
        if kind == "var":
            env.setdefault(s, "v_" + s)
    text = "".join(s if kind == "lit" else "${" + s + "}" for kind, s in parts)
    # no accidental `${` where a literal ends in $ and the next one starts with {
    assume(text.count("${") == sum(kind == "var" for kind, _ in parts))
    expected = "".join(s if kind == "lit" else env[s] for kind, s in parts)
    out = substitute(text, env)
    assert out == expected
    pos = 0
    for kind, s in parts:  # each value, at its place, never substituted again
        piece = s if kind == "lit" else env[s]
        assert out.startswith(piece, pos)
        pos += len(piece)


# -- the config loader ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="rconfd-prop-") as d:
        yield Path(d)


ENV = {"A": "a", "B": "/b", "NL": "x\ny", "EMPTY": ""}

JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              ANY_TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(ANY_TEXT, inner, max_size=4)),
    max_leaves=12)

GOOD_REFS = st.sampled_from(
    ["env:str:A", "vault:${A}-role,POST,x=1:pki/issue/x", "file:js:${B}/f.json",
     "exe:str,dynamic:/bin/date +%s", "vault:r,version=2:/v1/kv/data/x", "env:js:HOME"])


def mostly(good, *others):
    """`good` 3 times out of 4 (so that whole configs load), else one of `others`."""
    return st.integers(0, 3).flatmap(lambda i: st.one_of(*others) if i == 3 else good)


def good_or(good, *more):
    return mostly(good, *more, JSON)


SECRET_KEYS = mostly(GOOD_REFS, st.sampled_from(["vault:r:${}", "env:js:${NL}"]), ANY_TEXT)


VALUES = {
    "dir": good_or(st.sampled_from(["", "/out/${A}", "rel/${B}", "$A/x", "/o"]),
                   st.sampled_from(["${NL}", "/x/${", "${1A}", "${A${B}}", "/a\tb"])),
    "mode": good_or(st.from_regex(r"0?[0-7]{3}", fullmatch=True),
                    st.from_regex(r"[0-9+\- _oOx]{0,6}", fullmatch=True)),
    "user": good_or(st.sampled_from(["root", "nobody", ""]),
                    st.sampled_from(["root\n", "no-such-user", " root"])),
    "secrets": good_or(st.dictionaries(GOOD_REFS, NAMES, max_size=4),
                       st.dictionaries(SECRET_KEYS, st.one_of(NAMES, JSON), max_size=4)),
    "hooks": good_or(st.fixed_dictionaries({}, optional={
                         "ready": st.sampled_from(["/bin/true", ["/bin/echo", "a b"], None, ""]),
                         "modified": st.sampled_from(["/bin/echo 'x y'", ["/bin/true"]])}),
                     st.dictionaries(st.sampled_from(["ready", "modified", "other"]),
                                     st.one_of(st.sampled_from(["echo x", "/bin/echo 'x"]),
                                               st.lists(ANY_TEXT, max_size=3), JSON))),
    "reload": good_or(st.lists(st.sampled_from(["/run/s/${A}", "/run/service/app"]), max_size=2),
                      st.lists(st.sampled_from(["/run/${", "rel"]) | ANY_TEXT, max_size=3)),
    "reload_signal": good_or(st.sampled_from(["hup", "USR1", "restart"]),
                             st.sampled_from(["kill", ""])),
}
BODY = mostly(st.fixed_dictionaries({}, optional=VALUES),
              st.fixed_dictionaries({}, optional={**VALUES, "extra": JSON}), JSON)
NICE_NAMES = st.sampled_from(["t.jsonnet", "/abs/t.jsonnet", "sub/u.jsonnet", "../v.jsonnet",
                              "é.jsonnet"])
TEMPLATE_NAMES = mostly(NICE_NAMES, ANY_TEXT)
DOCUMENT = mostly(st.dictionaries(TEMPLATE_NAMES, BODY, min_size=1, max_size=3), JSON)


def check_loaded(directory: Path, write) -> None:
    path = directory / "a.json"
    write(path)
    try:
        config = load_config(directory, env=ENV)
    except ConfigError as e:
        assert one_line(e).startswith(f"{path}: "), str(e)
        return
    for t in config.templates:
        assert t.source == path and t.template.is_absolute() and t.dir.is_absolute()
        assert 0 <= t.mode <= MAX_MODE
        assert not CONTROL.search(t.name) and not CONTROL.search(str(t.dir))
        assert t.user is None or not CONTROL.search(t.user)
        assert all(r.startswith("/") and not CONTROL.search(r) for r in t.reload)
        assert all(argv and argv[0].startswith("/") for argv in t.hooks.values())
        assert "${" not in str(t.dir) or "${" in "".join(ENV.values())
        for ref, var in t.secrets:
            assert ref == parse_ref(ref.text) and var and isinstance(var, str)
    # the same file, loaded alone, gives the same templates
    again = load_file(path, directory, ENV)
    assert [(t.name, t.template, t.dir, t.mode, t.refs) for t in again] == [
        (t.name, t.template, t.dir, t.mode, t.refs) for t in config.templates]


@SOME
@given(DOCUMENT)
@example({"t.jsonnet": {"mode": "7777"}})
@example({"t.jsonnet": {"dir": "${A${B}}"}})
@example({"t\n.jsonnet": {}})
@example({"t.jsonnet": {"user": "\ud800"}})
def test_config_from_any_json_document(scratch, doc):
    check_loaded(scratch, lambda p: p.write_text(json.dumps(doc)))


@SOME
@given(st.one_of(st.text(), TRICKY, DOCUMENT.map(json.dumps).flatmap(
    lambda s: st.integers(0, len(s)).map(lambda i: s[:i]))))  # truncated documents
def test_config_from_any_text(scratch, text):
    check_loaded(scratch, lambda p: p.write_text(text, errors="surrogatepass"))


@FEW
@given(st.binary(max_size=200))
def test_config_from_any_bytes(scratch, data):
    check_loaded(scratch, lambda p: p.write_bytes(data))
