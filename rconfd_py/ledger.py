"""The ledger: everything the process holds — each role's Vault token and each fetched secret —
with its expiry, the next action planned for it, and its last error.

Fetching (pipeline.py, vault/auth.py), the daemon, and whatever reports on the process read and
write it through this small API; nobody else keeps a token or a secret. It does no I/O and reads
no clock: times are given to it.

    tokens:    role -> TokenEntry      (token, TTL to ask at renewal, failures, next, error)
    secrets:   ref -> SecretEntry      (value, lease, expiry, renew-or-refetch, mints, failures,
                                        next, error)
    templates: template -> TemplateEntry (the secret entries its files on disk hold, failures,
                                        next, error, last render, files, last hook)
    changes:   a counter bumped at every change of a token or secret (what state.py saves)
    ready_at, counts, latency: readiness, outcomes counted by (what, result), Vault request
                               latency by operation (what `rconfd-py status` and the metrics
                               read: status.py, metrics.py)

A renewal updates an entry in place; a new fetch of a secret replaces its entry with a new one
(carrying over the mint history), so whoever kept the old entry (the files on disk rendered
from it) still sees the old expiry.
"""

from __future__ import annotations

from collections import deque

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .refs import SecretRef
    from .secret import Secret
    from .vault.auth import Token

MINT_HISTORY = 4  # mint times kept per secret (the rate limit looks at the last 3)
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # seconds; +Inf implied


class Plan:
    """What to do next with an entry, and when (unix time). `act` is one of policy.Act."""

    __slots__ = ("act", "at")

    def __init__(self, act: str, at: float):
        self.act = act
        self.at = at

    def __repr__(self) -> str:
        return f"Plan({self.act}, {self.at:.1f})"


class _Entry:
    __slots__ = ("error", "error_since", "failures", "in_doubt", "next", "timed_out")

    def __init__(self) -> None:
        self.failures = 0  # consecutive failures of its next action
        self.next: Plan | None = None
        self.error = ""  # the last failure's message ("" once it succeeds)
        self.error_since: float | None = None
        self.timed_out = 0.0  # the last attempt's timeout if it got no answer in time, else 0
        self.in_doubt = False  # a renewal timed out: it may have landed; look it up first

    def failed(self, message: str, now: float, timed_out: float = 0.0) -> int:
        """Record a failure (`timed_out`: the timeout of an attempt that got no answer in it,
        which the server may still process); return how many in a row."""
        self.failures += 1
        if self.error_since is None:
            self.error_since = now
        self.error = message
        self.timed_out = timed_out
        return self.failures

    def waiting(self, message: str, now: float) -> None:
        """Its request still waits for an answer past its timeout (the daemon's patience): shown
        as failing in status and metrics meanwhile, counted only once the request fails."""
        if self.error_since is None:
            self.error_since = now
        self.error = message

    def succeeded(self) -> None:
        self.failures = 0
        self.error = ""
        self.error_since = None
        self.timed_out = 0.0
        self.in_doubt = False


class TokenEntry(_Entry):
    """A role's token; `asked` is the TTL to ask for at each renew-self (the login's TTL)."""

    __slots__ = ("asked", "born", "token")

    def __init__(self, token: Token):
        super().__init__()
        self.token = token
        self.asked = token.ttl
        self.born = token.issued_at  # the login: renewals cannot extend it past its max TTL

    @property
    def role(self) -> str:
        return self.token.role

    @property
    def expires_at(self) -> float | None:
        return self.token.expires_at


class SecretEntry(_Entry):
    """A fetched secret (or, `secret` None, one wanted but not fetched yet).

    renew: renew its lease when due (True) or fetch a new secret (False); asked: the lease
    duration to ask for at each renewal; expires_at: the lease end or certificate expiration
    (None: static); mints: when its last credentials were minted."""

    __slots__ = ("asked", "expires_at", "mints", "ref", "renew", "secret")

    def __init__(self, ref: SecretRef, secret: Secret | None, mints: deque | None = None):
        super().__init__()
        self.ref = ref
        self.secret = secret
        lease = secret.lease if secret is not None else None
        self.renew = bool(lease and lease.id and lease.renewable and lease.duration > 0)
        self.asked = lease.duration if lease else 0.0
        self.expires_at = secret.expires_at if secret is not None else None
        self.mints: deque = mints if mints is not None else deque(maxlen=MINT_HISTORY)

    @property
    def leased(self) -> bool:
        return self.expires_at is not None

    @property
    def lease_id(self) -> str:
        lease = self.secret.lease if self.secret is not None else None
        return lease.id if lease else ""

    @property
    def fetched_at(self) -> float:
        return self.secret.fetched_at if self.secret is not None else 0.0

    @property
    def length(self) -> float:
        """What it was granted at its fetch (lease or certificate lifetime), whatever renewals
        made of `expires_at` since."""
        end = self.secret.expires_at if self.secret is not None else None
        return (end or self.fetched_at) - self.fetched_at


