"""Settings: command-line flags, then `RCONFD_<LONG_NAME>` environment variables, then defaults.

Flags win over the environment. Kept to the standard library: pydantic-settings costs ~250 ms and
~25 MB at start-up, more than the rest of rconfd-py together (see README, "Dependencies").
"""

from __future__ import annotations

import math
import os
import shlex
from collections import namedtuple
from collections.abc import Mapping

from .errors import ConfigError

K8S_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
MAX_SECONDS = 365 * 86400
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")
LOG_FORMATS = ("text", "json")  # --log-format


DEFAULTS = {
    "dir": "/etc/rconfd",
    "url": "https://localhost:8200",
    "login_path": "/auth/kubernetes/login",
    "jpath": (),  # jsonnet library dirs
    "cacert": f"{K8S_DIR}/ca.crt",  # VAULT_CACERT; the default is added to the system store
    "capath": None,  # VAULT_CAPATH: a directory of PEM CA certificates
    "client_cert": None,  # VAULT_CLIENT_CERT (mTLS), with client_key
    "client_key": None,  # VAULT_CLIENT_KEY
    "tls_server_name": None,  # VAULT_TLS_SERVER_NAME: SNI and the name checked
    "tls_skip_verify": False,  # VAULT_SKIP_VERIFY
    "token": None,  # -T: env var name or the JWT itself
    "token_path": f"{K8S_DIR}/token",
    "vault_token_file": None,  # a Vault token (agent sink), used instead of a login; re-read
    "verbose": False,
    "log_format": "text",  # text | json
    "dry_run": False,  # fetch and render, print what would change, write nothing
    "ready_fd": None,
    "daemon": False,
    "engine": "rjsonnet",
    "namespace": None,  # VAULT_NAMESPACE
    "poll": None,  # seconds
    "revoke_on_exit": False,
    "timeout": 10.0,  # seconds per Vault request
    "idle_exec": None,  # -D with nothing leased: exec this command instead of exiting 0
    "status_file": "/run/rconfd-py/status.json",  # daemon status (status.py); "none": off
    "state_dir": "/run/rconfd-py",  # the ledger saved for the next start (state.py); "none": off
    "metrics_addr": None,  # daemon: HOST:PORT of /metrics and /healthz (metrics.py)
    "cacert_given": False,  # set by build(): -c, RCONFD_CACERT or VAULT_CACERT was given
    "vault_token": None,  # set by build() from VAULT_TOKEN: used instead of a login
}
INTERNAL = ("cacert_given", "vault_token")  # no flag, no RCONFD_* variable
# the Vault CLI's variables, used when neither the flag nor RCONFD_* is given
VAULT_ENV = {"cacert": "VAULT_CACERT", "capath": "VAULT_CAPATH",
             "client_cert": "VAULT_CLIENT_CERT", "client_key": "VAULT_CLIENT_KEY",
             "tls_server_name": "VAULT_TLS_SERVER_NAME", "tls_skip_verify": "VAULT_SKIP_VERIFY"}


# environment variables that hold a credential: never passed to a command rconfd-py runs (exe
# secrets as nobody, checks, hooks). VAULT_TOKEN, RCONFD_TOKEN (-T: it may hold the JWT itself),
# and the variable -T names (Settings.build).
CREDENTIAL_ENV = {"VAULT_TOKEN", "RCONFD_TOKEN"}
# proxy settings (vault/proxy.py): passed on, unless they carry a user:password
PROXY_ENV = frozenset(("VAULT_PROXY_ADDR", "VAULT_HTTP_PROXY", "HTTP_PROXY", "HTTPS_PROXY",
                       "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"))


def _credential(name: str, value: str) -> bool:
    if name in CREDENTIAL_ENV:
        return True
    if name not in PROXY_ENV:
        return False
    from .vault.proxy import credentials  # only when a command is run

    return bool(credentials(value))


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a command rconfd-py runs: its own, without any credential."""
    env = {k: v for k, v in os.environ.items() if not _credential(k, v)}
    env.update(extra or {})
    return env


class Settings(namedtuple("Settings", DEFAULTS, defaults=DEFAULTS.values())):
    __slots__ = ()

    def __repr__(self) -> str:  # -T may hold the JWT itself; VAULT_TOKEN is a token
        text = super().__repr__()
        for secret in (self.token, self.vault_token):
            if secret:
                text = text.replace(repr(secret), "'<redacted>'")
        return text

    @classmethod
    def build(cls, flags: Mapping[str, object], env: Mapping[str, str] | None = None
              ) -> Settings:
        """`flags`: values given on the command line (None or absent: not given)."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for field, default in DEFAULTS.items():
            if field in INTERNAL:
                continue
            given = flags.get(field)
            if given is not None and given is not False:
                values[field] = given
                continue
            name = "RCONFD_" + field.upper()
            if name in env:
                values[field] = _parse(name, env[name], default)
        if "url" not in values:
            addr = env.get("VAULT_URL") or env.get("VAULT_ADDR")
            if addr:
                values["url"] = addr
        for field, name in VAULT_ENV.items():
            if field not in values and env.get(name):
                values[field] = _parse(name, env[name], DEFAULTS[field])
        values["cacert_given"] = "cacert" in values
        if "vault_token_file" not in values and env.get("VAULT_TOKEN", "").strip():
            values["vault_token"] = env["VAULT_TOKEN"].strip()  # the file wins: it is ours
        if bool(values.get("client_cert")) != bool(values.get("client_key")):
            raise ConfigError("--client-cert and --client-key (VAULT_CLIENT_CERT, "
                              "VAULT_CLIENT_KEY) go together: one is missing")
        if "namespace" not in values and env.get("VAULT_NAMESPACE"):
            values["namespace"] = env["VAULT_NAMESPACE"]
        if isinstance(values.get("jpath"), str):
            values["jpath"] = split_jpath(values["jpath"])  # type: ignore[arg-type]
        for field in ("status_file", "state_dir"):
            if str(values.get(field, "")).strip().lower() == "none":
                values[field] = None
        settings = cls(**values)  # type: ignore[arg-type]
        if settings.token and settings.token in env:  # -T NAME: the JWT is in that variable
            CREDENTIAL_ENV.add(settings.token)
        if settings.log_format not in LOG_FORMATS:
            raise ConfigError(f"--log-format {settings.log_format!r}: expected text or json")
        if settings.dry_run and settings.daemon:
            raise ConfigError("--dry-run cannot be used with -D")
        for name, value in (("--poll", settings.poll), ("--timeout", settings.timeout)):
            if value is not None and not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
                raise ConfigError(f"{name} must be positive (seconds, at most a year), "
                                  f"not {value!r}")
        if settings.idle_exec is not None:
            try:
                if not shlex.split(settings.idle_exec):
                    raise ValueError("empty command")
            except ValueError as e:
                raise ConfigError(f"--idle-exec {settings.idle_exec!r}: {e}") from None
        return settings


def split_jpath(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _parse(name: str, text: str, default: object) -> object:
    if isinstance(default, bool):
        low = text.strip().lower()
        if low in TRUE:
            return True
        if low in FALSE:
            return False
        raise ConfigError(f"{name}={text!r}: expected a boolean (1/0, true/false)")
    if name in ("RCONFD_READY_FD",):
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{name}={text!r}: expected a file descriptor number") from None
    if name in ("RCONFD_POLL", "RCONFD_TIMEOUT"):
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{name}={text!r}: expected a number of seconds") from None
    return text
