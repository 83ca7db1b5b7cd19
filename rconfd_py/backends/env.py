"""`env:str|js:NAME` — an environment variable."""

import os

from ..errors import SourceError
from ..refs import SecretRef
from ..secret import Secret
from . import decode


def fetch(ref: SecretRef, now: float) -> Secret:
    try:
        text = os.environ[ref.path]
    except KeyError:
        raise SourceError(f"{ref}: environment variable {ref.path} is not set") from None
    return Secret(ref=ref, value=decode(ref, text), fetched_at=now)
