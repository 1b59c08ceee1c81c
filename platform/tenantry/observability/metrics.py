"""Our own metrics, defined once so every domain increments the same series.

Labels are bounded by design: never a tenant id, user id or raw path.

Every metric here is created at import, once per process: apps built repeatedly (tests)
share them instead of re-registering. Under several uvicorn workers the values live in
`PROMETHEUS_MULTIPROC_DIR` (see `observability.multiprocess`); each gauge names how the
processes' values combine.

Both processes import this module, but a metric that belongs to one component is
exported only by that one (see `OWNERS`): a worker that printed `tenantry_ready 0`
would page someone for an API that is fine, and an API that printed a queue age of 0
would hide a queue nobody consumes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any, Literal, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    generate_latest,
    multiprocess,
)

M = TypeVar("M", Counter, Gauge, Histogram, Summary)
_SERIES: dict[tuple[Any, tuple[str, ...]], Any] = {}


def series(metric: M, *values: str) -> M:
    """`metric.labels(*values)`, remembered for the process.

    prometheus_client validates the values and takes a lock on every `labels()` call,
    about 5 µs; the access path records seven series per request. Nothing here removes
    a series, so a remembered child is always the live one, and label values are
    bounded by design (see above), so the memo is too.
    """
    key = (metric, values)
    child = _SERIES.get(key)
    if child is None:
        child = _SERIES[key] = metric.labels(*values)
    return child


LOGINS = Counter("tenantry_logins_total", "Login attempts by outcome", ["outcome"])

RATE_LIMIT_DECISIONS = Counter(
    "tenantry_ratelimit_decisions_total",
    "Rate-limit decisions by rule, plan and decision (allowed, refused)",
    ["rule", "plan", "decision"],
)
RATE_LIMIT_FAIL_OPEN = Counter(
    "tenantry_ratelimit_fail_open_total",
    "Requests served without a limit check because Redis was unavailable",
    ["rule"],
)

CACHE_REQUESTS = Counter(
    "tenantry_cache_requests_total", "Cache lookups by cache and result", ["cache", "result"]
)

EMAILS = Counter(
    "tenantry_emails_total", "Outbox emails by outcome (sent, retried, dead)", ["outcome"]
)

JOBS = Counter(
    "tenantry_jobs_total", "Jobs finished by function and outcome", ["function", "outcome"]
)
JOB_DURATION = Histogram(
    "tenantry_job_duration_seconds",
    "Job run time by function",
    ["function"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
JOB_RETRIES = Counter("tenantry_job_retries_total", "Job retries by function", ["function"])
QUEUE_DEPTH = Gauge(
    "tenantry_queue_depth", "Jobs waiting in the queue", multiprocess_mode="livemax"
)
QUEUE_OLDEST_AGE = Gauge(
    "tenantry_queue_oldest_age_seconds",
    "Age of the oldest job waiting in the queue",
    multiprocess_mode="livemax",
)
QUEUE_DEFERRED = Gauge(
    "tenantry_queue_deferred",
    "Jobs in the queue scheduled for later (deferred or backing off before a retry)",
    multiprocess_mode="livemax",
)
JOBS_IN_PROGRESS = Gauge(
    "tenantry_jobs_in_progress", "Jobs running in this worker", multiprocess_mode="livesum"
)

WEBHOOK_DELIVERIES = Counter(
    "tenantry_webhook_deliveries_total",
    "Webhook delivery attempts by outcome (succeeded, retried, failed for good)",
    ["outcome"],
)
WEBHOOK_ATTEMPT_DURATION = Histogram(
    "tenantry_webhook_attempt_duration_seconds",
    "Time from connecting to the receiver's answer (or the error), per attempt",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WEBHOOK_PENDING = Gauge(
    "tenantry_webhook_pending_deliveries",
    "Webhook deliveries not yet succeeded or failed (all tenants), from the last relay run",
    multiprocess_mode="livemax",
)
WEBHOOK_OLDEST_PENDING_AGE = Gauge(
    "tenantry_webhook_oldest_pending_age_seconds",
    "Age of the oldest pending webhook delivery, from the last relay run",
    multiprocess_mode="livemax",
)
WEBHOOK_ENDPOINTS_DISABLED = Counter(
    "tenantry_webhook_endpoints_disabled_total",
    "Webhook endpoints disabled by the system, by reason (gone: a 410; failures: in a row)",
    ["reason"],
)

# --- HTTP (recorded by the instrumentator middleware, see observability.http) -----------

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests by method, route template and status code",
    ["method", "handler", "status"],
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by method and route template",
    ["method", "handler"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10),
)
HTTP_REQUEST_SIZE = Summary(
    "http_request_size_bytes", "Request body bytes (Content-Length) by route template", ["handler"]
)
HTTP_RESPONSE_SIZE = Summary(
    "http_response_size_bytes",
    "Response body bytes (Content-Length; 0 when streamed) by route template",
    ["handler"],
)
HTTP_IN_PROGRESS = Gauge(
    "http_requests_inprogress",
    "HTTP requests being served",
    ["method", "handler"],
    multiprocess_mode="livesum",
)

# --- Dependencies, refreshed when /metrics is scraped (and on pool activity) -------------

CREDENTIAL_CHANGES_HEARD = Gauge(
    "tenantry_credential_changes_heard",
    "1 while this API process hears PostgreSQL announce credential changes (kept "
    "credential checks may then stand 10 minutes instead of 30 s); the minimum over "
    "processes",
    multiprocess_mode="livemin",
)

DB_POOL_SIZE = Gauge(
    "tenantry_db_pool_size",
    "Connections the pools keep open (sessions + DB_READ_POOL_SIZE)",
    multiprocess_mode="livesum",
)
DB_POOL_CHECKED_OUT = Gauge(
    "tenantry_db_pool_checked_out",
    "Connections in use (checked out of the pools)",
    multiprocess_mode="livesum",
)
DB_POOL_OVERFLOW = Gauge(
    "tenantry_db_pool_overflow",
    "Connections open beyond the pool size (up to DB_MAX_OVERFLOW)",
    multiprocess_mode="livesum",
)
DB_POOL_MAX = Gauge(
    "tenantry_db_pool_max",
    "Most connections the pools may open (size + max overflow)",
    multiprocess_mode="livesum",
)
DB_POOL_WAITING = Gauge(
    "tenantry_db_pool_waiting",
    "Requests waiting for a connection because a pool is exhausted",
    multiprocess_mode="livesum",
)
READY = Gauge(
    "tenantry_ready",
    "1 when PostgreSQL and Redis answer the readiness checks, else 0",
    multiprocess_mode="mostrecent",
)
DEPENDENCY_UP = Gauge(
    "tenantry_dependency_up",
    "1 when a dependency answered its last check, else 0",
    ["dependency"],
    multiprocess_mode="mostrecent",
)

# Label values that dashboards and alerts query; created at zero so the series exist
# (and queries return 0, not "no data") before the first event.
PLANS = ("free", "pro", "enterprise")
EMAIL_OUTCOMES = ("sent", "retried", "dead")
JOB_OUTCOMES = ("success", "failure", "retry", "timeout", "cancelled")
LOGIN_OUTCOMES = ("success", "invalid_credentials")
# The per-tenant API rule (tenantry.ratelimit); 429s by plan are its refusals.
RATE_LIMIT_RULE_TENANT = "tenant"
CACHES = ("project", "projects", "task", "tasks")
CACHE_RESULTS = ("hit", "miss", "bypass")
DEPENDENCIES = ("postgres", "redis")
WEBHOOK_OUTCOMES = ("succeeded", "retried", "failed")
WEBHOOK_DISABLE_REASONS = ("gone", "failures")


def init_known_series(job_functions: Iterable[str] = ()) -> None:
    """Create the zero-valued series that dashboards and alerts rely on."""
    for outcome in EMAIL_OUTCOMES:
        EMAILS.labels(outcome)
    for outcome in LOGIN_OUTCOMES:
        LOGINS.labels(outcome)
    for plan in PLANS:
        for decision in ("allowed", "refused"):
            RATE_LIMIT_DECISIONS.labels(RATE_LIMIT_RULE_TENANT, plan, decision)
    RATE_LIMIT_FAIL_OPEN.labels(RATE_LIMIT_RULE_TENANT)
    for cache in CACHES:
        for result in CACHE_RESULTS:
            CACHE_REQUESTS.labels(cache, result)
    for dependency in DEPENDENCIES:
        DEPENDENCY_UP.labels(dependency)
    for outcome in WEBHOOK_OUTCOMES:
        WEBHOOK_DELIVERIES.labels(outcome)
    for reason in WEBHOOK_DISABLE_REASONS:
        WEBHOOK_ENDPOINTS_DISABLED.labels(reason)
    for function in job_functions:
        JOB_DURATION.labels(function)
        JOB_RETRIES.labels(function)
        for outcome in JOB_OUTCOMES:
            JOBS.labels(function, outcome)


Component = Literal["api", "worker"]

# Which process exports each metric family; families not listed (process_*, python_*)
# come from both. The API owns the queue gauges: it observes the queue on every scrape,
# so the backlog stays visible (and alerts) when no worker is left to report it.
API_FAMILIES = (
    "tenantry_ready",
    "tenantry_credential_changes_heard",
    "tenantry_dependency_up",
    "tenantry_db_pool_size",
    "tenantry_db_pool_checked_out",
    "tenantry_db_pool_overflow",
    "tenantry_db_pool_max",
    "tenantry_db_pool_waiting",
    "tenantry_queue_depth",
    "tenantry_queue_oldest_age_seconds",
    "tenantry_queue_deferred",
    "tenantry_logins",
    "tenantry_ratelimit_decisions",
    "tenantry_ratelimit_fail_open",
    "tenantry_cache_requests",
    "http_requests",
    "http_request_duration_seconds",
    "http_request_size_bytes",
    "http_response_size_bytes",
    "http_requests_inprogress",
)
WORKER_FAMILIES = (
    "tenantry_jobs",
    "tenantry_job_duration_seconds",
    "tenantry_job_retries",
    "tenantry_jobs_in_progress",
    "tenantry_emails",
    "tenantry_webhook_deliveries",
    "tenantry_webhook_attempt_duration_seconds",
    "tenantry_webhook_pending_deliveries",
    "tenantry_webhook_oldest_pending_age_seconds",
    "tenantry_webhook_endpoints_disabled",
)
_API: Component = "api"
_WORKER: Component = "worker"
OWNERS: dict[str, Component] = dict.fromkeys(API_FAMILIES, _API) | dict.fromkeys(
    WORKER_FAMILIES, _WORKER
)


class _ExportedBy(CollectorRegistry):
    """A view of another registry without the families another component owns."""

    def __init__(self, source: CollectorRegistry, component: Component) -> None:
        super().__init__(auto_describe=False)
        self._source = source
        self._component = component

    def collect(self) -> Iterator[Any]:
        for family in self._source.collect():
            if OWNERS.get(family.name, self._component) == self._component:
                yield family


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def render_latest(component: Component) -> tuple[bytes, str]:
    """The exposition text of `component`: every process's values when several share the
    directory, without the families another component owns."""
    registry: CollectorRegistry = REGISTRY
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(_ExportedBy(registry, component)), CONTENT_TYPE_LATEST
