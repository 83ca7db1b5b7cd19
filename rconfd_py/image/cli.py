"""`rconfd-py image ...`: argument parsing, then the context writers or the container builder.

    Every command also takes [--distro alpine|debian] (debian: --s6-overlay-from required).
    rconfd-py image base [--base IMAGE] [--apk-repository URL --apk-key FILE]
                         [--mimalloc [--large-pages]] BUILD_OPTIONS
    rconfd-py image build [--from IMAGE] [--s6-overlay VERSION] [--s6-overlay-from FILE]...
                          [--wheel FILE] [--source DIR] BUILD_OPTIONS
    rconfd-py image service NAME --exec CMD [--from IMAGE] [--package PKG]... [--copy SRC:DEST]...
                          [--user USER] [--config PATH] [--critical]
                          [--rconfd-config FILE --template FILE...] BUILD_OPTIONS
    rconfd-py image containerfile [--from IMAGE] [--s6-overlay VERSION] [--s6-overlay-from FILE]...
                          [--context]
    rconfd-py image context DIR [--from IMAGE] [--s6-overlay VERSION] [--s6-overlay-from FILE]...
                          [--wheel FILE] [--source DIR]

    BUILD_OPTIONS: [--builder B] [--tag TAG] [--context DIR] [--dry-run]
"""

from __future__ import annotations

import argparse
import logging
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import EXIT_OK
from .builder import BUILDERS
from .containerfile import DEFAULT_BASE
from .layers import (
    DEFAULT_ALPINE,
    DEFAULT_BASE_TAG,
    DEFAULT_DEBIAN,
    DEFAULT_DEBIAN_BASE_TAG,
    DEFAULT_DEBIAN_S6_TAG,
    DEFAULT_S6_TAG,
    DEFAULTS,
    DISTROS,
    S6_OVERLAY,
)

log = logging.getLogger("rconfd_py")

DESCRIPTION = """\
Build the golden image hierarchy: a base layer (Alpine, optionally a private apk repository and
mimalloc), the s6 layer FROM it (s6-overlay + rconfd-py supervised by s6 as the service `rconfd`,
which renders /etc/rconfd at start and keeps the files valid), and service images FROM that."""

