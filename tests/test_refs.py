import pytest

from rconfd_py.refs import RefError, parse_ref


def test_vault_defaults_to_get():
    r = parse_ref("vault:my-role:kv/data/test/mysecret")
    assert (r.backend, r.role, r.method, r.path, r.kwargs) == (
        "vault", "my-role", "GET", "kv/data/test/mysecret", ())


def test_vault_method_and_kwargs():
    r = parse_ref("vault:role,post,common_name=example.com,ttl=1h:pki/issue/example.com")
    assert r.method == "POST"
    assert r.kwargs == (("common_name", "example.com"), ("ttl", "1h"))
    assert r.path == "pki/issue/example.com"


def test_vault_kwargs_without_method_and_v1_prefix():
    r = parse_ref("vault:role,version=2:/v1/kv/data/x")
    assert r.method == "GET" and r.kwargs == (("version", "2"),) and r.path == "kv/data/x"


def test_same_text_same_ref_is_hashable():
    assert {parse_ref("env:str:HOME"), parse_ref("env:str:HOME")} == {parse_ref("env:str:HOME")}


def test_exe_kinds_and_argv():
    r = parse_ref("exe:js,dynamic:/usr/bin/printf '{\"a\": 1}'")
    assert r.dynamic and r.fmt == "js" and r.argv == ["/usr/bin/printf", '{"a": 1}']
    assert not parse_ref("exe:str:/usr/bin/nproc --all").dynamic
    assert not parse_ref("exe:str,static:/usr/bin/nproc").dynamic


@pytest.mark.parametrize("text,why", [
    ("nope", "backend:args:path"),
    ("s3:str:x", "unknown backend"),
    ("env:yaml:HOME", "'str' or 'js'"),
    ("env:str,js:HOME", "too many"),
    ("env:str:", "empty path"),
    ("vault::kv/x", "missing role"),
    ("vault:r,PATCH:kv/x", "neither a method"),
    ("vault:r,GET,POST:kv/x", "two methods"),
    ("vault:r,a=1,POST:kv/x", "before key=val"),
    ("exe:str:nproc", "absolute"),
    ("exe:str,sometimes:/bin/true", "'static' or 'dynamic'"),
    ("exe:str:/bin/echo 'unterminated", "cannot split"),
])
def test_bad_refs_say_why(text, why):
    with pytest.raises(RefError, match=why.replace("(", r"\(").replace(")", r"\)")):
        parse_ref(text)


@pytest.mark.parametrize("text,shown", [
    ("env:str:A\nB", r"'\n' at offset 9"),
    ("vault:role:kv/data/x\r", r"'\r' at offset 20"),
    ("vault:ro\tle:kv/x", r"'\t' at offset 8"),
    ("file:str:/a\x00b", r"'\x00' at offset 11"),
    ("exe:str:/bin/echo a\x85", r"'\x85' at offset 19"),
    ("vault:role,key=v\x7f:kv/x", r"'\x7f' at offset 16"),
])
def test_control_characters_are_refused(text, shown):
    with pytest.raises(RefError) as e:
        parse_ref(text)
    assert f"control character {shown}" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("path", ["kv/../sys/seal", "kv/./x", "kv//x", "../x"])
def test_dot_segments_in_a_vault_path_are_refused(path):
    with pytest.raises(RefError, match="'.', '..' or an empty segment"):
        parse_ref(f"vault:r:{path}")
