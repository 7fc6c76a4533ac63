# `make demo` and `make test` work on a bare Debian machine with Python 3.11 (run as root, or with sudo).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
APT_GET := $(shell command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo) apt-get

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90

.PHONY: test lint typecheck pytest demo deploy-local venv system-packages benchmarks clean

$(BIN)/regsweep: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/regsweep

# Debian's Distribution registry (the real registry the tests and demo run), git
# (`git http-backend` serves git.url tests; benchmarks compare against `git rev-list`),
# skopeo and kubectl (clients nobody here wrote: the tests' judges of what we kept and of
# the Kubernetes API fixture; kubectl from Debian's kubernetes-client unless one is there),
# PostgreSQL (the pull store's second database, started by the tests), and Prometheus with
# its Pushgateway and promtool (the judges of the run metrics and the alert rules).
system-packages:
	@command -v docker-registry >/dev/null 2>&1 && command -v git >/dev/null 2>&1 && \
		command -v skopeo >/dev/null 2>&1 || \
		{ $(APT_GET) update -qq && $(APT_GET) install -y -qq docker-registry git skopeo >/dev/null; }
	@command -v kubectl >/dev/null 2>&1 || \
		{ $(APT_GET) update -qq && $(APT_GET) install -y -qq kubernetes-client >/dev/null; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || \
		{ $(APT_GET) update -qq && $(APT_GET) install -y -qq postgresql >/dev/null; }
	@command -v promtool >/dev/null 2>&1 && command -v prometheus-pushgateway >/dev/null 2>&1 || \
		{ $(APT_GET) update -qq && $(APT_GET) install -y -qq prometheus prometheus-pushgateway >/dev/null; }

lint: venv
	$(BIN)/ruff check flows tasks tests benchmarks notebooks
	$(BIN)/ruff format --check flows tasks tests benchmarks notebooks

typecheck: venv
	$(BIN)/mypy

pytest: venv system-packages
	$(BIN)/pytest -q

test: lint typecheck pytest

demo: venv system-packages
	PREFECT_HOME=$(CURDIR)/.demo/prefect $(BIN)/regsweep demo --workdir $(CURDIR)/.demo

# A local Prefect server and the demo's parts; deploy deployments/prefect.yaml, run it once
# on a process worker, wait for it (UI: the address it prints, while it runs).
deploy-local: venv system-packages
	$(BIN)/python -m flows.deploy_local

benchmarks: venv system-packages
	@status=0; for b in benchmarks/[!_]*.py; do \
		echo "== $$b"; $(BIN)/python $$b || status=1; done; exit $$status

clean:
	rm -rf $(VENV) .demo .deploy .pytest_cache .mypy_cache .ruff_cache
