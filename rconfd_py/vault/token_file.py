"""Token login: a Vault token supplied from outside (VAULT_TOKEN, or --vault-token-file written by
an agent sink or an injector) used for every role instead of a login.

The token is looked up once (lookup-self: its TTL, whether it renews, its accessor). Where a JWT
login would log in again, the token file is read again: a new token is used, the same token is
kept while it lives; dead, it is an error that says it is about the token. VAULT_TOKEN is fixed:
kept and renewed while it can be, an error once dead. A supplied token belongs to whoever wrote
it: it is never revoked (daemon/revoke.py).
"""

from __future__ import annotations

from .. import redact
from ..errors import ConfigError, VaultError
from ..fs import UnsafePath, read_file
from .answer import seconds
from .auth import Token

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .client import VaultClient

MAX_SIZE = 64 * 1024  # a token is tens of bytes; a batch token a few hundred


class SuppliedToken:
    """Where the token comes from: `path` (re-read at each `read`), else the fixed `value`."""

    def __init__(self, value: str | None = None, path: str | None = None):
        self.path = path
        self._value = (value or "").strip()
        self.source = f"--vault-token-file {path}" if path else "VAULT_TOKEN"
        if self._value and not path:
            redact.redactor.add("vault_token", self._value)

    def read(self) -> str:
        """The token now; ConfigError naming the file when it cannot be read or holds none."""
        if not self.path:
            return self._value
        token = self._read()
        redact.redactor.add(("vault_token", token), token)  # masked before any message could show it
        return token

    def _read(self) -> str:
        try:
            data = read_file(self.path, MAX_SIZE)
        except UnsafePath as e:
            raise ConfigError(f"cannot read the vault token file {self.path}: {e}") from None
        except OSError as e:
            raise ConfigError(f"cannot read the vault token file {self.path}: "
                              f"{e.strerror}") from None
        if data is None:
            raise ConfigError(f"the vault token file {self.path} is larger than "
                              f"{MAX_SIZE >> 10} KiB: not a token")
        try:
            token = data.decode("ascii").strip()
        except UnicodeDecodeError:
            token = None
        if token is not None and not token:
            raise ConfigError(f"the vault token file {self.path} is empty")
        if token is None or not token.isprintable() or any(c.isspace() for c in token):
            raise ConfigError(f"the vault token file {self.path} does not hold a token "
                              f"(one line of printable ASCII)")
        return token

    def changed(self, current: str) -> bool:
        """Whether the file now holds another token than `current` (False when it cannot be
        read: the renewal or the next login attempt reports that)."""
        if not self.path:
            return False
        try:
            return self.read() != current
        except ConfigError:
            return False

    def use(self, client: VaultClient, value: str, role: str, now: float,
            old: Token | None) -> Token:
        """The token `value` as `role`'s Token, from lookup-self. The same token as `old`,
        dead: an error asking for a new one."""
        return _use_token(client, self, value, role, now, old)


def _use_token(client: VaultClient, supplied: SuppliedToken, value: str, role: str, now: float,
               old: Token | None) -> Token:
    try:
        answer = client.request("GET", "auth/token/lookup-self", token=value)
    except VaultError as e:
        if e.status in (401, 403):
            reason = str(e).rpartition(f"HTTP {e.status}: ")[2]
            again = (" (the file still holds the token that was refused: write a new one)"
                     if old is not None and old.client_token == value and supplied.path else "")
            raise VaultError(f"vault token ({supplied.source}) is invalid or expired: "
                             f"{reason}{again}", status=e.status) from None
        raise e.prefixed(f"vault token ({supplied.source})") from None
    data = answer.get("data") if isinstance(answer.get("data"), dict) else {}
    return Token(role=role, client_token=value, accessor=str(data.get("accessor") or ""),
                 ttl=seconds(data, "ttl", where=f"vault token ({supplied.source})"),
                 renewable=bool(data.get("renewable")),
                 issued_at=now)
