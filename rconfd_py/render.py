"""Jsonnet engines behind one function: template + secrets -> {output path: file content}.

`rjsonnet` (jrsonnet, the engine rconfd uses) is the default; the official binding (`jsonnet`,
optional extra) is selectable. Engines are imported on first use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import ConfigError, TemplateError

ENGINES = ("rjsonnet", "jsonnet")
_LOCATION = re.compile(r"\S+:\d+(:\d+(-\d+)?)?")


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
    """Evaluate `template` with `std.extVar('secrets')`; return its root object."""
    evaluate_file, _ = _engine(engine)
    try:
        out = evaluate_file(str(template), jpathdir=list(jpath),
                            ext_codes={"secrets": json.dumps(secrets)})
    except RuntimeError as e:
        err = TemplateError(f"{template}: {trim_error(str(e))}")
        err.detail = str(e)
        raise err from None
    root = json.loads(out)
    if not isinstance(root, dict):
        raise TemplateError(f"{template}: the template must evaluate to an object whose keys are "
                            f"output files, not {type(root).__name__}")
    return root


def render(template: Path, secrets: Mapping[str, object], jpath: Sequence[str] = (),
           engine: str = "rjsonnet") -> dict[str, bytes]:
    """Evaluate and manifest: strings as-is ending with one newline, other values as JSON."""
    files: dict[str, bytes] = {}
    for name, value in evaluate(template, secrets, jpath, engine).items():
        if not name or "\0" in name:
            raise TemplateError(f"{template}: invalid output file name {name!r}")
        if isinstance(value, str):
            text = value if value.endswith("\n") else value + "\n"
        else:
            text = json.dumps(value, indent=2, ensure_ascii=False) + "\n"
        files[name] = text.encode()
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
            raise TemplateError(f"{template}: {trim_error(str(e))}") from None


def trim_error(message: str) -> str:
    """One line: the engine's first message line plus the first file:line location."""
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    if not lines:
        return "evaluation failed"
    head = lines[0]
    for ln in lines[1:]:
        m = _LOCATION.search(ln)
        if m and not ln.startswith(("field <", "During", "argument <")):
            return f"{head} (at {m.group(0)})"
    return head
