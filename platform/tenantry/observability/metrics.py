"""Our own metrics, defined once so every domain increments the same series.

Labels are bounded by design: never a tenant id, user id or raw path.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
