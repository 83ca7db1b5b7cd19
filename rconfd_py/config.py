"""Loading and validating the config dir: `*.json` files mapping templates to their settings.

    { "TEMPLATE.jsonnet": { "dir": "...", "mode": "0640", "user": "name",
                            "secrets": { "backend:args:path": "var" },
                            "hooks": { "ready": "/abs/cmd args", "modified": "/abs/cmd args" },
                            "reload": ["/run/service/x"], "reload_signal": "hup",
                            "check": "/usr/sbin/nginx -t -c {file}" } }

Everything is validated here, once, so later stages never meet a malformed config. Errors name
the file and the key at fault.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path

from .errors import ConfigError
from .refs import CONTROL, RefError, SecretRef, parse_ref
from .subst import BadSubstitution, UndefinedVariable, substitute

DEFAULT_MODE = 0o640
TEMPLATE_KEYS = {"dir", "mode", "user", "secrets", "hooks", "reload", "reload_signal", "check"}
CHECK_PLACEHOLDER = "{file}"  # in a check's arguments: the staged (temporary) file's path
HOOK_KINDS = ("ready", "modified")
# s6-svc command letters by name (the s6 control fifo protocol).
RELOAD_SIGNALS = {"hup": "h", "usr1": "1", "usr2": "2", "term": "t", "restart": "r", "int": "i",
                  "quit": "q", "alrm": "a"}
# A mode is 1 to 4 ASCII octal digits ("0640", "640"), read as octal like rconfd does, and at
# most 0777: no setuid, setgid or sticky bit on a rendered file.
_MODE = re.compile(r"[0-7]{1,4}")
MAX_MODE = 0o777
# Control characters (C0, DEL, C1) in a path or user name: refused, they only ever come from a
# mistake or an attack, and would break one-line log messages.


class TemplateConf:
    """One template and what to do with its output (compared and hashed by identity)."""

    __slots__ = (
        "check",
        "dir",
        "hooks",
        "mode",
        "name",
        "refs",
        "reload",
        "reload_signal",
        "secrets",
        "source",
        "template",
        "user",
    )

    def __init__(self, *, name: str, source: Path, template: Path, dir: Path, mode: int,
                 user: str | None, secrets: tuple[tuple[SecretRef, str], ...],
                 hooks: Mapping[str, tuple[str, ...]], reload: tuple[str, ...],
                 reload_signal: str, check: tuple[str, ...] | None = None):
        self.name = name  # the key as written in the config file
        self.source = source  # the config file that declared it
        self.template = template  # absolute path of the jsonnet file
        self.dir = dir  # base of relative output paths
        self.mode = mode
        self.user = user
        self.secrets = secrets  # (ref, variable name)
        self.refs = tuple(ref for ref, _ in secrets)
        self.hooks = hooks  # kind -> argv
        self.reload = reload  # s6 service dirs to signal when files change
        self.reload_signal = reload_signal
        self.check = check  # argv run on each staged file before the batch is renamed

    @property
    def label(self) -> str:
        return f"{self.source.name}:{self.name}"


class Config:
    __slots__ = ("by_ref", "dir", "templates")

    def __init__(self, dir: Path, templates: tuple[TemplateConf, ...]):
        self.dir = dir
        self.templates = templates
        # every distinct secret, with the templates that use it (in config order; not to be
        # modified)
        self.by_ref: dict[SecretRef, list[TemplateConf]] = {}
        for t in templates:
            for ref in t.refs:
                self.by_ref.setdefault(ref, []).append(t)


def config_files(directory: Path) -> list[Path]:
    """The `*.json` regular files of the config dir, in lexicographic order."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except FileNotFoundError:
        raise ConfigError(f"config dir {directory} does not exist") from None
    except NotADirectoryError:
        raise ConfigError(f"config dir {directory} is not a directory") from None
    except OSError as e:
        raise ConfigError(f"config dir {directory}: {e.strerror}") from None
    return [Path(e.path) for e in entries if e.name.endswith(".json") and e.is_file()]


