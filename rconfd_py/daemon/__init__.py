"""Daemon mode (-D): keep every rendered secret alive for as long as the process runs.

Three parts, read in this order to learn the renewal rules:

- policy.py: pure functions deciding the next action and its time (the rules, as a table);
- ledger.py (one level up): what the process holds, with each entry's next action;
- loop.py: the thin loop — timers, select(), signals — that calls Vault and the writer and
  applies the policy's answers;
- timers.py: the typed timer keys and the deadline heap.
"""
