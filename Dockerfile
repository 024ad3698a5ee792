# One image for every process of the users service, chosen by command:
#   web         gunicorn -c gunicorn.conf.py      (the default)
#   worker      python -m worker
#   migrations  alembic upgrade head
#
#   make docker                          # tags users-service:$(git describe)
#   docker run --read-only --tmpfs /tmp -p 8000:8000 -e DATABASE_URL=… users-service
#
# There is no "# syntax=" line on purpose: it makes BuildKit pull a frontend image from
# a registry, and this must build where none is reachable. Nothing here needs BuildKit,
# so the classic builder builds it too.

# A locally made base (for example a debootstrapped Debian with its python3, python3-venv
# and ca-certificates) can replace the default; both stages must use the same one, since
# the virtual environment points at the base's interpreter.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS builder

# The Makefile passes its own pin (UV_VERSION) so that the image and the developers
# resolve the lock file with the same uv.
ARG UV_VERSION=0.13.9
# Behind a TLS-inspecting proxy, PyPI is reached only with that proxy's CA. A base image
# that carries such a bundle (the one `make docker-test` makes does) names it here;
# pip and uv otherwise trust their own built-in roots, not the system's.
ARG CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON=python3 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src

# uv lives in its own throwaway environment: Debian's python3 refuses a system-wide pip
# install (PEP 668), and nothing of it reaches the runtime stage.
RUN if [ -f "$CA_BUNDLE" ]; then export PIP_CERT="$CA_BUNDLE"; fi \
    && python3 -m venv /opt/uv \
    && /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}"

# Only the dependency manifests: this layer (the slow one) is rebuilt when the lock
# changes, not on every code change. The project itself is not a package
# ([tool.uv] package = false), so only its locked dependencies are installed; the dev
# group (test servers, linters) never is.
COPY pyproject.toml uv.lock ./
RUN if [ -f "$CA_BUNDLE" ]; then export SSL_CERT_FILE="$CA_BUNDLE"; fi \
    && /opt/uv/bin/uv sync --frozen --no-dev --no-install-project


FROM ${BASE_IMAGE} AS runtime

ARG BASE_IMAGE
ARG VERSION=dev
ARG GIT_REVISION=unknown

LABEL org.opencontainers.image.title="users-service" \
      org.opencontainers.image.description="Users API (Gunicorn), RQ worker and Alembic migrations" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_REVISION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

# tini as PID 1: the kernel gives PID 1 no default signal handlers and makes it the parent
# of every orphan. Gunicorn forks workers and RQ forks a work horse per job, so PID 1
# must forward SIGTERM and reap. A locally made base may already carry tini (no Debian
# mirror needed then).
# DL3008 (pin apt package versions) is ignored: tini comes in the version of the base
# image's Debian release; an exact Debian revision pinned here breaks the build as soon as
# that release's archive moves on, and differs between python:3.11-slim and a local base.
# hadolint ignore=DL3008
RUN if ! command -v tini >/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends tini \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && groupadd --gid 10001 app \
    && useradd --no-log-init --uid 10001 --gid 10001 \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin app

# The root filesystem may be read-only: every path the processes write is under /tmp
# (mount a tmpfs or emptyDir there) or /dev/shm (Gunicorn's worker heartbeats).
# HOME=/tmp gives libraries that look for a home directory a writable one.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus-multiproc \
    APP_VERSION=${VERSION} \
    GIT_REVISION=${GIT_REVISION}

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# pyproject.toml holds Alembic's configuration ([tool.alembic]); code stays owned by
# root, so the service cannot change what it runs.
COPY pyproject.toml gunicorn.conf.py ./
COPY alembic/ alembic/
COPY worker/ worker/
COPY app/ app/
# Bytecode now, since a read-only filesystem would make every process compile at start.
RUN python -m compileall -q app worker alembic gunicorn.conf.py

# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001

# 8000 the API; 9100 the Gunicorn master's /metrics; 9101 the RQ worker's /metrics.
EXPOSE 8000 9100 9101

# Gunicorn and RQ both read SIGTERM as "stop gracefully" (drain, then finish in-flight
# work). tini runs without -g on purpose: signalling the whole process group would hit
# Gunicorn's workers directly and skip the master's drain.
STOPSIGNAL SIGTERM
ENTRYPOINT ["tini", "--"]
CMD ["gunicorn", "-c", "gunicorn.conf.py"]

# No HEALTHCHECK: the same image runs the API, the worker and one-shot migrations, which
# need different checks. docker-compose.yml and the Kubernetes manifests define them per
# process (/readyz, python -m worker check).
