"""Admitting a tenant call: three concerns that share one Redis round trip.

- the rate limit (`ratelimit`): the tenant's plan bucket, when limits are enabled;
- usage metering (`usage`): one tally per call, served or refused, limits or not;
- the cache generation (`cache`): read so the memory tier can answer without a trip.

Each concern owns its keys and its reading of the reply; this module only puts them in
one `RateLimiter.exchange` so a tenant call costs one trip, and fails open: Redis
trouble serves the call unlimited, unmetered and without the memory tier. `Authorize`
calls `admit` once the principal is known, before the role checks (a refused call
costs us work too, and counts).
"""

from __future__ import annotations

import uuid

from starlette.requests import Request

from tenantry import cache, ratelimit, usage
from tenantry.config import Settings
from tenantry.models import Plan
from tenantry.observability.metrics import RATE_LIMIT_FAIL_OPEN

_STATE_DONE = "admission_done"


async def admit(request: Request, tenant_id: uuid.UUID, plan: Plan | None) -> None:
    """Meter the call, learn the cache generation, and apply the tenant's rate limit."""
    state = request.scope.setdefault("state", {})
    if state.get(_STATE_DONE):
        return
    state[_STATE_DONE] = True  # two Authorize aliases on one route count once
    cache.note_generation(tenant_id, None)  # known only once this round trip succeeds
    settings: Settings = request.app.state.settings
    plan = plan or Plan.FREE
    buckets = [ratelimit.tenant_bucket(settings, tenant_id, plan)]
    if not settings.rate_limit_enabled:
        buckets = []
    limiter = ratelimit.limiter_for(request)
    try:
        quota, (generation,) = await limiter.exchange(
            buckets, tally=usage.tally(tenant_id), reads=[cache.generation_key(tenant_id)]
        )
    except ratelimit.LimiterUnavailable as exc:
        if buckets:
            RATE_LIMIT_FAIL_OPEN.labels("tenant").inc()
            limiter.unavailable("tenant", exc, "serving without a limit (fail open)")
        return
    cache.note_generation(tenant_id, generation)
    if quota is not None:
        ratelimit.decide_tenant(request, plan, quota)
