"""The redactor: no secret value reaches a log line or a status file, whatever the verbosity.

Backends never log values, but messages from elsewhere (a jsonnet `error` built from a secret,
Vault echoing a request parameter, a traceback at -v, `std.trace`) could carry one. Every fetched
value, token, JWT and `key=val` request parameter is registered here and masked in each line:

- a string of MIN_LEN (4) characters or more is masked wherever it occurs, as it is and as JSON,
  `repr()`, Go's `%q` or Rust's `{:?}` print it, and so is each run of 4+ printable characters
  of a value (a line; what lies between its control characters);
- a shorter one (a PIN, `version=2`, a short run holding a letter or digit) is masked where it
  stands as a whole word (no letter, digit or `_` right before or after it) in the text a line
  quotes: the message's arguments (errors, paths, secret paths), a message without arguments,
  a traceback; not in rconfd-py's own wording and numbers (`rendered 2 template(s)`), which
  carry no secret;
- then control and invisible characters are escaped (newline as `\\n`, others as `\\xNN` or
  `\\uNNNN`), so that no text quoted in a message can split or forge a log line; a traceback
  keeps its lines, indented.

A text holding a value is masked whole before it is cut or split (a piece of a value would no
longer be recognised): Vault's error text by the client (`redact`, `redact_fragments`, `safe`),
a jsonnet error by render.py, an error's -v detail by errors.guarded.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from itertools import groupby
from json.encoder import encode_basestring, encode_basestring_ascii

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging

MASK = "<redacted>"
MIN_LEN = 4  # shorter strings are masked only as whole words ("2" in "v2" is not a secret)
BLANK = " \t\n\r\x0b\x0c"  # stripped from values; a value of nothing else cannot leak

# C0, DEL, C1, the Unicode line and paragraph separators, the bidirectional marks and overrides
# (which reorder what a terminal shows) and the zero-width characters (which hide text): a
# class compiled on first need (not at import: ~250 µs), and never for plain ASCII text
_CONTROL_CLASS = ("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064"
                  "\u2066-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_QUOTED = r'"((?:[^"\\]|\\.)*)"'  # a Go-quoted (%q) string
_compiled: dict[str, re.Pattern] = {}


def _pattern(source: str) -> re.Pattern:
    p = _compiled.get(source)
    if p is None:
        p = _compiled[source] = re.compile(source)
    return p


def _escape_one(m: re.Match) -> str:
    c = m.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if c <= "\xff" else f"\\u{ord(c):04x}")


def escape(text: str) -> str:
    """`text` with its control characters escaped: one line, printing nothing but itself."""
    if text.isascii() and text.isprintable():  # the common case: no regex at all
        return text
    control = _pattern(_CONTROL_CLASS)
    return text if control.search(text) is None else control.sub(_escape_one, text)


class Redactor:
    """The secret strings to mask, by owner: registering a secret again replaces its old values
    (a renewed credential), so the set stays as large as what the process holds.

    Registering is cheap (the daemon re-registers a certificate at every renewal): the strings
    of a value are worked out only when the next log line needs them, once per new value; the
    pattern for short values is compiled again only when their set changes."""

    def __init__(self) -> None:
        self._raw: dict[object, object] = {}  # key -> value as registered
        self._strings: dict[object, frozenset[str]] = {}  # key -> its strings, once needed
        self._shorts: dict[object, frozenset[str]] = {}  # key -> those under MIN_LEN, if any
        # (long strings, longest first; pattern of the short ones or None; the long strings
        # holding a backslash, what escaping may complete); None: rebuild
        self._state: _State | None = ((), None, ())
        self._short: tuple[frozenset[str], re.Pattern | None] = (frozenset(), None)
        # see redact_fragments: (long strings, them joined, the near-whole pieces)
        self._haystack: tuple[tuple[str, ...], str, frozenset[str]] = ((), "", frozenset())
        self._lock = threading.Lock()

    def add(self, key: object, value: object) -> None:
        """Register every string leaf of `value` (nested dicts and lists included) as `key`'s."""
        with self._lock:
            if key in self._raw and self._raw[key] == value:
                return
            self._raw[key] = value
            self._strings.pop(key, None)
            self._shorts.pop(key, None)
            self._state = None

    def _current(self) -> _State:
        state = self._state
        if state is not None:
            return state
        with self._lock:
            for key, value in self._raw.items():
                if key not in self._strings:
                    strings = set(_leaves(value))
                    short = {s for s in strings if len(s) < MIN_LEN}
                    self._strings[key] = frozenset(strings - short if short else strings)
                    if short:
                        self._shorts[key] = frozenset(short)
            long = tuple(sorted(set().union(*self._strings.values()), key=len, reverse=True))
            short = frozenset().union(*self._shorts.values())
            if short != self._short[0]:  # rare: most secrets are long
                # every start of a short value standing as a whole word, overlaps included
                # (a lookahead matches nothing, so the search goes on at the next character)
                alts = "|".join(map(re.escape, sorted(short, key=len, reverse=True)))
                pattern = re.compile(rf"(?<!\w)(?=({alts})(?!\w))") if short else None
                self._short = (short, pattern)
            self._state = state = (long, self._short[1], tuple(v for v in long if "\\" in v))
        return state

    def redact(self, text: str) -> str:
        """`text` with every registered string masked: `text` is all quoted data (an error
        from Vault, a traceback), so short values are masked too, as whole words."""
        long, short, _ = self._current()
        return _mask(text, long, short)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where `redact` would mask something in `text`: (start, end) pairs, sorted, possibly
        overlapping (a dry run's diff masks an older value facing them)."""
        long, short, _ = self._current()
        found = []
        for v in long:
            i = text.find(v)
            while i >= 0:
                found.append((i, i + len(v)))
                i = text.find(v, i + 1)
        if short is not None:
            found += [(m.start(), m.end(1)) for m in short.finditer(text)]
        return sorted(found)

    def redact_long(self, text: str) -> str:
        """`text` with the registered strings of MIN_LEN+ characters masked wherever they are."""
        return _mask(text, self._current()[0], None)

    def redact_escaped(self, text: str) -> str:
        """`text`, masked then escaped, with what escaping completed masked: a registered
        string can only newly appear across an escape if it holds a backslash."""
        return _mask(text, self._current()[2], None)

    def redact_fragments(self, text: str) -> str:
        """Mask each double-quoted string in `text` that is a piece of MIN_LEN+ characters of a
        registered string, or a registered string lacking at most its first or its last
        character (1+ characters left). For Vault's error text: Go quotes what it could not
        parse, often a piece of the value (`strconv.ParseInt: parsing "hunter2passwor"`: the
        final "d" of "hunter2password" taken for a unit of days; `parsing "abc"` for "abcd")."""
        if '"' not in text:
            return text
        long = self._current()[0]
        hay = self._haystack
        if hay[0] is not long:  # worked out once per change of the set, when needed
            near = set()
            for v in (*long, *self._short[0]):
                if len(v) <= MIN_LEN:  # (longer: their pieces are MIN_LEN+ substrings)
                    near.update(p for p in (v, v[1:], v[:-1]) if p)
            hay = self._haystack = (long, "\0".join(long), frozenset(near))

        def sub(m: re.Match) -> str:
            piece = m.group(1)
            if (len(piece) >= MIN_LEN and piece in hay[1]) or piece in hay[2]:
                return f'"{MASK}"'
            return m.group()

        return _pattern(_QUOTED).sub(sub, text)

    def message(self, record: logging.LogRecord) -> str:
        """The record's message with the short values masked as whole words in the text its
        arguments bring (all of it when it has none), not in the format string nor in numbers
        (counts, durations: rconfd-py's own); the long ones with them, in the same pass (a
        short line masked first would break up the whole value holding it)."""
        long, short, _ = self._current()
        if short is None:
            return record.getMessage()
        msg = str(record.msg)
        args = record.args
        if not args:
            return _mask_both(msg, long, short)
        if isinstance(args, Mapping):
            return msg % {k: _arg(v, long, short) for k, v in args.items()}
        return msg % tuple(_arg(a, long, short) for a in args)


_State = tuple[tuple[str, ...], "re.Pattern | None", tuple[str, ...]]


def _mask(text: str, long: tuple[str, ...], short: re.Pattern | None) -> str:
    """Mask the union of every occurrence (overlapping ones too: two secrets sharing
    characters are both hidden entirely, not the first and the rest of the second)."""
    spans = None
    for v in long:  # substring tests: no regex over thousands of values to recompile
        if v in text:
            spans = spans or []
            n, i = len(v), text.find(v)
            while i >= 0:
                spans.append((i, i + n))
                i = text.find(v, i + 1)
    if short is not None:
        for m in short.finditer(text):
            spans = spans or []
            spans.append((m.start(), m.end(1)))
    if not spans:
        return text
    spans.sort()
    out, pos = [], 0
    for start, end in spans:
        if end <= pos:
            continue
        if start >= pos:
            out.append(text[pos:start])
            out.append(MASK)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _mask_both(text: str, long: tuple[str, ...], short: re.Pattern) -> str:
    """The short values masked as whole words, and the long ones in the same pass when there is
    one (else the line's own pass masks them, at no extra cost)."""
    return _mask(text, long, short) if short.search(text) else text


class _Masked:
    """A message argument printing itself (`%s` or `%r`) with the values masked."""

    __slots__ = ("long", "obj", "short")

    def __init__(self, obj: object, long: tuple[str, ...], short: re.Pattern) -> None:
        self.obj, self.long, self.short = obj, long, short

    def __str__(self) -> str:
        return _mask_both(str(self.obj), self.long, self.short)

    def __repr__(self) -> str:
        return _mask_both(repr(self.obj), self.long, self.short)

    def __int__(self) -> int:
        return int(self.obj)  # type: ignore[call-overload]

    def __float__(self) -> float:
        return float(self.obj)  # type: ignore[arg-type]


def _arg(value: object, long: tuple[str, ...], short: re.Pattern) -> object:
    return value if isinstance(value, (int, float)) else _Masked(value, long, short)


def _forms(part: str) -> set[str]:
    """`part` as a message may print it: raw, JSON (ASCII or not), repr(), Go's %q (Vault's
    echo: `invalid duration "..."`), Rust's {:?} (rjsonnet's `"a\\u{7f}b" is not a base 10
    integer`), escaped by us."""
    return {part, encode_basestring_ascii(part)[1:-1], encode_basestring(part)[1:-1],
            repr(part)[1:-1], _go_quote(part), _rust_debug(part), escape(part)}


_RUST_NAMED = {"\0": "\\0", "\t": "\\t", "\r": "\\r", "\n": "\\n", '"': '\\"', "\\": "\\\\"}


def _rust_debug(s: str) -> str:
    """Rust's `{:?}` of a str without its quotes."""
    return "".join(_RUST_NAMED.get(c) or (c if c.isprintable() else f"\\u{{{ord(c):x}}}")
                   for c in s)


_GO_NAMED = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
             "\v": "\\v", '"': '\\"', "\\": "\\\\"}


