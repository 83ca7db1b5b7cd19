"""Property: whatever a secret is and however a message prints it, the final log line shows
none of it, and is one line.

For any registered value (text of any characters, numbers, nested dicts and lists), each of its
leaves is logged in every form a message may carry it — raw, JSON with and without
`ensure_ascii`, `repr()`, one line of a multi-line value — embedded in arbitrary text, through
the real pipeline (`RedactingFormatter` with the CLI's format, and Vault's error text cut by the
client first). The line printed must not contain the leaf nor any of its lines of 4+ characters
(as they are or escaped), a leaf of 1-3 characters must not stand in it as a whole word, and the
line must hold no control character.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import unicodedata

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from helpers import captured_log, fresh_redactor

from rconfd_py import logs, redact
from rconfd_py.redact import MASK, MIN_LEN
from rconfd_py.vault.client import MAX_ERROR, _errors

HEAD = "rconfd-py: error: "
BLANK = " \t\n\r\x0b\x0c"  # a value of ASCII blanks only cannot leak: it is not registered
# characters that break naive matching: quotes, backslashes, line breaks, controls, non-ASCII
TRICKY = '"\\\'\n\r\t\x00\x07\x1b\x7f\x85\x9b\u2028\u2029\u202e é日\U0001f600<>{}'
CHARS = st.one_of(st.characters(exclude_categories=("Cs",)), st.sampled_from(TRICKY))
TEXT = st.text(CHARS, max_size=30)
SHORT = st.text(CHARS, min_size=1, max_size=MIN_LEN - 1).filter(lambda s: s.strip(BLANK))
LEAF = st.one_of(TEXT, SHORT,
                 st.integers(), st.floats(allow_nan=False, allow_infinity=False))
VALUE = st.recursive(LEAF, lambda kids: st.one_of(
    st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=5), kids, max_size=3)),
    max_leaves=4)
SEP = st.sampled_from([" ", "=", ": ", "\n", "(", ")", '"', "'", ",", "\t", "/", ""])
# RCONFD_PROPERTY_EXAMPLES=30000 for a longer hunt
SETTINGS = settings(max_examples=int(os.environ.get("RCONFD_PROPERTY_EXAMPLES", 300)),
                    deadline=None, database=None,
                    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])


def leaves(value) -> list:
    if isinstance(value, dict):  # (keys are too short to be a "version": no bookkeeping)
        return [x for v in value.values() for x in leaves(v)]
    if isinstance(value, list):
        return [x for v in value for x in leaves(v)]
    return [value]


def forms(leaf) -> list[str]:
    """How a message may print `leaf`: raw, JSON (both ways), repr(), each line alone."""
    text = leaf if isinstance(leaf, str) else str(leaf)
    out = [text, json.dumps(leaf), json.dumps(leaf, ensure_ascii=False), repr(leaf)]
    if isinstance(leaf, str):
        out += [json.dumps(leaf)[1:-1], json.dumps(leaf, ensure_ascii=False)[1:-1],
                repr(leaf)[1:-1]]
        lines = leaf.splitlines()
        if len(lines) > 1:
            out += lines
    return out


def printed(message: str, *, args: bool = True) -> str:
    """The line the CLI's handler prints for `log.error("%s", message)` (or without "%s")."""
    for lvl, name in logs.LEVEL_NAMES:
        logging.addLevelName(lvl, name)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.RedactingFormatter(logs.FORMAT))
    logger = logging.getLogger("rconfd-test-properties")
    logger.propagate = False
    logger.handlers[:] = [handler]
    if args:
        logger.error("%s", message)
    else:
        logger.error(message)
    return stream.getvalue()


def assert_one_clean_line(out: str) -> None:
    assert out.endswith("\n") and out.count("\n") == 1, out
    bad = [c for c in out[:-1] if unicodedata.category(c) in ("Cc", "Zl", "Zp")]
    assert not bad, (bad, out)


ESCAPE = re.compile(r"\\(?:[nrt]|x[0-9a-f]{2}|u[0-9a-f]{4})")


def needles(leaf) -> set[str]:
    """What must not show: the leaf and its lines of MIN_LEN+ characters, as they are and as
    the line escapes them."""
    text = (leaf if isinstance(leaf, str) else str(leaf)).strip(BLANK)
    found = {text} if len(text) >= MIN_LEN else set()
    found |= {ln.strip(BLANK) for ln in text.splitlines() if len(ln.strip(BLANK)) >= MIN_LEN}
    return found | {redact.escape(n) for n in found}


def check(out: str, leaf, form: str, surroundings: list[str]) -> None:
    assert_one_clean_line(out)
    segments = out[:-1].split(MASK)  # what the line shows outside the masks
    short = (leaf if isinstance(leaf, str) else str(leaf)).strip(BLANK)
    if not short:
        return
    for n in needles(leaf) | ({form.strip(BLANK)} if len(form.strip(BLANK)) >= MIN_LEN else set()):
        assert not any(n in seg for seg in segments), (n, out)
    if len(short) < MIN_LEN:
        # a short value is masked where it stands as a whole word; the text around it is
        # arbitrary, so only a line where nothing else could show it proves anything
        assume(out.startswith(HEAD))  # (another leaf may mask a word of our own wording)
        assume(not any(short in s or short in redact.escape(s) for s in surroundings))
        for seg in out[len(HEAD):-1].split(MASK):  # (a mask's edges are no word characters)
            # the letters of an escape the line made ("\\t" for a tab) are not the value
            escapes = [m.span() for m in ESCAPE.finditer(seg)]
            for m in re.finditer(rf"(?<!\w){re.escape(short)}(?!\w)", seg):
                assert any(a < m.end() and m.start() < b for a, b in escapes), (short, out)


