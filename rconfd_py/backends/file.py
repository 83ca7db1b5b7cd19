"""`file:str|js:PATH` — a file's content (a relative PATH is relative to the working directory,
as in rconfd).

Read as root from directories a service user may own: the path is reached without following
anybody else's symbolic links (fs.py), and only a regular file is read (a FIFO or device planted
there would hang the read or never end), up to MAX_SIZE.
"""

from ..errors import SourceError
from ..fs import UnsafePath, read_file
from ..refs import SecretRef
from ..secret import Secret
from . import decode

MAX_SIZE = 16 * 1024 * 1024


def fetch(ref: SecretRef, now: float) -> Secret:
    try:
        data = read_file(ref.path, MAX_SIZE)
    except UnsafePath as e:
        raise SourceError(f"{ref}: cannot read {ref.path}: {e}") from None
    except OSError as e:
        raise SourceError(f"{ref}: cannot read {ref.path}: {e.strerror}") from None
    if data is None:
        raise SourceError(f"{ref}: {ref.path} is larger than {MAX_SIZE >> 20} MiB")
    try:
        text = data.decode("utf-8")
        text = text.replace("\r\n", "\n").replace("\r", "\n")  # as open() in text mode did
    except UnicodeDecodeError:
        raise SourceError(f"{ref}: {ref.path} is not UTF-8 text") from None
    return Secret(ref=ref, value=decode(ref, text), fetched_at=now)
