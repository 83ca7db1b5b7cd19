"""The Vault API client: JSON requests to `/v1/...` with a token, Vault's errors made into
one-line VaultErrors (status 0: no answer, which is transient).

It never logs request or response bodies: they carry tokens and secrets.
"""

from __future__ import annotations

import json
import os
from urllib.parse import quote, urlencode

from ..errors import ConfigError, VaultError
from .http import HTTPClient, TransportError


def api_base(url: str) -> str:
    """The API root for a Vault address given with or without a trailing `/v1`."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


class VaultClient:
    def __init__(self, url: str, *, cacert: str | None = None, namespace: str | None = None,
                 timeout: float = 10.0):
        self.base = api_base(url)
        self._quoted: dict[str, str] = {}
        headers = {"X-Vault-Request": "true"}
        if namespace:
            headers["X-Vault-Namespace"] = namespace
        try:
            self._http = HTTPClient(self.base, timeout=timeout, headers=headers,
                                    cafile=cacert if cacert and os.path.isfile(cacert) else None)
        except ValueError as e:
            raise ConfigError(f"Vault address (-u): {e}") from None

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, *, token: str | None = None,
                body: dict | None = None, params: dict | None = None,
                timeout: float | None = None) -> dict:
        """Call `/v1/PATH`; return the decoded JSON answer ({} for 204).

        Raise VaultError naming the path and Vault's own message; status 0 means no answer.
        """
        path = path.strip("/")
        method = method.upper()
        if method == "LIST":  # same as the LIST verb, but passes every proxy
            method, params = "GET", {**(params or {}), "list": "true"}
        target = self._quoted.get(path)
        if target is None:  # the same few paths again and again: quoted once
            target = self._quoted[path] = "/" + quote(path, safe="/-_.~")
        if params:
            target += "?" + urlencode(params)
        where = f"{method} /v1/{path}"
        try:
            resp = self._http.request(
                method, target, timeout=timeout,
                headers={"X-Vault-Token": token} if token else None,
                body=json.dumps(body).encode() if body is not None else None)
        except TransportError as e:
            if e.timeout:
                raise VaultError(f"{where}: Vault did not answer in time ({self.base})") from None
            raise VaultError(f"{where}: cannot reach Vault at {self.base}: {e}") from None
        if resp.status == 204:
            return {}
        try:
            data = json.loads(resp.body.decode()) if resp.body else None  # str: no sniffing
        except ValueError:
            data = None
        if 200 <= resp.status < 300 and isinstance(data, dict):
            return data
        raise VaultError(f"{where}: HTTP {resp.status}: {_errors(data, resp.status, resp.reason)}",
                         status=resp.status)


def _errors(data: object, status: int, reason: str) -> str:
    if isinstance(data, dict) and isinstance(data.get("errors"), list):
        msgs = [str(m).strip().replace("\n", " ") for m in data["errors"] if m]
        if msgs:
            return "; ".join(msgs)[:300]
        if status == 404:
            return "not found"
    if 200 <= status < 300:
        return "answer is not a JSON object"
    return reason or "error"
