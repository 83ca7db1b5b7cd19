"""resume.py without a server: what it does before it calls Vault (a live Vault is in
tests/test_state_restarts.py)."""

from __future__ import annotations

from helpers import captured_log

from rconfd_py.errors import VaultError
from rconfd_py.ledger import Ledger, TokenEntry
from rconfd_py.resume import resume
from rconfd_py.state import Saved
from rconfd_py.vault.auth import Token

TOKEN = "hvs.CAESIDROPPEDROLETOKEN0123456789"


class EchoingVault:
    """A Vault (or a proxy's error page) that echoes the request's token in its error."""

    def request(self, method, path, token=None, **_):
        raise VaultError(f"{method} /v1/{path}: HTTP 403: permission denied for token {token}",
                         status=403)


def test_a_dropped_roles_saved_token_is_masked_before_it_is_revoked():
    saved = Saved({"oldrole": TokenEntry(Token("oldrole", TOKEN, "acc", 20.0, True, 1000.0))},
                  {}, 1000.0)
    with captured_log() as out:
        assert resume(saved, set(), Ledger(), EchoingVault(), 1001.0, 2.0,
                      revoke_dropped=True) == (0, 0)
    text = out.getvalue()
    assert "cannot revoke its saved token" in text and TOKEN not in text, text


class Alive:
    def request(self, method, path, token=None, **_):
        return {"data": {"ttl": 50}}


def test_a_reused_token_keeps_its_login_time():
    """Its max TTL runs from the login, not from the restart: the re-login before it is planned
    from there (policy.token_renewed)."""
    entry = TokenEntry(Token("app", TOKEN, "acc", 60.0, True, 1000.0))
    entry.born, entry.asked = 700.0, 60.0
    ledger = Ledger()
    from rconfd_py.refs import parse_ref

    wanted = {parse_ref("vault:app:kv/data/x")}
    assert resume(Saved({"app": entry}, {}, 1000.0), wanted, ledger, Alive(), 1010.0, 2.0) == (1, 0)
    restored = ledger.tokens["app"]
    assert (restored.born, restored.token.issued_at, restored.token.ttl) == (700.0, 1010.0, 50.0)
