"""`tenantry worker --check`: is the worker in this container alive? For Kubernetes exec
probes and Docker healthchecks, which run it every few seconds.

It asks the worker's own `GET /health` on WORKER_METRICS_PORT (200 while ARQ's main
task runs and Redis answers), so it checks this process, not any worker of the queue.
When the port is 0 (chosen at random, unknown here) it falls back to ARQ's health key
in Redis, which every worker of the queue refreshes.

Only the standard library is imported on the common path: no settings, no ARQ, no
SQLAlchemy (importing the worker's settings took seconds of CPU on a busy node). The
environment is read directly; `.env` files are not (a container has none). The
defaults match tenantry.config.Settings (tested).
"""

from __future__ import annotations

import http.client
import os
import sys

DEFAULT_PORT = 9100
DEFAULT_HOST = "0.0.0.0"  # noqa: S104  (where the worker listens; the probe asks loopback)
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_QUEUE_NAME = "tenantry:queue"
# Under the probe's own timeout (3 s in the chart); the worker bounds its Redis ping to 2 s.
TIMEOUT = 2.5
_ANY = {"", "0.0.0.0", "::", "[::]"}  # noqa: S104


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or os.environ.get(name.lower()) or default


def check_worker() -> int:
    """0 when the worker answers healthy, 1 otherwise (the reason on stderr)."""
    port = int(_env("WORKER_METRICS_PORT", str(DEFAULT_PORT)))
    if port == 0:
        return check_health_key()
    host = _env("WORKER_METRICS_HOST", DEFAULT_HOST)
    if host in _ANY:
        host = "::1" if ":" in host else "127.0.0.1"
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        connection.request("GET", "/health")
        response = connection.getresponse()
        body = response.read(512).decode("utf-8", "replace")
    except OSError as exc:
        print(f"worker unhealthy: {host}:{port}/health: {exc}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    if response.status != 200:
        print(f"worker unhealthy: {response.status} {body}", file=sys.stderr)
        return 1
    return 0


def check_health_key() -> int:
    """ARQ's health check: the key `<queue>:health-check` that running workers refresh."""
    import redis

    key = _env("QUEUE_NAME", DEFAULT_QUEUE_NAME) + ":health-check"
    client = redis.Redis.from_url(
        _env("REDIS_URL", DEFAULT_REDIS_URL), socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
    )
    try:
        value = client.get(key)
    except redis.RedisError as exc:
        print(f"worker unhealthy: Redis: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    if value is None:
        print(f"worker unhealthy: no {key} in Redis", file=sys.stderr)
        return 1
    return 0