class Ledger:
    def __init__(self) -> None:
        self.tokens: dict[str, TokenEntry] = {}
        self.secrets: dict[SecretRef, SecretEntry] = {}
        self.templates: dict[object, TemplateEntry] = {}  # TemplateConf -> its files' state
        self.ready_at: float | None = None  # when the first pass completed (readiness)
        self.first = _Entry()  # the first pass, while it fails and is retried
        self.counts: dict[tuple[str, str], int] = {}  # ("renewal", "ok") -> n
        self.latency: dict[str, list] = {}  # operation -> [count per bucket..., +Inf, sum]
        self.changes = 0  # bumped when a token or secret is set, renewed or dropped (state.py)

    def changed(self) -> None:
        """A token or secret entry changed in place (a lease renewed): worth saving."""
        self.changes += 1

    # -- outcomes ------------------------------------------------------------------------------
    def count(self, what: str, result: str) -> None:
        """An outcome: what in renewal|refetch|login, result in ok|failed|refused."""
        self.counts[(what, result)] = self.counts.get((what, result), 0) + 1

    def observe(self, operation: str, seconds: float) -> None:
        """A Vault request's latency (a histogram: non-cumulative buckets, +Inf, then the
        sum)."""
        h = self.latency.get(operation)
        if h is None:
            h = self.latency[operation] = [0] * (len(LATENCY_BUCKETS) + 1) + [0.0]
        i = next((i for i, b in enumerate(LATENCY_BUCKETS) if seconds <= b),
                 len(LATENCY_BUCKETS))
        h[i] += 1
        h[-1] += max(0.0, seconds)

    def rendered(self, t: object, paths: tuple, now: float) -> TemplateEntry:
        """A template's files were written (or found up to date) at `now`."""
        entry = self.templates.get(t)
        if entry is None:
            entry = self.templates[t] = TemplateEntry()
        entry.rendered_at, entry.files = now, paths
        return entry

    # -- tokens ------------------------------------------------------------------------------
    def token(self, role: str) -> Token | None:
        entry = self.tokens.get(role)
        return entry.token if entry is not None else None

    def put_token(self, token: Token) -> TokenEntry:
        """A token from a login (a new entry) or a renewal (the same entry, updated)."""
        self.changes += 1
        entry = self.tokens.get(token.role)
        if entry is None or entry.token.accessor != token.accessor:
            entry = self.tokens[token.role] = TokenEntry(token)
        else:
            entry.token = token
        return entry

    # -- secrets -----------------------------------------------------------------------------
    def remember(self, secret: Secret, now: float) -> SecretEntry:
        """A secret just fetched: a new entry, carrying the mint history of the one it replaces
        (a leased secret counts as a mint)."""
        self.changes += 1
        old = self.secrets.get(secret.ref)
        mints = old.mints if old is not None else None
        entry = self.secrets[secret.ref] = SecretEntry(secret.ref, secret, mints)
        if entry.leased:
            entry.mints.append(now)
        return entry

    def want(self, ref: SecretRef) -> SecretEntry:
        """An entry for a secret not fetched yet (its fetch failed): it has a plan, no value."""
        entry = self.secrets.get(ref)
        if entry is None:
            entry = self.secrets[ref] = SecretEntry(ref, None)
        return entry

    def forget(self, ref: SecretRef) -> SecretEntry | None:
        self.changes += 1
        return self.secrets.pop(ref, None)

    def has(self, ref: SecretRef) -> bool:
        entry = self.secrets.get(ref)
        return entry is not None and entry.secret is not None

    def value(self, ref: SecretRef) -> object:
        return self.secrets[ref].secret.value

    def valid(self, ref: SecretRef, now: float, margin: float = 2.0) -> bool:
        """Fetched, and not about to expire."""
        entry = self.secrets.get(ref)
        return (entry is not None and entry.secret is not None
                and (entry.expires_at is None or entry.expires_at > now + margin))

    def leased(self) -> list[SecretEntry]:
        return [e for e in self.secrets.values() if e.secret is not None and e.leased]

    def soonest_end(self, now: float, but: object = None) -> float | None:
        """The first expiry still ahead among the tokens and leased secrets held, `but` (the
        entry a request is for) aside: how long the daemon may wait on one request without
        letting something else die."""
        ends = [e.expires_at for e in (*self.tokens.values(), *self.secrets.values())
                if e is not but and e.expires_at is not None and e.expires_at > now]
        return min(ends, default=None)

    def held_leases(self) -> dict[str, SecretEntry]:
        """Lease id -> entry, for every lease this process holds."""
        return {e.lease_id: e for e in self.secrets.values() if e.lease_id}


class TemplateEntry(_Entry):
    """A template's files on disk: the secret entries they were rendered from (the same
    entries the daemon renews, so a renewal extends them; one replaced by a new fetch keeps the
    old expiry), and the failed attempts to replace them."""

    __slots__ = ("failed_total", "files", "hook", "rendered_at", "sources")

    def __init__(self, sources: tuple[SecretEntry, ...] = ()):
        super().__init__()
        self.sources = sources
        self.rendered_at: float | None = None  # the last successful write
        self.files: tuple = ()  # the paths it writes
        self.hook = ""  # the last hook / reload outcome, e.g. "modified hook ok"
        self.failed_total = {"render": 0, "write": 0}  # failures by stage, ever

    @property
    def expires_at(self) -> float | None:
        """When the first credential in its files on disk dies (None: none expires, or no
        successful write yet)."""
        return min((e.expires_at for e in self.sources if e.expires_at is not None),
                   default=None)
