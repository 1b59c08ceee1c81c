# syntax=docker/dockerfile:1.7
# One image for the API (`tenantry serve`, the default), the workers (`tenantry worker`)
# and the migration Job (`tenantry migrate`). Built from uv.lock, without the dev group
# (no embedded PostgreSQL/Valkey, no test tools), run as a numeric non-root user and
# happy on a read-only root filesystem: it writes only to /tmp and
# $PROMETHEUS_MULTIPROC_DIR, which Kubernetes mounts as emptyDir volumes.
#
#   docker build -t tenantry:dev .
#   docker run --rm -p 8000:8000 --env-file .env tenantry:dev

ARG PYTHON_VERSION=3.11
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# ---- builder: resolve nothing, install exactly the lock file into /app/.venv ------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS builder
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app

# Dependencies first: this layer is reused until uv.lock or pyproject.toml change.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --locked --no-dev --no-editable --no-install-project

# Then the project itself, as a regular (non-editable) wheel install into site-packages.
COPY pyproject.toml uv.lock README.md ./
COPY platform/ platform/
COPY workers/ workers/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable

# ---- runtime: the interpreter, the virtualenv and the migrations; no build tools --------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="tenantry" \
      org.opencontainers.image.description="Tenantry API, worker and migrations" \
      org.opencontainers.image.licenses="Proprietary"

RUN groupadd --system --gid 10001 tenantry \
    && useradd --system --uid 10001 --gid tenantry --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin tenantry \
    && install -d -o 10001 -g 10001 -m 0700 /run/prometheus

WORKDIR /app
# Owned by root and not writable by the app user: the code cannot be changed at run time.
COPY --from=builder /app/.venv /app/.venv
COPY alembic.ini ./
COPY alembic/ alembic/

ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ENVIRONMENT=production \
    TENANTRY_ALEMBIC_INI=/app/alembic.ini \
    PROMETHEUS_MULTIPROC_DIR=/run/prometheus

USER 10001:10001
# No HEALTHCHECK: the same image runs the API, workers and migrations, which are probed
# differently (Kubernetes probes in the chart, per-service healthchecks in compose.yaml).
# 8000: the API (and its /metrics); 9100: a worker's /metrics and /health.
EXPOSE 8000 9100
ENTRYPOINT ["tenantry"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
