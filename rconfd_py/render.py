"""Jsonnet engines behind one function: template + secrets -> {output path: file content}.

`rjsonnet` (jrsonnet, the engine rconfd uses) is the default; the official binding (`jsonnet`,
optional extra) is selectable. Engines are imported on first use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import logs, redact
from .errors import ConfigError, TemplateError
from .refs import CONTROL

ENGINES = ("rjsonnet", "jsonnet")
_LOCATION = re.compile(r"\S+:\d+(:\d+(-\d+)?)?")
# Control characters (C0, DEL, C1) in an output file name: refused (a newline would also break
# one-line log messages).


def _engine(name: str):
    try:
        if name == "rjsonnet":
            import rjsonnet

            return rjsonnet.evaluate_file, rjsonnet.evaluate_snippet
        if name == "jsonnet":
            import _jsonnet

            return _jsonnet.evaluate_file, _jsonnet.evaluate_snippet
    except ImportError:
        extra = " (pip install 'rconfd-py[jsonnet]')" if name == "jsonnet" else ""
        raise ConfigError(f"jsonnet engine {name!r} is not installed{extra}") from None
    raise ConfigError(f"unknown jsonnet engine {name!r} (expected one of {', '.join(ENGINES)})")


def evaluate(template: Path, secrets: Mapping[str, object], jpath: Sequence[str] = (),
             engine: str = "rjsonnet") -> dict[str, object]:
    """Evaluate `template` with `std.extVar('secrets')`; return its root object.

    Every failure is a one-line TemplateError naming the template (and the output key or the
    secret variable when known), whatever the engine did: a runtime error, output that is not
    JSON (rjsonnet prints a non-finite number as a bare `inf`/`NaN`), output that is not UTF-8
    (the official engine and a lone surrogate) or nested too deeply to load.
    """
    evaluate_file, _ = _engine(engine)
    try:
        ext = json.dumps(secrets, allow_nan=False)
    except (ValueError, RecursionError):
        why = _bad_secret(secrets) or "the secrets cannot be handed to jsonnet"
        raise TemplateError(f"{template}: {why}") from None
    if not template.is_file():  # the official engine aborts the process on a directory
        raise TemplateError(f"{template}: no such template file")
    try:
        with logs.EngineOutput():  # std.trace: logged, masked, not printed raw
            out = evaluate_file(str(template), jpathdir=list(jpath), ext_codes={"secrets": ext})
    except RuntimeError as e:
        if "<extvar:secrets>" in str(e) or "\\ud" in ext:  # a secret jsonnet cannot read
            why = _bad_secret(secrets)
            if why:
                raise TemplateError(f"{template}: {why}") from None
        # masked whole, before it is cut: a piece of a secret would no longer be recognised
        message = redact.redactor.redact(str(e))
        err = TemplateError(f"{template}: {trim_error(message)}")
        err.detail = message
        raise err from None
    except UnicodeError:  # the official binding decoding a lone surrogate it produced
        raise TemplateError(f"{template}: the output is not valid Unicode (a string holds a "
                            f"lone surrogate, e.g. std.char(55296))") from None
    root = _load_output(template, out)
    if not isinstance(root, dict):
        raise TemplateError(f"{template}: the template must evaluate to an object whose keys are "
                            f"output files, not {type(root).__name__}")
    return root


class _NonFinite(float):
    """Stands for a NaN or infinite number in the engine's output, to be reported by key."""


# A JSON string, or a bare non-finite number as rjsonnet prints it.
# compiled (and cached by re) on the error path only
_NON_FINITE = r'"(?:[^"\\]|\\.)*"|(-?)\b(inf|NaN)\b'


