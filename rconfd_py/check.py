"""`rconfd-py check`: validate a config dir offline, report every problem, touch nothing.

Loading the config already checks the JSON schema, secret-path grammar, ${VAR}s, modes, users
and hook and check paths; this adds what needs the filesystem: templates exist and parse, hook and exe
commands (and each template's check) are executable, file secrets exist.
"""

from __future__ import annotations

import logging
import os

from .config import load_config
from .errors import EXIT_OK, ConfigError, RconfdError
from .render import parse_check
from .settings import Settings

log = logging.getLogger(__name__)


def check(settings: Settings) -> int:
    config = load_config(settings.dir)  # raises on the first schema error, naming file and key
    problems: list[RconfdError] = []
    for t in config.templates:
        try:
            parse_check(t.template, settings.jpath, settings.engine)
        except RconfdError as e:
            problems.append(e)
        for kind, argv in t.hooks.items():
            if not _executable(argv[0]):
                problems.append(ConfigError(f"{t.source}: {t.name!r}.hooks.{kind}: {argv[0]} "
                                            f"is not an executable file"))
        if t.check and not _executable(t.check[0]):
            problems.append(ConfigError(f"{t.source}: {t.name!r}.check: {t.check[0]} is not an "
                                        f"executable file"))
        for ref in t.refs:
            if ref.backend == "exe" and not _executable(ref.argv[0]):
                problems.append(ConfigError(f"{t.source}: {t.name!r}.secrets[{ref.text!r}]: "
                                            f"{ref.argv[0]} is not an executable file"))
            if ref.backend == "file" and not os.path.isfile(ref.path):
                what = "is not a regular file" if os.path.lexists(ref.path) else "does not exist"
                problems.append(ConfigError(f"{t.source}: {t.name!r}.secrets[{ref.text!r}]: "
                                            f"{ref.path} {what}"))
    for p in problems:
        log.error("%s", p)
    if problems:
        return problems[0].exit_code
    log.info("%s: %d template(s), %d secret(s): ok", config.dir, len(config.templates),
             len(config.by_ref))
    return EXIT_OK


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)