def load_config(directory: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Load and validate every config file of `directory`."""
    directory = Path(directory).absolute()
    env = os.environ if env is None else env
    templates: list[TemplateConf] = []
    seen: dict[Path, TemplateConf] = {}
    for path in config_files(directory):
        for conf in load_file(path, directory, env):
            if conf.template in seen:
                other = seen[conf.template]
                raise ConfigError(f"{path}: template {conf.name!r} is already declared in "
                                  f"{other.source}")
            seen[conf.template] = conf
            templates.append(conf)
    return Config(dir=directory, templates=tuple(templates))


class _Duplicate(Exception):
    pass


def _unique(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(key)
            seen.add(key)
    return out


def load_file(path: Path, config_dir: Path, env: Mapping[str, str]) -> list[TemplateConf]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}") from None
    try:
        text = data.decode("utf-8-sig")  # strict: no encoded surrogates, no other encoding
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not valid UTF-8 (byte {e.start})") from None
    try:
        raw = json.loads(text, parse_int=_int, object_pairs_hook=_unique)
    except _Duplicate as e:
        raise ConfigError(f"{path}: key {e.args[0]!r} appears twice in one object (JSON keeps "
                          f"only the last)") from None
    except ValueError as e:
        raise ConfigError(f"{path}: invalid JSON: {e}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid JSON: nested too deeply") from None
    if "\\u" in text:  # NUL and lone surrogates can only come from \u escapes
        problem = _bad_string(raw)
        if problem:
            raise ConfigError(f"{path}: {problem}")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a JSON object mapping templates to settings")
    return [_template(path, config_dir, name, body, env) for name, body in raw.items()]


def _int(text: str) -> int:
    # No config value is a number; refuse a huge one before int() spends time (and raises an
    # error that talks about sys.set_int_max_str_digits).
    if len(text) > 100:
        raise ValueError(f"a number with {len(text)} digits")
    return int(text)


def _template(path: Path, config_dir: Path, name: str, body: object,
              env: Mapping[str, str]) -> TemplateConf:
    where = f"{path}: {name!r}"

    def fail(key: str, msg: str) -> ConfigError:
        return ConfigError(f"{where}.{key}: {msg}" if key else f"{where}: {msg}")

    if not name:
        raise fail("", "empty template path")
    if CONTROL.search(name):
        raise fail("", "the template path contains a control character")
    if not isinstance(body, dict):
        raise fail("", "expected an object with dir, mode, user, secrets, hooks")
    unknown = sorted(set(body) - TEMPLATE_KEYS)
    if unknown:
        key = unknown[0] if unknown[0].isidentifier() else repr(unknown[0])
        raise fail(key, f"unknown key (allowed: {', '.join(sorted(TEMPLATE_KEYS))})")

    def string(key: str, default: str | None) -> str | None:
        val = body.get(key, default)
        if val is not None and not isinstance(val, str):
            raise fail(key, "expected a string")
        return val

    def subst(key: str, text: str) -> str:
        try:
            value = substitute(text, env)
        except UndefinedVariable as e:
            raise fail(key, f"undefined variable ${{{e.args[0]}}}") from None
        except BadSubstitution as e:
            raise fail(key, f"malformed ${{...}}: {e}") from None
        if value is not text and "\0" in value:
            raise fail(key, "a NUL byte after ${VAR} substitution")
        return value

    def no_control(key: str, value: str) -> str:
        if CONTROL.search(value):
            raise fail(key, "contains a control character (newline, tab, ...)")
        return value

    template = Path(name) if name.startswith("/") else config_dir / name
    out_dir = no_control("dir", subst("dir", string("dir", "") or ""))
    out = Path(out_dir) if out_dir.startswith("/") else config_dir / out_dir

    mode_text = string("mode", None)
    mode = DEFAULT_MODE
    if mode_text is not None:
        if not _MODE.fullmatch(mode_text):
            raise fail("mode", f"bad mode {mode_text!r} (expected 1 to 4 octal digits, "
                               f"like \"0640\" or \"640\")")
        mode = int(mode_text, 8)
        if mode > MAX_MODE:
            raise fail("mode", f"bad mode {mode_text!r}: setuid, setgid and sticky bits are not "
                               f"allowed (expected at most \"0777\", like \"0640\")")

    user = string("user", None) or None
    if user is not None:
        no_control("user", user)
        import pwd

        try:
            pwd.getpwnam(user)
        except KeyError:
            raise fail("user", f"no such user {user!r}") from None

    secrets_raw = body.get("secrets", {})
    if not isinstance(secrets_raw, dict):
        raise fail("secrets", "expected an object mapping secret paths to variable names")
    secrets: list[tuple[SecretRef, str]] = []
    names: set[str] = set()
    for key, var in secrets_raw.items():
        if not isinstance(var, str) or not var:
            raise fail(f"secrets[{key!r}]", "the variable name must be a non-empty string")
        if var in names:
            raise fail(f"secrets[{key!r}]", f"variable name {var!r} is used twice")
        names.add(var)
        try:
            ref = parse_ref(subst(f"secrets[{key!r}]", key))
        except RefError as e:
            raise fail(f"secrets[{key!r}]", str(e)) from None
        secrets.append((ref, var))

    hooks_raw = body.get("hooks", {})
    if hooks_raw is None:
        hooks_raw = {}
    if not isinstance(hooks_raw, dict):
        raise fail("hooks", "expected an object with ready and/or modified")
    hooks: dict[str, tuple[str, ...]] = {}
    for kind, cmd in hooks_raw.items():
        if kind not in HOOK_KINDS:
            shown = kind if kind.isidentifier() else repr(kind)
            raise fail(f"hooks.{shown}", f"unknown hook (allowed: {', '.join(HOOK_KINDS)})")
        if cmd is None or cmd == "":
            continue
        hooks[kind] = _command(cmd, lambda msg, k=kind: fail(f"hooks.{k}", msg))

    reload_raw = body.get("reload", [])
    if isinstance(reload_raw, str):
        reload_raw = [reload_raw]
    if not isinstance(reload_raw, list) or not all(isinstance(d, str) for d in reload_raw):
        raise fail("reload", "expected a list of s6 service directories")
    reload = tuple(no_control("reload", subst("reload", d)) for d in reload_raw)
    for d in reload:
        if not d.startswith("/"):
            raise fail("reload", f"service directory {d!r} must be absolute")
    signal = (string("reload_signal", "hup") or "hup").lower()
    if signal not in RELOAD_SIGNALS:
        raise fail("reload_signal", f"unknown signal {signal!r} "
                   f"(allowed: {', '.join(RELOAD_SIGNALS)})")

    check_raw = body.get("check")
    check = (None if check_raw is None or check_raw == "" else
             _command(check_raw, lambda msg: fail("check", msg)))

    return TemplateConf(
        name=name, source=path, template=template, dir=out, mode=mode, user=user,
        secrets=tuple(secrets), hooks=hooks, reload=reload, reload_signal=signal, check=check,
    )


def _bad_string(value: object) -> str:
    """Why a string (key or value) anywhere in the document is unusable, or "" (iterative: a
    document nested as deeply as json accepts must not exhaust the stack here)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v)
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, str):
            if "\0" in v:
                return "a string contains a NUL byte"
            try:
                v.encode()
            except UnicodeEncodeError as e:
                return (f"a string contains a lone surrogate \\u{ord(v[e.start]):04x} "
                        f"(not valid Unicode)")
    return ""


def _command(cmd: object, fail) -> tuple[str, ...]:
    """A hook command: a string split like a shell would, or a list of arguments."""
    if isinstance(cmd, str):
        try:
            argv = shlex.split(cmd)
        except ValueError as e:
            raise fail(f"cannot split command: {e}") from None
    elif isinstance(cmd, list) and all(isinstance(a, str) for a in cmd):
        argv = list(cmd)
    else:
        raise fail("expected a command string or a list of arguments")
    if not argv or not argv[0].startswith("/"):
        raise fail("the command must be an absolute path")
    return tuple(argv)
