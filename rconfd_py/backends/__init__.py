"""Secret backends: each module fetches one kind of ref and returns a `Secret`.

`fetch(ref, sources)` dispatches on `ref.backend`; `Sources` carries what the backends need
(the Vault token store, whether to drop privileges for exe).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from ..errors import SourceError
from ..refs import SecretRef
from ..secret import Secret

TYPE_CHECKING = False  # typing costs ~8 ms of start-up; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

    from ..vault.auth import TokenStore


class Sources:
    """What the backends need: the Vault token store (created only when a vault ref exists), the
    exe timeout, and the process's clock (a secret's fetch time)."""

    __slots__ = ("clock", "exe_timeout", "vault")

    def __init__(self, vault: TokenStore | None = None, exe_timeout: float = 30.0,
                 clock: Callable[[], float] = time.time):
        self.vault = vault
        self.exe_timeout = exe_timeout
        self.clock = clock


def fetch(ref: SecretRef, sources: Sources) -> Secret:
    if ref.backend == "vault":
        from . import vault

        return vault.fetch(ref, sources)
    if ref.backend == "env":
        from . import env

        return env.fetch(ref, sources.clock())
    if ref.backend == "file":
        from . import file

        return file.fetch(ref, sources.clock())
    from . import exe

    return exe.fetch(ref, sources)


def decode(ref: SecretRef, text: str) -> Any:
    """Apply the ref's format: `str` keeps the text, `js` parses it as JSON."""
    if ref.fmt == "str":
        return text
    try:
        return json.loads(text)
    except RecursionError:
        raise SourceError(f"{ref}: JSON nested too deeply") from None
    except ValueError as e:  # the message carries a position, never the content
        raise SourceError(f"{ref}: not valid JSON (line {e.lineno} column {e.colno})"
                          if hasattr(e, "lineno") else f"{ref}: not valid JSON") from None
