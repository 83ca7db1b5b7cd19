# Quick start: `make demo` then `make test`. Both create the venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: $(STAMP)
	$(VENV)/bin/rconfd-py demo

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# Benchmarks against OpenBao Agent (~20 min): writes benchmarks/results/latest.md and scale.png.
bench: $(STAMP)
	@test -x /usr/bin/time || { test "$$(id -u)" = 0 && apt-get install -y -qq time >/dev/null; }
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m benchmarks $(BENCH_ARGS)

check: $(STAMP)
	RCONFD_OUT=/tmp VAULT_ROLE=demo-role $(VENV)/bin/rconfd-py check -d templates/examples -j templates/lib

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
