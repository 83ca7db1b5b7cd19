"""--revoke-on-exit: revoke the leases and tokens this process holds (the ledger's), with a short
timeout per call and no new login on the way out, and empty the state (--state-dir). A supplied
token (VAULT_TOKEN, the token file) is never revoked: it belongs to whoever wrote it."""

from __future__ import annotations

import logging

from ..errors import RconfdError
from ..vault import leases
from ..vault.auth import revoke_self

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..pipeline import Pipeline

log = logging.getLogger(__name__)
EXIT_TIMEOUT = 2.0  # per Vault call while revoking on exit


def revoke_all(pipeline: Pipeline) -> None:
    """Revoke what is held; the state file (--state-dir) goes too: nothing in it lives."""
    if pipeline.state is not None:
        pipeline.state.clear()
    store = pipeline.sources.vault
    if store is None:
        return
    # a request the stop signal interrupted (a probe, often, during an outage) may have left
    # the kept-alive connection waiting for its answer: the revocations start on a new one
    store.client.close()
    # what is held, including what a first pass fetched before it was interrupted
    held = pipeline.ledger.held_leases()
    tokens = {tok.role: tok for tok in store.tokens()}
    n = 0
    for lease_id, entry in held.items():
        role = entry.secret.role
        if role not in tokens:
            continue
        try:
            leases.revoke_lease(store.client, tokens[role].client_token, lease_id,
                                timeout=EXIT_TIMEOUT)
            n += 1
        except RconfdError as e:
            log.warning("%s: cannot revoke its lease: %s", entry.ref, e)
    if store.supplied is not None:  # VAULT_TOKEN or the token file: not ours to revoke
        log.info("revoked %d lease(s); the vault token of %s is left alone (not ours)", n,
                 store.supplied.source)
        return
    for tok in tokens.values():
        try:
            revoke_self(store.client, tok, timeout=EXIT_TIMEOUT)
        except RconfdError as e:
            log.warning("role %s: cannot revoke the token: %s", tok.role, e)
    log.info("revoked %d lease(s) and %d token(s)", n, len(tokens))
