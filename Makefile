# One task runner. Everything runs from the project's virtualenv in .venv, created on demand.

PYTHON ?= python3
VENV ?= .venv
# `docker compose` (the Compose v2 plugin) when it answers, else `docker-compose` (v1, e.g.
# Debian's); `make compose-check COMPOSE=...` to choose.
COMPOSE ?= $(shell if docker compose version >/dev/null 2>&1; then echo "docker compose"; \
	elif command -v docker-compose >/dev/null 2>&1; then echo docker-compose; fi)
# extra arguments, e.g. `make test PYTEST_ARGS='tests/unit -x'`, `make bench BENCH_ARGS=...`
PYTEST_ARGS ?=
# Test files run in 3 processes (most integration tests wait on brokers, thresholds and group
# joins, not on the CPU); `make test PYTEST_JOBS=` runs them one after another.
PYTEST_JOBS ?= -n 3 --dist loadfile
# The fault tests run at full size only in `make reliability`; `make test` runs their reduced
# size (parametrised `reduced`), so CI still proves every property within its budget.
PYTEST_MARKS ?= -m "not reliability"
BENCH_ARGS ?=

BIN := $(VENV)/bin
# Reinstall only when pyproject.toml changed since the last install.
STAMP := $(VENV)/.installed

.PHONY: venv demo test reliability lint bench compose-check

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -e '.[test]'
	touch $@

demo: venv
	$(BIN)/stationwatch dev

test: venv
	@$(BIN)/pytest $(PYTEST_JOBS) $(PYTEST_MARKS) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then \
		echo "make test: pytest collected no tests (exit 5): nothing was tested" >&2; \
	fi; \
	exit $$rc

# The fault tests of issue 12 at full size, and the bad-input fuzzing, one after another (they
# measure times and fill the CPU); a table of what each measured at the end, and in
# test-artifacts/reliability.json. `STATIONWATCH_RELIABILITY_SCALE=0.2` for a quicker run.
reliability: venv
	$(BIN)/pytest -m "reliability or bad_input" $(PYTEST_ARGS)

# All three run even when one fails, so one run shows every problem.
lint: venv
	@rc=0; \
	echo "$(BIN)/ruff check ."; $(BIN)/ruff check . || rc=1; \
	echo "$(BIN)/ruff format --check ."; $(BIN)/ruff format --check . || rc=1; \
	echo "$(BIN)/mypy"; $(BIN)/mypy || rc=1; \
	exit $$rc

# The worker measured from outside (ingest at saturation, sink, detection, API, memory, recovery,
# failover, two workers) against raw baselines in the same run; JSON. BENCH_ARGS=--quick: ~2 min.
bench: venv
	$(BIN)/stationwatch bench $(BENCH_ARGS)

compose-check:
	@if [ -z "$(strip $(COMPOSE))" ]; then \
		echo "make compose-check: neither 'docker compose' nor 'docker-compose' found;" \
			"install one (Debian: apt-get install docker-compose)" >&2; exit 1; fi
	$(COMPOSE) config -q
	@echo "docker-compose.yml is valid ($(COMPOSE))"