# each example swaps in a fresh process-wide redactor (the formatter and the client use it)
@SETTINGS
@given(value=VALUE, data=st.data())
def test_no_form_of_a_registered_value_reaches_a_log_line(value, data):
    with fresh_redactor():
        redact.redactor.add("secret", value)
        assume(leaves(value))
        leaf = data.draw(st.sampled_from(leaves(value)))
        form = data.draw(st.sampled_from(forms(leaf)))
        prefix, suffix = data.draw(TEXT), data.draw(TEXT)
        sep1, sep2 = data.draw(SEP), data.draw(SEP)
        if 0 < len(str(leaf).strip(BLANK)) < MIN_LEN:  # a whole word needs something around it
            sep1, sep2 = sep1 or " ", sep2 or " "
        message = prefix + sep1 + form + sep2 + suffix
        around = [prefix + sep1, sep2 + suffix, HEAD + prefix + sep1]
        check(printed(message), leaf, form, around)
        check(printed(message, args=False), leaf, form, around)


@SETTINGS
@given(value=VALUE, data=st.data())
def test_vault_echoing_a_value_at_any_offset_of_the_cut(value, data):
    with fresh_redactor():
        redact.redactor.add("secret", value)
        assume(leaves(value))
        leaf = data.draw(st.sampled_from(leaves(value)))
        form = data.draw(st.sampled_from(forms(leaf)))
        pad = data.draw(st.integers(0, MAX_ERROR + 20))
        sep1, sep2, suffix = data.draw(SEP) or " ", data.draw(SEP) or " ", data.draw(TEXT)
        errors = ["x" * pad + sep1 + form + sep2 + suffix]
        text = _errors({"errors": errors}, 400, "Bad Request")
        assert len(text) <= MAX_ERROR + len(MASK) + 3  # (a word cut short may be masked)
        out = printed(f"POST /v1/transit/hmac/k: HTTP 400: {text}")
        # the cut leaves a prefix of the pad, then "...": what could look like the value
        around = [HEAD + "POST /v1/transit/hmac/k: HTTP 400: " + "x" * pad + sep1 + "...",
                  sep2 + suffix + "...", sep1.replace("\n", " "), sep2.replace("\n", " ")]
        check(out, leaf, form, around)


# -- end to end: a value the engine prints, cut and split by rconfd-py's error path ------------

PRINTABLE = st.characters(exclude_categories=("Cs",)).filter(str.isprintable)
NON_PRINTABLE = st.sampled_from("\n\r\t\x00\x07\x0b\x0c\x1b\x1e\x7f\x85\xa0\u061c\u200b\u2028"
                                "\u2029\ufeff")
TEMPLATES = {"error": "{ 'a.txt': error std.extVar('secrets').pw }",
             "parseInt": "{ 'a.txt': std.parseInt(std.extVar('secrets').pw) }"}


def logged_error(template: str, value: str) -> str:
    """What `guarded` logs at -v for a template evaluated with `value` as secret `pw`."""
    import tempfile
    from pathlib import Path

    from rconfd_py.errors import guarded
    from rconfd_py.render import evaluate

    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp) / "t.jsonnet"
        t.write_text(template)
        with captured_log() as stream:
            guarded(lambda: evaluate(t, {"pw": value}) and 0)
        return stream.getvalue().replace(tmp, "/TMP")


@SETTINGS
@given(runs=st.lists(st.text(PRINTABLE, min_size=1, max_size=7), min_size=2, max_size=4),
       seps=st.lists(NON_PRINTABLE, min_size=3, max_size=3), how=st.sampled_from(sorted(TEMPLATES)))
def test_no_run_of_a_value_the_engine_prints_shows_in_its_error(runs, seps, how):
    """Each run of printable characters of a value (a line, or what Rust's `{:?}` shows between
    two `\\u{..}` escapes) stays hidden: 4+ characters anywhere, shorter ones with a letter or
    digit as whole words; and every line is a record's."""
    value = "".join(r + s for r, s in zip(runs, seps)) + runs[-1]
    with fresh_redactor():
        baseline = logged_error(TEMPLATES[how], "zzzz")  # the words of the message itself
        redact.redactor.add("secret", {"pw": value})
        out = logged_error(TEMPLATES[how], value)
    lines = out.split("\n")
    assert lines[-1] == "" and all(ln.startswith("rconfd-py: ") for ln in lines[:-1]), out
    assert not [c for c in out if unicodedata.category(c) in ("Cc", "Zl", "Zp") and c != "\n"]
    segments = out.split(MASK)
    for run in {r.strip(BLANK) for r in runs}:
        if len(run) >= MIN_LEN:
            assume(run not in baseline)
            assert not any(run in seg or redact.escape(run) in seg for seg in segments), (run, out)
        elif any(c.isalnum() for c in run):
            pattern = rf"(?<!\w){re.escape(run)}(?!\w)"
            assume(not re.search(pattern, baseline))
            for seg in segments:
                escapes = [m.span() for m in ESCAPE.finditer(seg)]
                for m in re.finditer(pattern, seg):
                    assert any(a < m.end() and m.start() < b for a, b in escapes), (run, out)
