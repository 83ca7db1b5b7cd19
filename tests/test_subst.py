"""`${NAME}` substitution: the strict grammar (every `${` opens a complete `${NAME}`)."""

import pytest

from rconfd_py.subst import BadSubstitution, UndefinedVariable, substitute

ENV = {"A": "alpha", "B_2": "beta", "_": "under", "EMPTY": "", "REF": "${A}", "DOLLAR": "$"}


@pytest.mark.parametrize("text,expected", [
    ("plain", "plain"),
    ("", ""),
    ("${A}", "alpha"),
    ("/x/${A}/${B_2}-${_}", "/x/alpha/beta-under"),
    ("${A}${A}", "alphaalpha"),
    ("[${EMPTY}]", "[]"),
    ("$A $ $$ a$b {A} }", "$A $ $$ a$b {A} }"),  # a $ not followed by { is literal (rconfd)
    ("$${A}", "$alpha"),
    ("${REF}", "${A}"),  # a substituted value is never substituted again
    ("${DOLLAR}{A}", "${A}"),
])
def test_substitutes(text, expected):
    assert substitute(text, ENV) == expected


def test_text_without_dollar_brace_is_returned_as_is():
    text = "no substitution here $ {}"
    assert substitute(text, ENV) is text


def test_undefined_names_the_variable():
    with pytest.raises(UndefinedVariable) as e:
        substitute("a/${A}/${NOPE}", ENV)
    assert e.value.args[0] == "NOPE"


@pytest.mark.parametrize("text,why", [
    ("${", "unterminated '${' at offset 0"),
    ("/a/${A", "unterminated '${' at offset 3"),
    ("${A}/${", "unterminated '${' at offset 5"),
    ("${}", "empty '${}'"),
    ("${A${B_2}}", "nested '${A${B_2}'"),
    ("${${A}}", "nested"),
    ("${UNDEF:-x}", "defaults and modifiers are not supported"),
    ("${A:x}", "defaults and modifiers are not supported"),
    ("${1A}", "invalid variable name in '${1A}'"),
    ("${A-B}", "invalid variable name"),
    ("${ A}", "invalid variable name"),
    ("${\nA}", r"invalid variable name in '${\nA}'"),
    ("${é}", "invalid variable name"),
    ("${" + "x" * 100 + "-}", "..."),
])
def test_malformed_is_an_error_not_literal_text(text, why):
    with pytest.raises(BadSubstitution) as e:
        substitute(text, ENV)
    msg = str(e.value)
    assert why in msg and "\n" not in msg and len(msg) < 200, msg


def test_malformed_after_an_undefined_reports_the_first_problem():
    with pytest.raises(UndefinedVariable):
        substitute("${NOPE}${", ENV)
    with pytest.raises(BadSubstitution):
        substitute("${}${NOPE}", ENV)
