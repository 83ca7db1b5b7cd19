"""A service image FROM the s6 layer: one s6 service that starts once rconfd-py is ready, runs as
its own user, and gets SIGHUP when rconfd-py rewrites its config. `rconfd-py image service`."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from .. import __version__
from ..errors import ConfigError, OutputError
from .layers import ALPINE, DEFAULT_S6_TAG, Distro, fill, image_ref, write_context
from .scripts import finish_script, run_script

TEMPLATE = """\
# rconfd-py golden image, a service image: @NAME@ under s6, started once rconfd-py is ready.
# Written by `rconfd-py image service` (rconfd-py @VERSION@), FROM the s6 layer.
ARG BASE=@BASE@
FROM ${BASE}
@PACKAGES@
@ADD_USER@
@COPIES@
COPY services.d/@NAME@/ /etc/services.d/@NAME@/
@RCONFD@
# Sanity: the scripts' interpreter, the service's command, the tools its run script needs.
RUN test -x /usr/bin/execlineb \\
 && test -x @COMMAND@ \\
 && for c in s6-svwait s6-setuidgid with-contenv; do \\
      PATH="/command:$PATH" command -v "$c" >/dev/null || { echo "missing: $c" >&2; exit 1; }; \\
    done
"""

ADD_USER = """\
# The service's own user (s6-setuidgid drops to it; rconfd-py writes its config for it).
RUN id @USER@ >/dev/null 2>&1 || { @ADD@; }"""

RCONFD = """\
# rconfd-py renders @NAME@'s config from these at start and HUPs it when the files change.
COPY rconfd/ /etc/rconfd/"""

_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_PACKAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._@~<>=-]*")


def _check(flag: str, value: str, pattern: re.Pattern, what: str) -> str:
    if not pattern.fullmatch(value):
        raise ConfigError(f"{flag}: bad {what} {value!r}")
    return value


def parse_copy(spec: str) -> tuple[Path, str]:
    """SRC:DEST -> (SRC, DEST); DEST absolute (ending in / for a directory)."""
    src, sep, dest = spec.rpartition(":")
    if not sep or not src or not dest.startswith("/"):
        raise ConfigError(f"--copy {spec}: expected SRC:DEST with an absolute DEST")
    if not Path(src).exists():
        raise ConfigError(f"--copy {spec}: {src} does not exist")
    return Path(src), dest


def rconfd_files(name: str, config: str | Path, templates: Sequence[str | Path]
                 ) -> dict[str, bytes]:
    """/etc/rconfd's files for ``name``: NAME.json (``config``, each entry reloading
    /run/service/NAME) and the templates it names, each given once."""
    config = Path(config)
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"--rconfd-config {config}: {e}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(f"--rconfd-config {config}: expected an object of template settings")
    given = {Path(t).name: Path(t) for t in templates}
    if len(given) != len(templates):
        raise ConfigError("--template: two templates with the same file name")
    if missing := sorted(set(data) - set(given)):
        raise ConfigError(f"--rconfd-config {config} names {', '.join(missing)}: "
                          "give each with --template")
    if extra := sorted(set(given) - set(data)):
        raise ConfigError(f"--template {', '.join(extra)}: not in --rconfd-config {config}")
    service = f"/run/service/{name}"
    for body in data.values():
        reload = body.get("reload", [])
        reload = [reload] if isinstance(reload, str) else list(reload)
        body["reload"] = reload if service in reload else [*reload, service]
    files = {f"{name}.json": (json.dumps(data, indent=2) + "\n").encode()}
    try:
        files.update({key: path.read_bytes() for key, path in given.items()})
    except OSError as e:
        raise ConfigError(f"--template: {e}") from None
    return files


def generate(name: str, command: str, *, base: str = DEFAULT_S6_TAG,
           packages: Sequence[str] = (), copies: Sequence[tuple[str, str]] = (),
           user: str | None = None, rconfd: bool = False, distro: Distro = ALPINE) -> str:
    """The service image's Containerfile; ``copies`` are (path in the context, DEST)."""
    user = user or name
    install = distro.install.format(packages=" ".join(shlex.quote(p) for p in packages))
    return fill(TEMPLATE, {
        "@NAME@": name, "@VERSION@": __version__, "@BASE@": image_ref("--from", base),
        "@PACKAGES@": install if packages else "",
        "@ADD_USER@": fill(ADD_USER, {"@ADD@": distro.add_user.format(user=user),
                                      "@USER@": user}).rstrip("\n"),
        "@COPIES@": "\n".join(f"COPY {json.dumps([src, dest])}" for src, dest in copies),
        "@RCONFD@": fill(RCONFD, {"@NAME@": name}).rstrip("\n") if rconfd else "",
        "@COMMAND@": shlex.quote(command),
    })


def write_service_context(dest: str | Path, name: str, exec_: str, *,
                          base: str = DEFAULT_S6_TAG, packages: Sequence[str] = (),
                          copies: Sequence[str] = (), user: str | None = None,
                          config: str | None = None, critical: bool = False,
                          rconfd_config: str | Path | None = None,
                          templates: Sequence[str | Path] = (), distro: Distro = ALPINE) -> Path:
    """The service image's build context in ``dest``: Containerfile, services.d/NAME/ (run,
    finish), rconfd/ (config and templates) and files/ (--copy sources)."""
    _check("NAME", name, _NAME, "service name")
    if name == "rconfd":
        raise ConfigError("NAME: rconfd is the s6 layer's own service")
    user = _check("--user", user or name, _USER, "user name")
    for p in packages:
        _check("--package", p, _PACKAGE, "package")
    argv = shlex.split(exec_)
    if not argv or not argv[0].startswith("/"):
        raise ConfigError(f"--exec {exec_!r}: the command must start with an absolute path")
    config = config or f"/etc/{name}/{name}.conf"
    if not PurePosixPath(config).is_absolute():
        raise ConfigError(f"--config {config}: must be absolute")
    if templates and rconfd_config is None:
        raise ConfigError("--template needs --rconfd-config")
    rconfd = rconfd_files(name, rconfd_config, templates) if rconfd_config is not None else {}
    sources = [parse_copy(spec) for spec in copies]
    staged = [(f"files/{i}/{src.name}" + ("/" if src.is_dir() else ""), dest)
              for i, (src, dest) in enumerate(sources)]
    text = generate(name, argv[0], base=base, packages=packages, copies=staged, user=user,
                  rconfd=bool(rconfd), distro=distro)
    scripts = {"run": run_script(name, argv, user=user, config=config)}
    if critical:
        scripts["finish"] = finish_script(name)

    def populate(ctx: Path) -> None:
        svc = ctx / "services.d" / name
        svc.mkdir(parents=True)
        for script, body in scripts.items():
            (svc / script).write_text(body)
            (svc / script).chmod(0o755)
        if rconfd:
            (ctx / "rconfd").mkdir()
            for fname, data in rconfd.items():
                (ctx / "rconfd" / fname).write_bytes(data)
        for (src, _), (staged_path, _) in zip(sources, staged):
            target = ctx / staged_path.rstrip("/")
            target.parent.mkdir(parents=True)
            if src.is_dir():
                shutil.copytree(src, target, symlinks=True)
            else:
                shutil.copy2(src, target)

    try:
        return write_context(dest, text, ("services.d", "rconfd", "files"), populate)
    except shutil.Error as e:
        raise OutputError(f"cannot write the build context {dest}: {e}") from None
