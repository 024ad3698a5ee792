# The developer interface: every common task is one make target.
# uv is the only tool installed outside the project; it is pinned and bootstrapped here.

UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
RUN := $(UV) run --frozen
PYTHON ?= python3

.DEFAULT_GOAL := help
.PHONY: help install run test test-reliability bench lint format migrate-up migrate-down revision clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

install: $(UV) ## install the locked dependencies into .venv
	$(UV) sync --frozen

run: install ## the whole stack locally: embedded PostgreSQL and Redis unless *_URL are set
	APP_ENV=$${APP_ENV:-development} $(RUN) python -m app dev

test: install ## the test suite with coverage (embedded servers, or TEST_DATABASE_URL / TEST_REDIS_URL)
	$(RUN) pytest --cov --cov-report=term --ignore=tests/reliability

test-reliability: install ## deploys, crashes and outages under load, on servers it owns; prints a table
	$(RUN) pytest tests/reliability

bench: install ## benchmark: the service vs a bare Flask app, jobs, exports (needs wrk)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq wrk; } \
		|| { echo "make bench needs wrk (apt-get install wrk)"; exit 1; }
	$(RUN) python -m bench

lint: install ## ruff (lint and format check) and mypy
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

format: install ## apply ruff's fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

migrate-up: install ## apply every migration (alembic upgrade head) to DATABASE_URL
	$(RUN) alembic upgrade head

migrate-down: install ## revert the latest migration on DATABASE_URL
	$(RUN) alembic downgrade -1

revision: install ## new migration from the models: make revision m="add column"
	$(RUN) alembic revision --autogenerate -m "$(m)"

clean: ## remove local data, caches and environments
	rm -rf var .venv $(TOOLS) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
