"""`${NAME}` substitution from the environment, as rconfd does in `dir` and secret paths."""

import os
import re
from collections.abc import Mapping

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class UndefinedVariable(KeyError):
    """Raised with the name of the first undefined variable."""


def substitute(text: str, env: Mapping[str, str] | None = None) -> str:
    """Replace every `${NAME}` in `text`; an undefined NAME raises UndefinedVariable(NAME)."""
    env = os.environ if env is None else env

    def repl(m: re.Match) -> str:
        try:
            return env[m.group(1)]
        except KeyError:
            raise UndefinedVariable(m.group(1)) from None

    return _VAR.sub(repl, text)
