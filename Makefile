# The Sociovia CRM backend. `make run` runs it; `make test` tests it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum < requirements.lock | cut -d' ' -f1)
PYTEST := $(BIN)/python -m pytest

.PHONY: help venv deps run test test-unit acceptance fuzz faults bench openapi rebuild-analytics clean

help:
	@echo "make run         start the whole system (local processes); Ctrl-C stops it"
	@echo "make test        unit, interface, integration and end-to-end tests"
	@echo "make acceptance  the black-box suite (../shared/acceptance) against a fresh stack"
	@echo "make fuzz        schemathesis over /api/openapi.json against a fresh stack (bin/fuzz.py)"
	@echo "make faults      the fault suite: kills, outages, redeliveries under load (docs/faults.md)"
	@echo "make bench       benchmarks (bench/)"
	@echo "make openapi     write docs/openapi.json, the document the gateway serves"
	@echo "make rebuild-analytics  recompute the dashboard aggregates from the leads service's data"

$(STAMP): requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

# RabbitMQ and PostgreSQL must answer; they are started when they do not.
deps: venv
	$(BIN)/python bin/stack.py --deps-only

run: deps
	$(BIN)/python bin/stack.py

test: deps
	$(PYTEST)

test-unit: venv
	$(PYTEST) services/*/tests/unit

acceptance: deps
	$(BIN)/python bin/acceptance.py

fuzz: deps
	$(BIN)/python bin/fuzz.py

# FAULTS_ARGS: e.g. --only kill9 webhook, or --no-restart-deps (leave RabbitMQ and PostgreSQL running)
faults: deps
	$(BIN)/python bin/faults.py $(FAULTS_ARGS)

bench: deps
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -q wrk >/dev/null; } \
	  || { echo "bench needs wrk: apt-get install wrk"; exit 1; }
	$(BIN)/python bench/run.py

# The OpenAPI document as the gateway serves it (a test keeps the file true).
openapi: venv
	cd services/gateway && PYTHONPATH=../../libs ../../$(BIN)/python -m gateway.openapi ../../docs/openapi.json

# The leads service must be running (make run); the analytics service may be.
rebuild-analytics: deps
	PYTHONPATH=libs:services/leads:services/contacts:services/tasks:services/campaigns:services/analytics:services/gateway \
	  $(BIN)/python -m analytics.rebuild

clean:
	rm -rf $(VENV) acceptance-stack.log contract-stack.log fuzz-report faults-logs .pytest_cache
