"""The redactor masks secret values however a message prints them."""

from rconfd_py.logs import MASK, Redactor


def test_masks_plain_escaped_numeric_and_multiline_values():
    r = Redactor()
    r.add("s", {"pw": "hunter2xx", "pin": 123456, "q": 'ab"cdef', "flag": True,
                "pem": "-----BEGIN KEY-----\nAAAABBBBCCCC\n-----END KEY-----"})
    text = r.redact('{"pw": "hunter2xx", "pin": 123456, "q": "ab\\"cdef"} line AAAABBBBCCCC')
    assert "hunter2xx" not in text and "123456" not in text and 'ab\\"cdef' not in text
    assert "AAAABBBBCCCC" not in text and text.count(MASK) == 4
    assert "true" in r.redact("true")  # booleans and short strings are not secrets


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
