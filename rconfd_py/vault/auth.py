"""Login with a JWT (Kubernetes or JWT auth), one token per role, shared by every secret."""

from __future__ import annotations

import logging
import os
import threading
from collections import namedtuple
from collections.abc import Callable

from ..errors import ConfigError, VaultError
from .answer import seconds

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: the daemon imports this module with no Vault ref at all
    from ..ledger import Ledger
    from .client import VaultClient
    from .token_file import SuppliedToken

log = logging.getLogger(__name__)


class Token(namedtuple("Token", "role client_token accessor ttl renewable issued_at")):
    """A role's Vault token: `ttl` seconds granted at `issued_at` (unix time; 0: never
    expires)."""

    __slots__ = ()

    @property
    def expires_at(self) -> float | None:
        return self.issued_at + self.ttl if self.ttl else None

    def __repr__(self) -> str:  # never show the token itself
        return f"Token(role={self.role!r}, accessor={self.accessor!r}, ttl={self.ttl})"


def jwt_source(token: str | None, token_path: str) -> Callable[[], str]:
    """How to get the JWT at each login.

    `-T NAME`: the env var NAME if set, else NAME itself (rconfd's rule). Otherwise the file at
    `token_path`, re-read every time because projected service-account tokens rotate.
    """
    if token:
        value = os.environ.get(token, token).strip()
        return lambda: value

    def read() -> str:
        try:
            with open(token_path) as f:
                jwt = f.read().strip()
        except OSError as e:
            raise ConfigError(f"cannot read the JWT file {token_path}: {e.strerror}") from None
        if not jwt:
            raise ConfigError(f"the JWT file {token_path} is empty")
        return jwt

    return read


def login(client: VaultClient, login_path: str, role: str, jwt: str, now: float) -> Token:
    """POST {role, jwt} to the login path; raise VaultError naming the role. `now`: when the
    request was sent (its TTL runs from then)."""
    try:
        answer = client.request("POST", login_path, body={"role": role, "jwt": jwt})
    except VaultError as e:
        raise e.prefixed(f"login as role {role!r} failed") from None
    auth = answer.get("auth") if isinstance(answer.get("auth"), dict) else {}
    if not auth.get("client_token") or not isinstance(auth["client_token"], str):
        raise VaultError(f"login as role {role!r}: no token in Vault's answer")
    return Token(role=role, client_token=auth["client_token"],
                 accessor=auth["accessor"] if isinstance(auth.get("accessor"), str) else "",
                 ttl=seconds(auth, "lease_duration", where=f"login as role {role!r}"),
                 renewable=bool(auth.get("renewable")), issued_at=now)


def renew_self(client: VaultClient, token: Token, increment: float, now: float,
               timeout: float | None = None, commit=None) -> Token:
    """auth/token/renew-self; the returned Token carries the granted TTL from `now` (when the
    request was sent). `commit`: VaultClient.request's."""
    answer = client.request("POST", "auth/token/renew-self", token=token.client_token,
                            body={"increment": f"{int(increment)}s"}, timeout=timeout,
                            commit=commit)
    auth = answer.get("auth") if isinstance(answer.get("auth"), dict) else {}
    return Token(role=token.role, client_token=token.client_token, accessor=token.accessor,
                 ttl=seconds(auth, "lease_duration", where="auth/token/renew-self"),
                 renewable=bool(auth.get("renewable")), issued_at=now)


def lookup_self(client: VaultClient, token: Token, timeout: float | None = None) -> float:
    """auth/token/lookup-self: the seconds the token has left (raises VaultError, 403, when it
    is gone)."""
    answer = client.request("GET", "auth/token/lookup-self", token=token.client_token,
                            timeout=timeout)
    return seconds(answer, "data", "ttl", where="auth/token/lookup-self")


def revoke_self(client: VaultClient, token: Token, timeout: float | None = None) -> None:
    client.request("POST", "auth/token/revoke-self", token=token.client_token, timeout=timeout)


class TokenStore:
    """Logs in once per role, on first use (thread-safe: concurrent fetches of the same role wait
    for a single login). The tokens themselves are kept in the ledger.

    With `supplied` (token_file.py), a token from outside is every role's: "logging in" reads it
    again (the file may hold a new one) and looks it up."""

    def __init__(self, client: VaultClient, login_path: str, jwt: Callable[[], str],
                 ledger: Ledger, clock: Callable[[], float],
                 supplied: SuppliedToken | None = None):
        self.client = client
        self.supplied = supplied
        self.login_path = "/" + login_path.strip("/")
        self.ledger = ledger
        self.clock = clock
        self._jwt = jwt
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, role: str) -> Token:
        tok = self.ledger.token(role)
        if tok is not None:
            return tok
        with self._guard:
            lock = self._locks.setdefault(role, threading.Lock())
        with lock:
            tok = self.ledger.token(role)
            if tok is None:
                tok = self.relogin(role)
        return tok

    def relogin(self, role: str) -> Token:
        if self.supplied is not None:
            return self._use_supplied(role)
        tok = login(self.client, self.login_path, role, self._jwt(), self.clock())
        log.info("logged in as role %s (token ttl %ss, accessor %s)", role, int(tok.ttl),
                 tok.accessor, extra={"role": role, "ttl": int(tok.ttl)})
        self.ledger.put_token(tok)
        return tok

    def _use_supplied(self, role: str) -> Token:
        old = self.ledger.token(role)
        value = self.supplied.read()
        tok = self.supplied.use(self.client, value, role, self.clock(), old)
        if old is not None and old.client_token == value and tok.renewable and tok.ttl:
            # the same token, alive: where a login would mint a new one, renew this one (a
            # timer that fired inside the token's last seconds would otherwise let it die)
            entry = self.ledger.tokens.get(role)
            try:
                tok = renew_self(self.client, tok, entry.asked if entry else tok.ttl,
                                 self.clock())
            except VaultError:
                pass  # the lookup says it lives: kept as it is
        if old is None or old.client_token != value:
            log.info("role %s: using the vault token of %s (ttl %ss, accessor %s)", role,
                     self.supplied.source, int(tok.ttl), tok.accessor,
                     extra={"role": role, "ttl": int(tok.ttl)})
        self.ledger.put_token(tok)
        return tok

    def changed(self, role: str) -> bool:
        """Whether the token file holds another token than the one `role` uses."""
        tok = self.ledger.token(role)
        return (self.supplied is not None and tok is not None
                and self.supplied.changed(tok.client_token))

    def tokens(self) -> list[Token]:
        return [e.token for e in self.ledger.tokens.values()]
