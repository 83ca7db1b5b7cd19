"""The Vault API client: JSON requests to `/v1/...` with a token, Vault's errors made into
one-line VaultErrors (status 0: no answer, which is transient).

It never logs request or response bodies: they carry tokens and secrets. Vault's error text can
echo what was sent (a request parameter, a JWT), or a quoted piece of it: the error message
masks every registered secret in it, and every quoted piece of one, BEFORE cutting it to
MAX_ERROR characters (a cut secret would no longer be recognised), and escapes its control
characters, so the message is safe wherever it is shown.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from urllib.parse import quote, urlencode

from .. import redact
from ..errors import ConfigError, VaultError
from .http import HTTPClient, TransportError, tls_context

MAX_ERROR = 300  # characters of Vault's error text kept in a message
HEALTH_PARAMS = {"standbyok": "true", "perfstandbyok": "true"}  # 200 from a standby too

# POST/PUT paths safe to send again after a dropped keep-alive connection: they renew, look up
# or revoke, never mint (a login, pki/issue, database/creds would mint twice)
REPEATABLE = frozenset(("sys/leases/renew", "sys/leases/lookup", "sys/leases/revoke",
                        "sys/renew", "sys/revoke", "auth/token/renew-self",
                        "auth/token/lookup-self", "auth/token/revoke-self"))


# segments of a read that mints: database/creds/ro, aws/creds/x, aws/sts/x, gcp/roleset/r/token,
# gcp/static-account/a/key (a kv path that holds one of them only loses the resend)
MINTING_READ = frozenset(("creds", "sts", "token", "key"))


def repeatable(method: str, path: str) -> bool:
    """Whether a request may be sent twice: reads, renewals, lookups, revocations. A read of
    dynamic credentials (a MINTING_READ segment) mints, even by GET."""
    if path in REPEATABLE:
        return True
    if method in ("GET", "HEAD", "LIST"):
        return not MINTING_READ & set(path.split("/"))
    return path.rsplit("/", 1)[0] in ("sys/leases/renew", "sys/leases/revoke")


def api_base(url: str) -> str:
    """The API root for a Vault address given with or without a trailing `/v1`."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


