# Entry points of the CRM suite. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
SERVICES := profile segment recommend notify loyalty
SERVICE ?=

TOOLS := $(CURDIR)/.tools
UV := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/venv/bin/uv)
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: help sync run test test-e2e cov fmt lint typecheck check bench bench-segment db-upgrade db-downgrade db-revision run-api run-worker clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(TOOLS)/venv/bin/uv:
	@echo "[crm] installing uv into .tools/"
	python3 -m venv $(TOOLS)/venv
	$(TOOLS)/venv/bin/pip install --quiet --disable-pip-version-check uv

sync: $(UV) ## create/refresh the virtual environment from uv.lock
	@$(UV) sync --locked --quiet

run: sync ## start the whole suite (embedded PostgreSQL + NATS unless DATABASE_URL/NATS_URL are set)
	@$(PY) tools/devrun.py

test: sync ## run every test (SERVICE=name runs one service's tests)
	@$(PY) -m pytest $(if $(SERVICE),tests/$(SERVICE),) $(PYTEST_ARGS)

test-e2e: sync ## run the cross-service tier
	@$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

cov: sync ## coverage of libs/common (must be 100%)
	@$(PY) -m pytest tests/common --cov=crm_common --cov-report=term-missing --cov-fail-under=100 $(PYTEST_ARGS)

fmt: sync ## format and autofix
	@$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

lint: sync ## ruff format check, ruff lint, import boundaries
	@$(VENV)/bin/ruff format --check . && $(VENV)/bin/ruff check . && $(PY) -m pytest -q -p no:cacheprovider -p no:crm_common.testing.plugin tests/test_boundaries.py

typecheck: sync ## mypy --strict
	@$(VENV)/bin/mypy -p crm_common $(foreach s,$(SERVICES),-p crm_$(s)) && $(VENV)/bin/mypy tools

check: lint typecheck ## lint + typecheck

bench: sync ## benchmarks (figures, not pass/fail)
	@$(PY) bench/outbox_throughput.py
	@$(PY) bench/events_intake.py

bench-segment: sync ## segment benchmarks: RFM batch on 1M customers / 10M orders, order → membership latency
	@$(PY) bench/rfm_batch.py
	@$(PY) bench/membership_latency.py

db-upgrade: sync ## apply migrations: make db-upgrade SERVICE=profile
	@test -n "$(SERVICE)" || (echo "SERVICE= is required" && exit 2)
	@cd services/$(SERVICE) && $(VENV)/bin/alembic upgrade head

db-downgrade: sync ## roll back one migration: make db-downgrade SERVICE=profile
	@test -n "$(SERVICE)" || (echo "SERVICE= is required" && exit 2)
	@cd services/$(SERVICE) && $(VENV)/bin/alembic downgrade -1

db-revision: sync ## new migration: make db-revision SERVICE=profile MSG="add customers"
	@test -n "$(SERVICE)" -a -n "$(MSG)" || (echo "SERVICE= and MSG= are required" && exit 2)
	@cd services/$(SERVICE) && $(VENV)/bin/alembic revision --autogenerate -m "$(MSG)"

run-api: sync ## start one API: make run-api SERVICE=profile
	@test -n "$(SERVICE)" || (echo "SERVICE= is required" && exit 2)
	@$(PY) -m crm_$(SERVICE).app

run-worker: sync ## start one worker: make run-worker SERVICE=profile
	@test -n "$(SERVICE)" || (echo "SERVICE= is required" && exit 2)
	@$(PY) -m crm_$(SERVICE).worker

clean: ## remove the environment, caches and the embedded servers' data (.dev/)
	@if [ -L .dev/pg ]; then rm -rf "$$(readlink .dev/pg)"; fi
	rm -rf .dev .venv .mypy_cache .ruff_cache .pytest_cache .coverage htmlcov
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Container images (README, "Deploying"); the build context is the repository root.
TAG ?= 0.1.0
CONTAINER ?= docker
.PHONY: images
images: ## build the service images crm-<svc>:TAG: make images TAG=0.1.0 [SERVICE=profile] [CONTAINER=buildah]
	@for s in $(if $(SERVICE),$(SERVICE),$(SERVICES)); do \
		echo "[crm] building crm-$$s:$(TAG)"; \
		$(CONTAINER) build -f services/$$s/Dockerfile -t crm-$$s:$(TAG) . || exit 1; \
	done
