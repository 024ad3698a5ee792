# The developer interface: every common task is one make target.
# uv is the only tool installed outside the project; it is pinned and bootstrapped here.

UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
RUN := $(UV) run --frozen
PYTHON ?= python3

# The image: tagged with what git says this tree is; both values are baked into it.
IMAGE ?= users-service
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GIT_REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BASE_IMAGE ?= python:3.11-slim
# The oldest Kubernetes the manifests must be valid for (preStop.sleep needs 1.30).
K8S_VERSION ?= 1.30.0
COMPOSE := VERSION=$(VERSION) GIT_REVISION=$(GIT_REVISION) docker compose

.DEFAULT_GOAL := help
.PHONY: help install run mail psql redis-cli token seed test test-system test-reliability bench lint format migrate-up migrate-down revision clean \
	docker compose-up compose-down docker-test validate-deploy k8s-image

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

install: $(UV) ## install the locked dependencies into .venv, compiled (a warm start is then seconds)
	$(UV) sync --frozen --compile-bytecode

# `exec`: make's child is the stack itself, with no shell or uv in between, so the SIGTERM
# make passes on reaches it; --stop-with-parent covers what make does not pass on
# (SIGINT or SIGHUP to make alone; make killed): devtools/parent_watch.py.
DEVTOOLS := exec .venv/bin/python -m devtools
# Where make run keeps its data and writes stack.env, banner.txt and mail/ (tests use their own).
VAR_DIR ?= var

run: install ## the whole stack locally: embedded PostgreSQL and Redis unless *_URL are set
	exec env APP_ENV=$${APP_ENV:-development} .venv/bin/python -m devtools run --var-dir $(VAR_DIR) --stop-with-parent

mail: ## the development inbox of make run: list, and show the newest (or MSG=<file>)
	@$(DEVTOOLS) mail --var-dir $(VAR_DIR) $(MSG)

psql: ## psql on the running stack's database (ARGS='-c "select 1"')
	@$(DEVTOOLS) psql --var-dir $(VAR_DIR) $(ARGS)

redis-cli: ## redis-cli on the running stack's Redis (ARGS='dbsize')
	@$(DEVTOOLS) redis-cli --var-dir $(VAR_DIR) $(ARGS)

token: ## a bearer token of make run's issuer, on the last line (SCOPES="users:read" for fewer)
	@$(DEVTOOLS) token --var-dir $(VAR_DIR) $(SCOPES)

seed: ## N realistic users (default 1000) through the users service, into the running stack
	@$(DEVTOOLS) seed --var-dir $(VAR_DIR) $(N)

# Coverage of each tier; .ci/run appends the tiers and checks the combined figure.
FAST_COV ?= --cov --cov-report=term --cov-fail-under=85
SYSTEM_COV ?= --cov --cov-report=term --cov-fail-under=0

test: install ## the fast tier, in process (embedded servers, or TEST_DATABASE_URL / TEST_REDIS_URL)
	$(RUN) pytest $(FAST_COV) --ignore=tests/system --ignore=tests/reliability

test-system: install ## real gunicorn and worker processes: signals, forking, recycling, metrics
	$(RUN) pytest $(SYSTEM_COV) tests/system

test-reliability: install ## deploys, crashes and outages under load, on servers it owns; prints a table
	$(RUN) pytest tests/reliability

bench: install ## benchmark: the service vs a bare Flask app, jobs, exports (needs wrk)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq wrk; } \
		|| { echo "make bench needs wrk (apt-get install wrk)"; exit 1; }
	$(RUN) python -m bench

lint: install ## ruff (lint and format check), mypy, and the layer contracts (import-linter)
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) lint-imports

format: install ## apply ruff's fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

migrate-up: install ## apply every migration (alembic upgrade head) to DATABASE_URL
	$(RUN) alembic upgrade head

migrate-down: install ## revert the latest migration on DATABASE_URL
	$(RUN) alembic downgrade -1

revision: install ## new migration from the models: make revision m="add column"
	$(RUN) alembic revision --autogenerate -m "$(m)"

docker: ## build the image users-service:<git describe> (BASE_IMAGE=… for a local base)
	docker build \
		--build-arg BASE_IMAGE=$(BASE_IMAGE) \
		--build-arg UV_VERSION=$(UV_VERSION) \
		--build-arg VERSION=$(VERSION) \
		--build-arg GIT_REVISION=$(GIT_REVISION) \
		--tag $(IMAGE):$(VERSION) .

compose-up: ## the stack in Docker (PROFILE=observability adds Jaeger, Prometheus, Grafana)
	$(if $(PROFILE),OTEL_EXPORTER_OTLP_ENDPOINT=$${OTEL_EXPORTER_OTLP_ENDPOINT:-http://jaeger:4318}) \
		$(COMPOSE) $(if $(PROFILE),--profile $(PROFILE)) up --build --detach
	@echo "API http://localhost:8000  Mailpit http://localhost:8025$(if $(PROFILE),  Jaeger http://localhost:16686  Prometheus http://localhost:9090  Grafana http://localhost:3000)"

compose-down: ## stop the Docker stack (data volumes are kept: docker compose down -v removes them)
	$(COMPOSE) --profile observability down --remove-orphans

docker-test: install ## build and run the image for real where a Docker engine starts (skips otherwise)
	VERSION=$(VERSION) GIT_REVISION=$(GIT_REVISION) UV_VERSION=$(UV_VERSION) $(RUN) python -m tests.docker.smoke

validate-deploy: install ## hadolint, compose and workflow schemas, Kubernetes manifests
	$(RUN) hadolint Dockerfile
	$(RUN) check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
	$(RUN) check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/ci.yml
	$(RUN) kubernetes-validate --kubernetes-version $(K8S_VERSION) --strict \
		$(filter-out %/kustomization.yaml,$(wildcard deploy/k8s/*.yaml))

# The image the example overlay deploys: IMAGE as given when it has a tag
# (registry.example.com/users-service:1.4.0), else IMAGE:VERSION, what `make docker` built.
K8S_IMAGE = $(if $(findstring :,$(lastword $(subst /, ,$(IMAGE)))),$(IMAGE),$(IMAGE):$(VERSION))

k8s-image: install ## point deploy/overlays/example at an image: make k8s-image IMAGE=registry/users-service:1.4.0
	$(RUN) python -m devtools k8s-image deploy/overlays/example/kustomization.yaml $(K8S_IMAGE)

clean: ## remove local data, caches and environments
	rm -rf var .venv $(TOOLS) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
