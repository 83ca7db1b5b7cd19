"""rconfd-py benchmarks against OpenBao Agent (`bao agent`), run side by side on one machine.

    python -m benchmarks [--runs N] [--daemon-seconds S] [--daemon-runs N] [--scale 1,10,100,1000] [--only ...]

Starts the dev stack (OpenBao with a file audit device, PostgreSQL), then runs the scenarios,
interleaving the two tools (A B A B ...) so that machine drift cancels out, and writes
benchmarks/results/latest.md (and scale.png when matplotlib is installed).
"""
