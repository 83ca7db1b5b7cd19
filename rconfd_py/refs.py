"""Secret paths `backend:args:path`, parsed into immutable references.

    vault:ROLE[,GET|PUT|POST|LIST][,key=val]*:PATH
    env:str|js:NAME
    file:str|js:PATH
    exe:str|js[,static|dynamic]:/ABS/CMD ARGS

A ref is hashable and compares by what it fetches, so the engine fetches each distinct secret
once however many templates name it.
"""

from __future__ import annotations

import re
import shlex
from collections import namedtuple

BACKENDS = ("vault", "env", "file", "exe")
METHODS = ("GET", "PUT", "POST", "LIST")
FORMATS = ("str", "js")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # refused in paths, names, secret paths


class RefError(ValueError):
    """The secret path does not follow the grammar; the message says why."""


class SecretRef(namedtuple("SecretRef", "text backend path role method kwargs fmt dynamic",
                           defaults=("", "GET", (), "str", False))):
    """One secret to fetch (immutable, hashable: compared by what it fetches).

    text: the path as written (after ${VAR} substitution); backend: vault|env|file|exe;
    path: what to read; role: vault auth role whose token reads it; method: vault HTTP method;
    kwargs: vault request parameters ((key, value), ...); fmt: env/file/exe "str" keeps text,
    "js" parses JSON; dynamic: exe re-run at every render.

    (Named tuples, not dataclasses, for every record on the run path: importing dataclasses
    costs ~11 ms of start-up.)
    """

    __slots__ = ()

    @property
    def argv(self) -> list[str]:
        """exe: the command line split like a shell would (never run through a shell)."""
        return shlex.split(self.path)

    def __str__(self) -> str:
        return self.text


def parse_ref(text: str) -> SecretRef:
    """Parse one secret path; raise RefError with a precise reason."""
    bad = CONTROL.search(text)
    if bad:
        raise RefError(f"control character {bad.group()!r} at offset {bad.start()} "
                       f"(newline, tab, NUL, ... are not allowed in a secret path)")
    parts = text.split(":", 2)
    if len(parts) != 3:
        raise RefError("expected backend:args:path")
    backend, args_text, path = parts
    if backend not in BACKENDS:
        raise RefError(f"unknown backend {backend!r} (expected one of {', '.join(BACKENDS)})")
    if not path:
        raise RefError("empty path")
    args = args_text.split(",")
    if backend == "vault":
        return _parse_vault(text, args, path)
    fmt = args[0]
    if fmt not in FORMATS:
        raise RefError(f"{backend}: expected 'str' or 'js' as first argument, found {fmt!r}")
    dynamic = False
    if backend == "exe":
        if len(args) > 2:
            raise RefError("exe: too many arguments (expected str|js[,static|dynamic])")
        if len(args) == 2:
            if args[1] not in ("static", "dynamic"):
                raise RefError(f"exe: expected 'static' or 'dynamic', found {args[1]!r}")
            dynamic = args[1] == "dynamic"
        try:
            argv = shlex.split(path)
        except ValueError as e:
            raise RefError(f"exe: cannot split command: {e}") from None
        if not argv or not argv[0].startswith("/"):
            raise RefError("exe: the command must be an absolute path")
    elif len(args) > 1:
        raise RefError(f"{backend}: too many arguments (expected str|js)")
    return SecretRef(text=text, backend=backend, path=path, fmt=fmt, dynamic=dynamic)


def _parse_vault(text: str, args: list[str], path: str) -> SecretRef:
    role = args[0]
    if not role:
        raise RefError("vault: missing role (vault:ROLE[,METHOD][,key=val]*:PATH)")
    method = ""
    kwargs: list[tuple[str, str]] = []
    for arg in args[1:]:
        if "=" in arg:
            key, _, val = arg.partition("=")
            if not key:
                raise RefError(f"vault: empty key in {arg!r}")
            kwargs.append((key, val))
        elif arg.upper() in METHODS:
            if method:
                raise RefError(f"vault: two methods ({method}, {arg.upper()})")
            if kwargs:
                raise RefError("vault: the method must come before key=val arguments")
            method = arg.upper()
        else:
            raise RefError(f"vault: {arg!r} is neither a method ({'|'.join(METHODS)}) nor key=val")
    path = path.strip("/")
    path = path.removeprefix("v1/")
    if not path:
        raise RefError("vault: empty path")
    if any(seg in (".", "..", "") for seg in path.split("/")):
        raise RefError("vault: '.', '..' or an empty segment in the path")
    return SecretRef(
        text=text, backend="vault", path=path, role=role, method=method or "GET",
        kwargs=tuple(kwargs),
    )