class VaultClient:
    def __init__(self, url: str, *, cacert: str | None = None, namespace: str | None = None,
                 timeout: float = 10.0, capath: str | None = None, extra_ca: str | None = None,
                 client_cert: str | None = None, client_key: str | None = None,
                 tls_server_name: str | None = None, tls_skip_verify: bool = False,
                 proxy_env: Mapping[str, str] | None = None):
        """`cacert`/`capath`: the only trust anchors (as VAULT_CACERT/VAULT_CAPATH in Vault);
        without them the system store, plus `extra_ca` if that file exists (the default -c).
        `proxy_env`: where the proxy variables are read (proxy.py; os.environ by default)."""
        from .proxy import Proxies, proxy_password

        self.base = api_base(url)
        proxies = Proxies(os.environ if proxy_env is None else proxy_env)
        for value in proxies.values:  # a proxy password is a secret like the others
            password = proxy_password(value)
            if password:
                redact.redactor.add(("proxy", value), [password, value])
        self._quoted: dict[str, str] = {}
        headers = {"X-Vault-Request": "true"}
        if namespace:
            headers["X-Vault-Namespace"] = namespace
        try:
            context = None
            if self.base.startswith("https:"):
                context = tls_context(cacert=cacert, capath=capath, extra_ca=extra_ca,
                                      client_cert=client_cert, client_key=client_key,
                                      skip_verify=tls_skip_verify)
        except ValueError as e:
            raise ConfigError(f"Vault TLS: {e}") from None
        try:
            self._http = HTTPClient(self.base, timeout=timeout, headers=headers,
                                    context=context, server_name=tls_server_name,
                                    proxies=proxies or None)
        except ValueError as e:
            raise ConfigError(f"Vault address (-u): {e}") from None
        if context is not None and tls_skip_verify:
            logging.getLogger("rconfd_py").warning(
                "Vault's TLS certificate is not verified (--tls-skip-verify/VAULT_SKIP_VERIFY): "
                "anyone on the path can read the tokens and secrets")

    def close(self) -> None:
        self._http.close()

    @property
    def timeout(self) -> float:
        """The timeout of requests that name none (the daemon lengthens it while nothing it
        holds is about to expire: vault/pipeline.py, daemon/policy.py)."""
        return self._http.timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self._http.timeout = seconds

    @property
    def patience(self):
        """Asked once per request for a callable deciding, each time the request's timeout
        passes before its answer began, how many seconds more to wait (vault/http.py); None:
        none (the daemon's: daemon/outage.py)."""
        return self._http.patience

    @patience.setter
    def patience(self, factory) -> None:
        self._http.patience = factory

    def answers(self, timeout: float) -> None:
        """GET sys/health, which Vault never audits and which changes nothing, on a connection
        of its own (closed after: a request of this client may be waiting on the kept-alive
        one): return if Vault answers at all (any status: sealed, standby and uninitialised
        nodes answer too); raise VaultError (status 0, timed_out if it waited in vain) if it
        gives no answer."""
        alone = self._http.sibling()
        try:
            self.request("GET", "sys/health", timeout=timeout, params=HEALTH_PARAMS, via=alone)
        except VaultError as e:
            if e.status == 0:
                raise
        finally:
            alone.close()

    def request(self, method: str, path: str, *, token: str | None = None,
                body: dict | None = None, params: dict | None = None,
                timeout: float | None = None, idempotent: bool | None = None,
                via: HTTPClient | None = None, commit=None) -> dict:
        """Call `/v1/PATH`; return the decoded JSON answer ({} for 204).

        `idempotent`: whether the request may be sent again after a kept-alive connection was
        dropped before any answer (default: repeatable(method, path)). `via`: another
        transport than this client's (a probe's, answers()). `commit`: a callable; the body is
        held until Vault asks for it (100 Continue) and sent only if `commit()` then says it
        is still worth it (vault/http.py); else VaultError(withheld).

        Raise VaultError naming the path and Vault's own message; status 0 means no answer.
        """
        path = path.strip("/")
        method = method.upper()
        if idempotent is None:
            idempotent = repeatable(method, path)
        if method == "LIST":  # same as the LIST verb, but passes every proxy
            method, params = "GET", {**(params or {}), "list": "true"}
        target = self._quoted.get(path)
        if target is None:  # the same few paths again and again: quoted once
            target = self._quoted[path] = "/" + quote(path, safe="/-_.~")
        if params:
            target += "?" + urlencode(params)
        where = f"{method} /v1/{path}"
        try:
            resp = (via or self._http).request(
                method, target, timeout=timeout, idempotent=idempotent,
                headers={"X-Vault-Token": token} if token else None,
                body=json.dumps(body).encode() if body is not None else None, commit=commit)
        except TransportError as e:
            if e.withheld:
                raise VaultError(f"{where}: not sent: Vault asked for it only when it was no "
                                 "longer worth it", withheld=True) from None
            if e.unsent:  # nothing reached Vault: not in doubt
                raise VaultError(f"{where}: Vault did not answer in time (not sent: it never "
                                 f"asked for the request's body; {self.base})") from None
            if e.timeout:  # "proxy http://host:port: timed out": stuck at the proxy
                at_proxy = f"; {e}" if str(e).startswith("proxy ") else ""
                raise VaultError(f"{where}: Vault did not answer in time ({self.base}{at_proxy})",
                                 timed_out=True) from None
            raise VaultError(f"{where}: cannot reach Vault at {self.base}: {_quote(str(e))}"
                             ) from None
        if resp.status == 204:
            return {}
        try:
            data = json.loads(resp.body.decode()) if resp.body else None  # str: no sniffing
        except (ValueError, RecursionError):  # RecursionError: nested thousands deep
            data = None
        if 200 <= resp.status < 300 and isinstance(data, dict):
            return data
        raise VaultError(f"{where}: HTTP {resp.status}: {_errors(data, resp.status, resp.reason)}",
                         status=resp.status)


def _errors(data: object, status: int, reason: str) -> str:
    if isinstance(data, dict) and isinstance(data.get("errors"), list):
        msgs = [str(m).strip() for m in data["errors"] if m]
        if msgs:
            return _quote("; ".join(msgs))
        if status == 404:
            return "not found"
    if 200 <= status < 300:
        return "answer is not a JSON object"
    return _quote(reason) if reason else "error"


def _quote(text: str) -> str:
    """Text from the other end, fit for a message: secrets masked (as Vault echoed them, line
    breaks included, and any quoted piece of one), then newlines made spaces and other control
    characters escaped, then cut to MAX_ERROR characters, never inside a mask."""
    text = redact.redactor.redact_fragments(redact.redactor.redact(text))
    text = redact.safe(text.replace("\r\n", " ").replace("\n", " "))
    if len(text) <= MAX_ERROR:
        return text
    cut = text[:MAX_ERROR]
    start = cut.rfind(redact.MASK[0], MAX_ERROR - len(redact.MASK) + 1)
    if start >= 0 and text.startswith(redact.MASK, start):
        cut = cut[:start]
    # what is left of a word cut short could be a short secret standing alone: mask again
    return redact.redactor.redact(cut) + "..."
