"""`file:str|js:PATH` — a file's content (a relative PATH is relative to the working directory,
as in rconfd)."""

import time

from ..errors import SourceError
from ..refs import SecretRef
from ..secret import Secret
from . import decode


def fetch(ref: SecretRef) -> Secret:
    try:
        with open(ref.path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise SourceError(f"{ref}: cannot read {ref.path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise SourceError(f"{ref}: {ref.path} is not UTF-8 text") from None
    return Secret(ref=ref, value=decode(ref, text), fetched_at=time.time())
