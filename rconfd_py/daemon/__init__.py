"""Daemon mode (-D): keep every rendered secret alive for as long as the process runs.

Three parts, read in this order to learn the renewal rules:

- policy.py: pure functions deciding the next action and its time (the rules, as a table);
- ledger.py (one level up): what the process holds, with each entry's next action;
- loop.py: the thin loop — timers, select(), dispatch — that calls Vault, records the answer in
  the ledger and applies the policy's answers.

Around them: tokens.py (the loop's token handlers: renew, look up, log in again and re-issue),
timers.py (typed timer keys, the deadline heap), signals.py (SIGTERM/SIGHUP, the self-pipe),
outage.py (outage log lines; the sys/health knock and the patience while Vault gives no
answer), renewal.py (one renewal or lookup racing an expiry, its outcome recorded),
rerender.py (re-rendering and its retries), reporting.py (status file, metrics), revoke.py
(--revoke-on-exit).
"""
