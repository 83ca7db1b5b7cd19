"""A small synchronous Vault HTTP client on httpx: one connection pool, JSON in and out.

It never logs request or response bodies: they carry tokens and secrets.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import httpx

from ..errors import VaultError

log = logging.getLogger(__name__)


def api_base(url: str) -> str:
    """The API root for a Vault address given with or without a trailing `/v1`."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


class VaultClient:
    def __init__(self, url: str, *, cacert: str | None = None, namespace: str | None = None,
                 timeout: float = 10.0, transport: httpx.BaseTransport | None = None):
        self.base = api_base(url)
        verify: Any = True
        if cacert and os.path.isfile(cacert):
            import ssl

            verify = ssl.create_default_context(cafile=cacert)
        headers = {"X-Vault-Request": "true"}
        if namespace:
            headers["X-Vault-Namespace"] = namespace
        self._http = httpx.Client(base_url=self.base, verify=verify, headers=headers,
                                  timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, *, token: str | None = None,
                body: dict | None = None, params: dict | None = None,
                timeout: float | None = None) -> dict:
        """Call `/v1/PATH`; return the decoded JSON answer ({} for 204).

        Raise VaultError naming the path and Vault's own message; status 0 means no answer.
        """
        path = path.lstrip("/")
        method = method.upper()
        if method == "LIST":  # same as the LIST verb, but passes every proxy
            method, params = "GET", {**(params or {}), "list": "true"}
        headers = {"X-Vault-Token": token} if token else None
        try:
            extra = {"timeout": timeout} if timeout is not None else {}
            resp = self._http.request(method, "/" + path, json=body, params=params,
                                      headers=headers, **extra)
        except httpx.TimeoutException:
            raise VaultError(f"{method} /v1/{path}: Vault did not answer in time ({self.base})"
                             ) from None
        except httpx.TransportError as e:
            raise VaultError(f"{method} /v1/{path}: cannot reach Vault at {self.base}: "
                             f"{_reason(e)}") from None
        if resp.status_code == 204:
            return {}
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.is_success and isinstance(data, dict):
            return data
        raise VaultError(f"{method} /v1/{path}: HTTP {resp.status_code}: {_errors(data, resp)}",
                         status=resp.status_code)


def _errors(data: Any, resp: httpx.Response) -> str:
    if isinstance(data, dict) and isinstance(data.get("errors"), list):
        msgs = [str(m).strip().replace("\n", " ") for m in data["errors"] if m]
        if msgs:
            return "; ".join(msgs)[:300]
        if resp.status_code == 404:
            return "not found"
    if resp.is_success:
        return "answer is not a JSON object"
    return resp.reason_phrase or "error"


def _reason(e: Exception) -> str:
    text = str(e) or type(e).__name__
    return text.splitlines()[0][:200]
