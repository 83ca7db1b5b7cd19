"""`rconfd-py image ...`: argument parsing, then the context writer or the engine.

    rconfd-py image containerfile [--base IMAGE] [--context]
    rconfd-py image context DIR [--base IMAGE] [--wheel FILE] [--source DIR]
    rconfd-py image build [--engine E] [--tag TAG] [--base IMAGE] [--context DIR] [--dry-run]
                          [--wheel FILE] [--source DIR]
"""

from __future__ import annotations

import argparse
import logging
import shlex
import shutil
import sys
import tempfile

from ..errors import EXIT_OK, ConfigError
from .containerfile import DEFAULT_BASE
from .engine import DEFAULT_TAG, ENGINES

log = logging.getLogger("rconfd_py")

DESCRIPTION = """\
Build the golden image: Alpine + s6-overlay + rconfd-py, supervised by s6 as the service
`rconfd` (deploy/rootfs), which renders /etc/rconfd at start and keeps the files valid."""

EPILOG = f"""\
commands:
  containerfile   print the Containerfile (the top-level one is this, --context: a context's)
  context DIR     write a self-contained build context into DIR: Containerfile,
                  deploy/rootfs/ and wheels/ (the rconfd-py wheel, built from the checkout)
  build           write a context (a temporary one, or --context DIR) and build it with the
                  first engine found ({', '.join(ENGINES)}), or --engine

default base {DEFAULT_BASE}, default tag {DEFAULT_TAG}.
exit codes: 0 ok, 2 usage error (no engine found, no source checkout), 6 cannot write the
            context, 7 pip wheel or the engine failed"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rconfd-py image", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp: argparse.ArgumentParser, wheel: bool = True) -> None:
        sp.add_argument("--base", metavar="IMAGE", default=DEFAULT_BASE,
                        help=f"base image, the default of ARG BASE ({DEFAULT_BASE})")
        if wheel:
            sp.add_argument("--wheel", metavar="FILE",
                            help="use this rconfd_py-*.whl instead of building one")
            sp.add_argument("--source", metavar="DIR",
                            help="the source checkout (default: the one rconfd-py runs from)")
        sp.add_argument("-v", "--verbose", action="store_true")

    cf = sub.add_parser("containerfile", help="print the Containerfile")
    common(cf, wheel=False)
    cf.add_argument("--context", action="store_true",
                    help="the single-stage variant written into build contexts")
    ctx = sub.add_parser("context", help="write a build context into DIR")
    ctx.add_argument("dir", metavar="DIR")
    common(ctx)
    b = sub.add_parser("build", help="write a context and build the image")
    b.add_argument("--engine", choices=ENGINES, help="container engine (the first found)")
    b.add_argument("--tag", default=DEFAULT_TAG, help=f"image tag ({DEFAULT_TAG})")
    b.add_argument("--context", metavar="DIR",
                   help="write the context here and keep it (default: a temporary dir)")
    b.add_argument("--dry-run", action="store_true",
                   help="write the context, print its path and the build command, build nothing")
    common(b)
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from .. import logs

    logs.setup(args.verbose)
    from ..cli import guarded

    return guarded(lambda: run(args))


def run(args: argparse.Namespace) -> int:
    if args.command == "containerfile":
        from .containerfile import render

        try:
            sys.stdout.write(render("context" if args.context else "source", base=args.base))
        except ValueError as e:
            raise ConfigError(f"--base: {e}") from None
        return EXIT_OK

    from .context import write_context

    if args.command == "context":
        dest = write_context(args.dir, base=args.base, wheel=args.wheel, source=args.source)
        print(dest)
        return EXIT_OK

    from .engine import build_command, find_engine, run_build

    name, executable = find_engine(args.engine, must_exist=not args.dry_run)
    keep = args.context is not None or args.dry_run
    dest = args.context or tempfile.mkdtemp(prefix="rconfd-image-")
    try:
        context = write_context(dest, base=args.base, wheel=args.wheel, source=args.source)
        argv = build_command(executable, context, args.tag)
        if args.dry_run:
            print(f"# context: {context}")
            print(shlex.join(argv))
            return EXIT_OK
        log.info("building %s with %s from %s", args.tag, name, context)
        run_build(name, argv)
        log.info("built %s", args.tag)
        return EXIT_OK
    finally:
        if not keep:
            shutil.rmtree(dest, ignore_errors=True)
