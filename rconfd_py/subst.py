"""`${NAME}` substitution from the environment, as rconfd does in `dir`, secret paths and `reload`.

Grammar: every `${` must open a complete `${NAME}`, NAME = [A-Za-z_][A-Za-z0-9_]*; anything else
(`${}`, `${1A}`, `${A${B}}`, `${A:-default}`, an unterminated `${`) is an error, never literal
text. A `$` not followed by `{` is literal (rconfd compatibility). A substituted value is never
scanned again.
"""

import os
import re
from collections.abc import Mapping

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class UndefinedVariable(KeyError):
    """Raised with the name of the first undefined variable."""


class BadSubstitution(ValueError):
    """A `${` that does not open a complete `${NAME}`; the message (one line) says why."""


def substitute(text: str, env: Mapping[str, str] | None = None) -> str:
    """Replace every `${NAME}` in `text`; an undefined NAME raises UndefinedVariable(NAME), a
    malformed `${...}` raises BadSubstitution."""
    start = text.find("${")
    if start < 0:
        return text
    env = os.environ if env is None else env
    parts = []
    pos = 0
    while start >= 0:
        m = _VAR.match(text, start)
        if m is None:
            raise BadSubstitution(_why(text, start))
        try:
            value = env[m.group(1)]
        except KeyError:
            raise UndefinedVariable(m.group(1)) from None
        parts.append(text[pos:start])
        parts.append(value)
        pos = m.end()
        start = text.find("${", pos)
    parts.append(text[pos:])
    return "".join(parts)


def _why(text: str, start: int) -> str:
    end = text.find("}", start + 2)
    if end < 0:
        return f"unterminated '${{' at offset {start} (expected ${{NAME}})"
    inner = text[start + 2:end]
    shown = repr(text[start:end + 1] if len(inner) <= 40 else text[start:start + 42] + "...")
    if not inner:
        return f"empty {shown} at offset {start} (expected ${{NAME}})"
    if "${" in inner:
        return f"nested {shown} at offset {start} (expected ${{NAME}}, not nested)"
    if ":" in inner:
        return (f"{shown} at offset {start}: defaults and modifiers are not supported "
                f"(expected ${{NAME}})")
    return (f"invalid variable name in {shown} at offset {start} "
            f"(expected ${{NAME}}, NAME = [A-Za-z_][A-Za-z0-9_]*)")