def _go_quote(s: str) -> str:
    """Go's strconv.Quote without its quotes."""
    out = []
    for c in s:
        if c in _GO_NAMED:
            out.append(_GO_NAMED[c])
        elif c.isprintable():
            out.append(c)
        elif c < "\x80":
            out.append(f"\\x{ord(c):02x}")
        elif c <= "\uffff":
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    return "".join(out)


def _leaves(value: object, out: list[str] | None = None) -> list[str]:
    """The strings to mask for `value`: each string leaf (ASCII blanks stripped), each run of
    printable characters between its others (the lines of a multi-line value; a short run is
    masked as a whole word, if it holds a letter or digit), and each as JSON, repr(), Go, Rust
    or our escaping prints them. Numbers count as their text (a PIN); booleans and None are no
    secrets; an empty or blank string cannot leak."""
    out = [] if out is None else out
    if isinstance(value, bool) or value is None:
        return out
    if isinstance(value, (int, float)):
        value = str(value)  # a PIN or numeric password printed by a template
    if isinstance(value, str):
        whole = value.strip(BLANK)  # a file's or a command's final newline is not printed
        if not whole:
            return out
        fast = (value.isascii() and '"' not in value and "\\" not in value
                and value.replace("\n", "").replace("\r", "").isprintable())
        # the whole value, and each run of printable characters of it: a line, or what an
        # engine shows between the escapes of the others ("\\u{7f}"); a message may cut a
        # value at any of them. A short run (a line "abc") is masked as a whole word; one
        # without a letter or digit ("}", "-->") is structure, not masked
        runs = (value.replace("\r", "\n").split("\n") if fast else
                ["".join(g) for k, g in groupby(value, str.isprintable) if k]
                + value.splitlines())  # (lines, their tabs and escapes included)
        parts = [whole]
        if runs != [value]:
            parts += {p for p in (r.strip(BLANK) for r in runs) if p != whole and p and (
                len(p) >= MIN_LEN or any(c.isalnum() for c in p))}
        if fast:
            # the common case (passwords, tokens, PEM): lines print as they are; only line
            # breaks have an escaped form, the same in every encoding
            out += parts
            for s in {whole, value}:  # (as fetched: a final newline escaped shows too)
                if "\n" in s or "\r" in s:
                    out.append(s.replace("\r", "\\r").replace("\n", "\\n"))
            return out
        for part in parts:
            out += _forms(part)
        if value != whole:  # escaped as fetched, blanks included: "\\nab" hides no "ab"
            out += [f for f in _forms(value) if f != value]
    elif isinstance(value, dict):
        for k, v in value.items():
            if not _bookkeeping(k, v):
                _leaves(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _leaves(v, out)
    return out


def _bookkeeping(key: object, value: object) -> bool:
    """A version number of 1-3 digits (kv v2's `metadata.version`, transit's `key_version`, a
    `version=2` request parameter): Vault's bookkeeping, not a secret, and masked it would
    hide every line number and count it equals in a quoted error."""
    return (isinstance(key, str) and (key == "version" or key.endswith("_version"))
            and not isinstance(value, bool) and isinstance(value, (int, str))
            and len(str(value)) < MIN_LEN and str(value).isdigit())


redactor = Redactor()


def safe(text: str) -> str:
    """`text` (all of it quoted data: Vault's error message) fit for a log line or a status
    file: secrets masked, then control characters escaped, then masked again (what escaping
    made of a value JSON escapes the same way)."""
    text = redactor.redact(text)
    escaped = escape(text)
    return text if escaped is text else redactor.redact_escaped(escaped)
