"""Command line: argument parsing, the mode switch (one pass, or the daemon around it), and the
hand-over to check, demo or image.

    rconfd-py [-d DIR] [-u URL] [-l LOGIN_PATH] [-j JPATH] [-c CACERT] [-T TOKEN]
              [-t TOKEN_PATH] [-v] [-r READY_FD] [-D] [--poll S] [--revoke-on-exit] [--engine E]
              [--log-format text|json] [--dry-run] [--state-dir DIR|none]
    rconfd-py check [-d DIR] [-j JPATH] [--engine E]
    rconfd-py status [--json] [--status-file PATH]
    rconfd-py demo [--keep DIR]
    rconfd-py image base|build|service|context|containerfile ...   (rconfd_py/image/cli.py)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import __version__
from .errors import EXIT_OK, RconfdError, guarded

log = logging.getLogger("rconfd_py")

DESCRIPTION = """\
Render config files from jsonnet templates and secrets (Vault/OpenBao, env, file, exe),
write them atomically, tell s6 when they exist and, with -D, keep them valid as leases expire.
Compatible with rconfd's command line and config format."""

EPILOG = """\
subcommands:
  rconfd-py check [-d DIR] [-j JPATH]   validate the config dir offline (no network)
  rconfd-py status [--json]             what the running daemon holds, plans and fails at
                                        (exit 0 healthy, 1 failing or expired, 2 no daemon)
  rconfd-py demo                        render the examples against a throwaway OpenBao
  rconfd-py image base|build|service    build the image chain: base layer, s6 layer,
                                        service images (rconfd-py image -h)

Every option also reads RCONFD_<LONG_NAME> from the environment (RCONFD_DIR, RCONFD_URL,
RCONFD_TOKEN_PATH, ...); options win. VAULT_NAMESPACE sends X-Vault-Namespace.
VAULT_TOKEN: a token used for every role instead of a login (--vault-token-file wins).
Proxies as Vault's Go client: HTTP_PROXY, HTTPS_PROXY, NO_PROXY (either case), or
VAULT_PROXY_ADDR / VAULT_HTTP_PROXY for every Vault request.

exit codes: 0 ok, 1 internal error, 2 usage or config error, 3 template error,
            4 Vault or login error, 5 env/file/exe secret error, 6 cannot write a file
            or a "check" rejected it,
            7 image build failed (rconfd-py image)"""


def _formatter(prog: str) -> argparse.HelpFormatter:
    """argparse's default formatter imports shutil (and lzma, ~5 ms) just to read the terminal
    width: every run pays it, even without --help."""
    try:
        width = os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError):
        width = int(os.environ.get("COLUMNS", "100") or 100)
    return argparse.RawDescriptionHelpFormatter(prog, width=max(40, width - 2))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--dir", metavar="DIR",
                   help="directory of *.json config files, read in lexicographic order "
                        "(/etc/rconfd)")
    p.add_argument("-j", "--jpath", metavar="JPATH",
                   help="comma-separated list of jsonnet library directories")
    p.add_argument("--engine", choices=("rjsonnet", "jsonnet"),
                   help="jsonnet engine (rjsonnet; 'jsonnet' is the official binding)")
    p.add_argument("-v", "--verbose", action="store_true", default=None,
                   help="debug logging (secret values are never logged)")
    p.add_argument("--log-format", choices=("text", "json"),
                   help="log lines on stderr: text (rconfd-py: LEVEL: message) or json (one "
                        "object per line: time, level, message, template, file, path, role, "
                        "ttl), masked alike (text)")