EPILOG = f"""\
commands:
  base            the base layer: FROM --base ({DEFAULT_ALPINE}), tagged
                  {DEFAULT_BASE_TAG}[-mimalloc]
  build           the s6 layer: FROM --from ({DEFAULT_BASE_TAG}; --base
                  alpine:X.Y: plain Alpine), tagged {DEFAULT_S6_TAG} (its s6-overlay)
  service NAME    a service image FROM --from ({DEFAULT_S6_TAG}), tagged
                  localhost/NAME:latest
  containerfile   print the s6 layer's Containerfile (the top-level one is this, FROM
                  {DEFAULT_BASE}; --context: a context's)
  context DIR     write the s6 layer's self-contained build context into DIR: Containerfile,
                  wheels/ (the rconfd-py wheel: --wheel, else built from the source
                  checkout, else rebuilt from the installed distribution's RECORD) and
                  rootfs/ (the s6 service rconfd, taken from that wheel)

base, build and service write a context (a temporary one, or --context DIR) and build it with
the first builder found ({', '.join(BUILDERS)}), or --builder; --dry-run prints the context and
the command instead. The s6-overlay pinned is the one the Alpine release in the FROM image's
name ships ({', '.join(f'{r}: {v}' for r, v in S6_OVERLAY.items())}), or --s6-overlay;
with --s6-overlay-from (bases without that package, e.g. Debian: s6-overlay's own release
tarballs, or one tree in its layout) the tarballs are ADDed to / instead and the version is the
one they hold.
--distro debian (default: alpine) builds the same chain on Debian: apt-get instead of apk,
useradd, libmimalloc2.0; it has no s6-overlay package, so build, context and containerfile
need --s6-overlay-from. Its defaults: base FROM {DEFAULT_DEBIAN}, tagged
{DEFAULT_DEBIAN_BASE_TAG}[-mimalloc]; build FROM that, tagged
localhost/s6-overlay:VERSION-debian; service FROM {DEFAULT_DEBIAN_S6_TAG}, tagged
localhost/NAME:debian.
exit codes: 0 ok, 2 usage error (no builder found, no wheel to ship), 6 cannot write the
            context, 7 pip wheel, the wheel's rebuild or the builder failed"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rconfd-py image", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def below(sp: argparse.ArgumentParser, names: tuple[str, str], default: str | None,
              what: str) -> None:
        sp.add_argument(*names, dest="base", metavar="IMAGE", default=default,
                        help=f"the image to build FROM, the default of ARG BASE ({what})")
        sp.add_argument("--distro", choices=DISTROS, default="alpine",
                        help="the base's distribution: its package manager, user tools, "
                             "mimalloc package and default tags (default: alpine)")
        sp.add_argument("-v", "--verbose", action="store_true")

    def s6_layer(sp: argparse.ArgumentParser, wheel: bool = True) -> None:
        below(sp, ("--from", "--base"), None,
              f"{DEFAULT_BASE_TAG}; the top-level Containerfile: {DEFAULT_BASE}; "
              f"--distro debian: {DEFAULT_DEBIAN_BASE_TAG}, {DEFAULT_DEBIAN}")
        sp.add_argument("--s6-overlay", metavar="VERSION",
                        help="the s6-overlay to pin (default: the one of the Alpine release)")
        sp.add_argument("--s6-overlay-from", action="append", default=[], metavar="FILE",
                        help="install s6-overlay from this tarball (repeatable, ADDed to / "
                             "in order; ./init and package/admin/s6-overlay-VERSION/) "
                             "instead of Alpine's package; the base's package manager "
                             "then only adds python3 (required with --distro debian)")
        if wheel:
            sp.add_argument("--wheel", metavar="FILE",
                            help="ship this rconfd_py-*.whl (its rootfs too) instead of "
                                 "building one")
            sp.add_argument("--source", metavar="DIR",
                            help="build the wheel from this source checkout (default: the one "
                                 "rconfd-py runs from; none: rebuild the installed one)")

    def buildable(sp: argparse.ArgumentParser, tag: str) -> None:
        sp.add_argument("--builder", "--engine", dest="builder", choices=BUILDERS,
                        help="container builder (the first found); --engine is the old name")
        sp.add_argument("--tag", help=f"image tag ({tag})")
        sp.add_argument("--context", metavar="DIR",
                        help="write the context here and keep it (default: a temporary dir)")
        sp.add_argument("--dry-run", action="store_true",
                        help="write the context, print its path and the build command, "
                             "build nothing")

    b = sub.add_parser("base", help="build the base layer")
    below(b, ("--base", "--from"), None, f"{DEFAULT_ALPINE}; --distro debian: {DEFAULT_DEBIAN}")
    b.add_argument("--apk-repository", metavar="URL",
                   help="an apk repository to trust, put first in /etc/apk/repositories")
    b.add_argument("--apk-key", metavar="FILE",
                   help="its signing key (*.rsa.pub), copied to /etc/apk/keys/")
    b.add_argument("--mimalloc", action="store_true",
                   help="preload mimalloc in every process (LD_PRELOAD)")
    b.add_argument("--large-pages", action="store_true",
                   help="with --mimalloc: MIMALLOC_LARGE_OS_PAGES=1")
    buildable(b, "localhost/rconfd-base:alpine-X.Y[-mimalloc], debian-N[-mimalloc]")

    bd = sub.add_parser("build", help="build the s6 layer")
    s6_layer(bd)
    buildable(bd, "localhost/s6-overlay:VERSION, VERSION-debian")

    s = sub.add_parser("service", help="build a service image FROM the s6 layer")
    s.add_argument("name", metavar="NAME", help="the s6 service name (/etc/services.d/NAME)")
    below(s, ("--from", "--base"), None,
          f"{DEFAULT_S6_TAG}; --distro debian: {DEFAULT_DEBIAN_S6_TAG}")
    s.add_argument("--exec", dest="exec_", metavar="CMD", required=True,
                   help='the service\'s command line, e.g. "/usr/bin/myservice -c FILE"')
    s.add_argument("--package", action="append", default=[], metavar="PKG",
                   help="a package to install (repeatable)")
    s.add_argument("--copy", action="append", default=[], metavar="SRC:DEST",
                   help="copy SRC (a file or directory) to DEST in the image (repeatable)")
    s.add_argument("--user", help="run the service as USER, created if missing (NAME)")
    s.add_argument("--config", metavar="PATH",
                   help="the config file that must exist before it starts (/etc/NAME/NAME.conf)")
    s.add_argument("--critical", action="store_true",
                   help="halt the container when the service fails (exit other than 0, 256)")
    s.add_argument("--rconfd-config", metavar="FILE",
                   help="rconfd-py config rendering the service's files, as /etc/rconfd/NAME.json;"
                        " each template HUPs the service (reload /run/service/NAME)")
    s.add_argument("--template", action="append", default=[], metavar="FILE",
                   help="a template the config names, copied to /etc/rconfd/ (repeatable)")
    buildable(s, "localhost/NAME:latest, NAME:debian")

    cf = sub.add_parser("containerfile", help="print the s6 layer's Containerfile")
    s6_layer(cf, wheel=False)
    cf.add_argument("--context", action="store_true",
                    help="the single-stage variant written into build contexts")
    ctx = sub.add_parser("context", help="write the s6 layer's build context into DIR")
    ctx.add_argument("dir", metavar="DIR")
    s6_layer(ctx)
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from .. import logs

    logs.setup(args.verbose)
    from ..errors import guarded

    return guarded(lambda: run(args))


def run(args: argparse.Namespace) -> int:
    distro = DISTROS[args.distro]
    if args.base is not None:  # apk on Debian fails deep in the build: say it here, in one line
        from .layers import alpine_release, debian_release

        named = ("debian" if debian_release(args.base) else
                 "alpine" if alpine_release(args.base) else None)
        if named not in (None, distro.name):
            from ..errors import ConfigError

            raise ConfigError(f"--from {args.base} is a {named} image: pass --distro {named}")
    if args.base is None and args.command in ("base", "service"):
        args.base = DEFAULTS[distro.name][0 if args.command == "base" else 2]
    if (args.command not in ("base", "service") and distro.s6_packages is None
            and not args.s6_overlay_from):
        from ..errors import ConfigError

        raise ConfigError(f"--distro {distro.name} has no s6-overlay package: pass "
                          "--s6-overlay-from FILE (s6-overlay's tarballs, or a tree in its "
                          "layout built from source)")
    if args.command == "containerfile":
        from .containerfile import generate
        from .overlay import inspect

        variant = "context" if args.context else "source"
        version = (inspect(args.s6_overlay_from, args.s6_overlay) if args.s6_overlay_from
                   else args.s6_overlay)
        sys.stdout.write(generate(variant, base=args.base, s6_overlay=version, distro=distro,
                                  s6_overlay_from=[Path(p).name for p in args.s6_overlay_from]))
        return EXIT_OK
    if args.command == "base":
        return _base(args)
    if args.command == "service":
        return _service(args)
    from .context import write_context

    def write(dest: Path) -> Path:
        return write_context(dest, base=args.base, wheel=args.wheel, source=args.source,
                             s6_overlay=args.s6_overlay, s6_overlay_from=args.s6_overlay_from,
                             distro=distro)

    if args.command == "context":
        print(write(Path(args.dir)))
        return EXIT_OK
    from .containerfile import default_from
    from .layers import s6_overlay_version, s6_tag
    from .overlay import inspect

    version = (inspect(args.s6_overlay_from, args.s6_overlay) if args.s6_overlay_from else
               s6_overlay_version(args.base or default_from("context", distro), args.s6_overlay))
    return build(args, write, args.tag or s6_tag(version, distro.name))


def _base(args: argparse.Namespace) -> int:
    from .base import default_tag, write_base_context

    distro = DISTROS[args.distro]
    tag = args.tag or default_tag(args.base, args.mimalloc, distro)
    return build(args, lambda dest: write_base_context(
        dest, args.base, repository=args.apk_repository, key=args.apk_key,
        mimalloc=args.mimalloc, large_pages=args.large_pages, distro=distro), tag)


def _service(args: argparse.Namespace) -> int:
    from .layers import service_tag
    from .service import write_service_context

    return build(args, lambda dest: write_service_context(
        dest, args.name, args.exec_, base=args.base, packages=args.package, copies=args.copy,
        user=args.user, config=args.config, critical=args.critical,
        rconfd_config=args.rconfd_config, templates=args.template, distro=DISTROS[args.distro]),
        args.tag or service_tag(args.name, args.distro))


def build(args: argparse.Namespace, write: Callable[[Path], Path], tag: str) -> int:
    """Write a context with ``write`` (into --context DIR, else a temporary dir) and build it
    as ``tag``; --dry-run prints the context and the command instead."""
    from .builder import build_command, find_builder, run_build

    name, executable = find_builder(args.builder, must_exist=not args.dry_run)
    keep = args.context is not None or args.dry_run
    dest = args.context or tempfile.mkdtemp(prefix="rconfd-image-")
    try:
        context = write(Path(dest))
        argv = build_command(executable, context, tag)
        if args.dry_run:
            print(f"# context: {context}")
            print(shlex.join(argv))
            return EXIT_OK
        log.info("building %s with %s from %s", tag, name, context)
        run_build(name, argv)
        log.info("built %s", tag)
        return EXIT_OK
    finally:
        if not keep:
            shutil.rmtree(dest, ignore_errors=True)