def _load_output(template: Path, out: str) -> object:
    found: list[str] = []

    def constant(text: str) -> float:
        found.append(text)
        return _NonFinite(text)

    try:
        root = json.loads(out, parse_constant=constant)
    except RecursionError:
        raise TemplateError(f"{template}: the output is nested too deeply") from None
    except ValueError as e:
        # rjsonnet prints inf, -inf and NaN bare: make them JSON constants to find the key.
        fixed = re.sub(
            _NON_FINITE,
            lambda m: m.group(0) if m.group(2) is None else
            (m.group(1) + "Infinity" if m.group(2) == "inf" else "NaN"), out)
        try:
            root = json.loads(fixed, parse_constant=constant)
        except (ValueError, RecursionError):
            root = None
        if not found:
            raise TemplateError(f"{template}: the engine's output is not JSON: {e}") from None
    if found:
        where = ""
        if isinstance(root, dict):
            where = next((f"{k!r}: " for k, v in root.items() if _holds_non_finite(v)), "")
        raise TemplateError(f"{template}: {where}not a finite number ({found[0]}): "
                            f"JSON cannot hold it")
    return root


def _holds_non_finite(value: object) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, _NonFinite):
            return True
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def _bad_secret(secrets: Mapping[str, object]) -> str:
    """Which secret cannot be handed to jsonnet, and why ("" if none)."""
    for var, value in secrets.items():
        try:
            json.dumps(value, allow_nan=False, ensure_ascii=False).encode()
        except ValueError as e:
            why = ("holds a lone surrogate (not valid Unicode)"
                   if isinstance(e, UnicodeError) else "holds a NaN or infinite number")
            return f"secret {var!r} {why}"
        except RecursionError:
            return f"secret {var!r} is nested too deeply"
    return ""


def render_files(template: Path, secrets: Mapping[str, object], jpath: Sequence[str] = (),
           engine: str = "rjsonnet") -> dict[str, bytes]:
    """Evaluate and manifest: strings as-is ending with one newline, other values as JSON."""
    files: dict[str, bytes] = {}
    for name, value in evaluate(template, secrets, jpath, engine).items():
        if not name or CONTROL.search(name):
            raise TemplateError(f"{template}: invalid output file name {name!r}")
        try:
            if isinstance(value, str):
                text = value if value.endswith("\n") else value + "\n"
            else:
                text = json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
            files[name] = text.encode()
            name.encode()
        except UnicodeEncodeError:
            raise TemplateError(f"{template}: {name!r}: not valid Unicode (a lone "
                                f"surrogate)") from None
        except (ValueError, RecursionError) as e:
            why = "nested too deeply" if isinstance(e, RecursionError) else str(e)
            raise TemplateError(f"{template}: {name!r}: cannot be written as JSON: {why}") from None
    return files


# Errors that do not depend on the secrets: the template cannot be parsed or imported.
_STATIC = ("syntax error", "static error", "can't resolve", "couldn't open import")


def parse_check(template: Path, jpath: Sequence[str] = (), engine: str = "rjsonnet") -> None:
    """Offline check: the template exists, parses and its top-level imports resolve.

    Without secrets the template cannot be evaluated, so errors that depend on the values
    (missing fields, runtime errors) are not reported here.
    """
    if not template.is_file():
        raise ConfigError(f"template {template} does not exist")
    _, evaluate_snippet = _engine(engine)
    try:
        evaluate_snippet("<check>", f"std.type(import {json.dumps(str(template))})",
                         jpathdir=list(jpath), ext_codes={"secrets": "{}"})
    except RuntimeError as e:
        if str(e).lower().startswith(_STATIC):
            raise TemplateError(f"{template}: {trim_error(redact.redactor.redact(str(e)))}"
                                ) from None


def trim_error(message: str) -> str:
    """One line: the engine's first message line plus the first file:line location. Lines end
    at "\\n" only: a "\\u2028" or "\\x1e" a template's error holds stays in its line, which the
    log escapes (masked before: `message` is cut here)."""
    lines = [ln.strip() for ln in message.strip().split("\n") if ln.strip()]
    if not lines:
        return "evaluation failed"
    head = lines[0]
    for ln in lines[1:]:
        m = _LOCATION.search(ln)
        if m and not ln.startswith(("field <", "During", "argument <")):
            return f"{head} (at {m.group(0)})"
    return head