def main_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rconfd-py", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=_formatter)
    _common(p)
    p.add_argument("-u", "--url", metavar="URL",
                   help="Vault address, with or without /v1 ($VAULT_URL, else $VAULT_ADDR, "
                        "else https://localhost:8200)")
    p.add_argument("-l", "--login-path", metavar="LOGIN_PATH",
                   help="login path (/auth/kubernetes/login; /auth/jwt/login for GitLab CI)")
    p.add_argument("-c", "--cacert", metavar="CACERT",
                   help="CA bundle for Vault TLS ($VAULT_CACERT): given, the only trust anchor; "
                        "by default the service account's CA "
                        "(/var/run/secrets/kubernetes.io/serviceaccount/ca.crt) is added to the "
                        "system store if the file exists")
    p.add_argument("--capath", metavar="DIR",
                   help="directory of PEM CA certificates, the only trust anchors unless -c "
                        "is given ($VAULT_CAPATH)")
    p.add_argument("--client-cert", metavar="PEM",
                   help="client certificate for mutual TLS, with --client-key "
                        "($VAULT_CLIENT_CERT)")
    p.add_argument("--client-key", metavar="PEM",
                   help="its private key ($VAULT_CLIENT_KEY)")
    p.add_argument("--tls-server-name", metavar="NAME",
                   help="name sent (SNI) and checked in Vault's certificate "
                        "($VAULT_TLS_SERVER_NAME)")
    p.add_argument("--tls-skip-verify", action="store_true", default=None,
                   help="do not verify Vault's certificate: insecure, a warning is logged "
                        "($VAULT_SKIP_VERIFY)")
    p.add_argument("-T", "--token", metavar="TOKEN",
                   help="JWT taken from the env var of that name, or the string itself if no "
                        "such variable (wins over -t)")
    p.add_argument("-t", "--token-path", metavar="TOKEN_PATH",
                   help="JWT file, re-read at every login "
                        "(/var/run/secrets/kubernetes.io/serviceaccount/token)")
    p.add_argument("--vault-token-file", metavar="PATH",
                   help="a Vault token (an agent sink's, an injector's) used for every role "
                        "instead of a login, read again when it can no longer be renewed and "
                        "picked up at the next renewal when it changes; never revoked. Without "
                        "it, $VAULT_TOKEN (fixed) if set")
    p.add_argument("-r", "--ready-fd", metavar="READY_FD", type=int,
                   help="write one newline to this fd once every file is written, then close it")
    p.add_argument("-D", "--daemon", action="store_true", default=None,
                   help="stay in the foreground and keep the files valid as leases expire")
    p.add_argument("--dry-run", action="store_true", default=None,
                   help="fetch and render, write nothing, run no hook nor reload, signal no "
                        "readiness; print each file's path, mode, owner and a unified diff "
                        "against the file on disk, secrets masked (not with -D)")
    p.add_argument("--poll", metavar="SECONDS", type=float,
                   help="daemon: re-read static secrets (kv, env, file, exe) this often and "
                        "re-render on change (off)")
    p.add_argument("--revoke-on-exit", action="store_true", default=None,
                   help="daemon: revoke the leases and tokens this process created when it "
                        "stops, or exits because nothing is leased")
    p.add_argument("--timeout", metavar="SECONDS", type=float,
                   help="deadline of each Vault request: connect, send and the complete "
                        "answer; the daemon waits up to 3x this while nothing it holds is "
                        "about to expire, and up to 6x while Vault answers no probe "
                        "(frozen); a renewal's body waits for Vault's 100 Continue and is not "
                        "sent if what it renews ended meanwhile (10)")
    p.add_argument("--idle-exec", metavar="CMD",
                   help="daemon with nothing leased: replace rconfd-py with CMD (e.g. s6-pause) "
                        "instead of exiting 0, so the supervised process stays the one s6 "
                        "signals")
    p.add_argument("--status-file", metavar="PATH",
                   help="daemon: keep this status file (0644, no secret value) for "
                        "`rconfd-py status`; 'none' turns it off (/run/rconfd-py/status.json)")
    p.add_argument("--state-dir", metavar="DIR",
                   help="keep tokens and leased secrets in DIR/state.json (0600, dir 0700) "
                        "and reuse them at the next start if still alive: restarts and an "
                        "init container's one-shot followed by the daemon mint nothing; "
                        "'none' turns it off (/run/rconfd-py)")
    p.add_argument("--metrics-addr", metavar="HOST:PORT",
                   help="daemon: serve /metrics (Prometheus) and /healthz there; a bare PORT "
                        "is 127.0.0.1 (off; needs the 'metrics' extra)")
    p.add_argument("--version", action="version", version=f"rconfd-py {__version__}")
    return p


def status_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rconfd-py status", formatter_class=_formatter,
        description="Show what the running daemon holds and plans, from its status file: "
                    "tokens and secrets (kind, expiry, time left, next action, last error), "
                    "templates (last render, files, last hook), readiness. Exit 0 healthy, "
                    "1 something failing or expired (or not ready yet), 2 no running daemon.")
    p.add_argument("--json", action="store_true", help="print the status document as JSON")
    p.add_argument("--status-file", metavar="PATH",
                   help="the daemon's status file (/run/rconfd-py/status.json)")
    return p


def check_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rconfd-py check", formatter_class=_formatter,
        description="Validate the config dir offline: JSON schema, secret-path grammar, "
                    "${VAR}s, templates exist and parse, hook and exe commands are absolute "
                    "and executable. No network.")
    _common(p)
    return p


def demo_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rconfd-py demo", formatter_class=_formatter,
        description="Start a throwaway OpenBao dev server, seed it (kv v2, pki, transit, JWT "
                    "auth), render the examples of templates/ with rconfd-py, print the files, "
                    "stop the server. Needs the 'demo' extra.")
    p.add_argument("--templates", metavar="DIR",
                   help="the templates/ directory of a source checkout (found automatically)")
    p.add_argument("--out", metavar="DIR", help="where to render (a temporary directory)")
    p.add_argument("-v", "--verbose", action="store_true", default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "image":  # its own parser and handler, imported only here
        from .image.cli import main as image_main

        return image_main(argv[1:])
    command = argv[0] if argv and argv[0] in ("check", "demo", "status") else None
    parser = {"check": check_parser, "demo": demo_parser, "status": status_parser}.get(
        command, main_parser)()
    args = parser.parse_args(argv[1:] if command else argv)
    flags = {k: v for k, v in vars(args).items() if k not in ("templates", "out", "json")}

    from . import logs
    from .settings import Settings

    try:
        settings = Settings.build(flags)
    except RconfdError as e:
        logs.setup(False, flags.get("log_format") or os.environ.get("RCONFD_LOG_FORMAT", ""))
        log.error("%s", e)
        return e.exit_code
    logs.setup(settings.verbose, settings.log_format)

    def work() -> int:
        if command == "status":
            from .status import main as status_main

            return status_main(settings.status_file, args.json)
        if command == "check":
            from .check import check

            return check(settings)
        if command == "demo":
            from .demo import demo

            return demo(templates=args.templates, out=args.out, verbose=settings.verbose)
        from .pipeline import Pipeline

        pipeline = Pipeline(settings)
        try:
            if settings.daemon:  # the mode switch: the daemon wraps the same pipeline
                from .daemon.loop import Daemon

                return Daemon(pipeline).run()
            try:
                pipeline.first_pass()
            finally:  # what was fetched, even by a failed pass, is not minted again
                pipeline.save_state()
            return EXIT_OK
        finally:
            pipeline.close()

    return guarded(work)


if __name__ == "__main__":
    sys.exit(main())

