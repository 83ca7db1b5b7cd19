"""`--dry-run`: what a run would write, shown and never written.

For each file of each rendered template: its path, mode and owner, and a unified diff against
the file on disk, on stdout, every secret value masked. Nothing is written, no hook or reload
runs, no readiness is signalled, no check runs (there is no staged file).

The file on disk is read the way the writer looks at it (output.py): its directories reached
with fs.open_dir (no link someone else planted is followed), the file itself opened with
O_NOFOLLOW | O_NONBLOCK and read only if it is a regular file with one link; anything else (a
symbolic link, FIFO, device, socket, hard link) is named, never read: the write would replace
the name.

Masking: the new content is masked by the redactor (every value fetched, as the logs are). The
file on disk may hold *older* values the run never fetched (a rotated database password): in
a changed line, every part aligned with a secret of the new line is
masked too (the equal characters inside a secret included), and a removed line facing new
lines that hold a secret is masked whole.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

from .errors import OutputError, RconfdError
from .fs import FILE_FLAGS, UnsafePath, open_dir, read_capped
from .redact import MASK, escape, redactor, safe

MAX_READ = 16 << 20  # bytes of a current file read for the diff


def show(rendered: list, out=None) -> None:
    """Print every file of `rendered` ([(TemplateConf, {path: bytes})]; the pipeline already
    refused two templates writing one file); raise the first error a real run would meet (an
    output that cannot be reached or is a directory: OutputError) after printing the rest."""
    out = out or sys.stdout
    errors: list[RconfdError] = []
    for t, files in rendered:
        owner = t.user or "(unchanged)"
        for path, data in files.items():
            name = safe(str(path))  # an output key may hold a secret or a control character
            try:
                current = _current(path)
            except OutputError as e:
                errors.append(e)
                out.write(f"=== {name} (template {t.label}): {safe(str(e))}\n")
                continue
            head = f"=== {name} mode {t.mode:04o} owner {owner} (template {t.label})"
            if isinstance(current, str):  # not a regular file, or absent: named, not read
                out.write(f"{head}: {current}\n")
                out.writelines(_diff(b"", data, path, new_file=True))
            elif current == data:
                out.write(f"{head}: unchanged\n")
            else:
                out.write(f"{head}: changed\n")
                out.writelines(_diff(current, data, path))
    out.flush()
    if errors:
        import logging

        log = logging.getLogger(__name__)
        for e in errors[1:]:
            log.error("%s", e)
        raise errors[0]


def _current(path: Path) -> bytes | str:
    """The current content of `path`, or a string saying what stands there instead."""
    try:
        fd_dir = open_dir(str(path.parent), create=False)
    except UnsafePath as e:
        ancestor = path.parent
        while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if ancestor != path.parent:
            try:  # the nearest existing ancestor is reachable: the write would create the rest
                os.close(open_dir(str(ancestor), create=False))
                return "new file (its directory would be created)"
            except UnsafePath as e2:
                raise OutputError(f"cannot write {path}: {e2}") from None
        raise OutputError(f"cannot write {path}: {e}") from None
    try:
        try:
            fd = os.open(path.name, FILE_FLAGS, dir_fd=fd_dir)
        except FileNotFoundError:
            return "new file"
        except OSError as e:
            if e.errno == errno.EISDIR:
                raise OutputError(f"cannot write {path}: it is a directory") from None
            what = "a symbolic link" if e.errno == errno.ELOOP else f"not readable ({e.strerror})"
            return f"{what}, not read: the write would replace it"
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise OutputError(f"cannot write {path}: it is a directory")
            if not stat.S_ISREG(st.st_mode):
                return "not a regular file, not read: the write would replace it"
            if st.st_nlink != 1:
                return "a file with several hard links, not read: the write would replace it"
            data = read_capped(fd, MAX_READ) if st.st_size <= MAX_READ else None
            if data is None:
                return f"a file of more than {MAX_READ} bytes, not read: the write would replace it"
            return data
        finally:
            os.close(fd)
    finally:
        os.close(fd_dir)


def _secret_spans(line: str) -> list[tuple[int, int]]:
    """Where the redactor masks something in `line` (character spans)."""
    return redactor.spans(line)


def _mask_old(old: str, new: str) -> str:
    """An old line facing `new`: every part of it aligned with a secret of `new` (an older
    value of it: the differing parts, and the equal ones inside the secret), then the
    redactor's masking."""
    import difflib

    spans = _secret_spans(new)
    if not spans:
        return redactor.redact(old)
    hidden = [False] * len(old)
    sm = difflib.SequenceMatcher(None, old, new, autojunk=False)
    ops = sm.get_opcodes()
    for a, b in spans:  # what of `old` faces this secret: hidden from its first to its last
        faced = []
        for tag, i1, i2, j1, j2 in ops:
            if tag == "equal":  # the same characters: those inside the secret
                lo, hi = max(a, j1), min(b, j2)
                if lo < hi:
                    faced += [i1 + lo - j1, i1 + hi - j1 - 1]
            elif a <= j2 and j1 <= b and i2 > i1:  # a change touching the secret: all of it
                faced += [i1, i2 - 1]
        if faced:
            for k in range(min(faced), max(faced) + 1):
                hidden[k] = True
    parts, k = [], 0
    while k < len(old):
        if hidden[k]:
            while k < len(old) and hidden[k]:
                k += 1
            parts.append(MASK)
        else:
            parts.append(old[k])
            k += 1
    return redactor.redact("".join(parts))


def _diff(old: bytes, new: bytes, path: Path, new_file: bool = False) -> list[str]:
    import difflib

    a = old.decode("utf-8", "replace").splitlines()
    b = new.decode("utf-8", "replace").splitlines()
    shown_a = list(a)
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag != "replace":
            continue
        block_secret = any(_secret_spans(line) for line in b[j1:j2])
        for k in range(i1, i2):
            j = j1 + (k - i1)
            if j < j2:
                shown_a[k] = _mask_old(a[k], b[j])
            elif block_secret:
                shown_a[k] = MASK
    for k in range(len(a)):
        if shown_a[k] is a[k]:
            shown_a[k] = redactor.redact(a[k])
    shown_b = [redactor.redact(line) for line in b]
    # the diff of the masked texts, its hunks from the raw texts' alignment: a masked pair of
    # lines that only differ by a secret stays a change (the value rotated)
    lines = []
    for group in sm.get_grouped_opcodes(3):
        first, last = group[0], group[-1]
        lines.append(f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@\n")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                lines += [f" {_line(x)}\n" for x in shown_b[j1:j2]]
                continue
            lines += [f"-{_line(x)}\n" for x in shown_a[i1:i2]]
            lines += [f"+{_line(x)}\n" for x in shown_b[j1:j2]]
    if not lines:
        return []
    name = safe(str(path))  # an output key may hold a secret
    return [f"--- {'/dev/null' if new_file else name}\n", f"+++ {name}\n", *lines]


def _line(text: str) -> str:
    """A masked line, its control characters escaped (and what escaping completed masked)."""
    escaped = escape(text)
    return text if escaped is text else redactor.redact_escaped(escaped)


def _range(start: int, stop: int) -> str:
    """A unified diff's range (difflib's own rule)."""
    length = stop - start
    beginning = start + 1
    if not length:
        beginning -= 1
    return str(beginning) if length == 1 else f"{beginning},{length}"
