"""Admitting a tenant call: three concerns that share one Redis round trip.

- the rate limit (`ratelimit`): the tenant's plan bucket, when limits are enabled;
- usage metering (`usage`): one tally per call, served or refused, limits or not;
- the cache generation (`cache`): read so the memory tier can answer without a trip;
- the credential generations (`auth.principal_cache`): read so a kept credential check
  can be trusted without a trip to PostgreSQL.

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
from tenantry.auth import principal_cache
from tenantry.config import Settings
from tenantry.models import Plan
from tenantry.observability.metrics import RATE_LIMIT_FAIL_OPEN

_STATE_DONE = "admission_done"
_STATE_GENERATIONS = "admission_generations"


async def admit(
    request: Request,
    tenant_id: uuid.UUID,
    plan: Plan | None,
    user_id: uuid.UUID | None = None,
    *,
    meter: bool = True,
) -> principal_cache.Generations | None:
    """Meter the call, learn the cache generation, and apply the tenant's rate limit.

    With `user_id`, also read the generations a kept credential check of that user in
    this tenant is valid under; None when they could not be read (Redis trouble).
    """
    state = request.scope.setdefault("state", {})
    if state.get(_STATE_DONE):
        generations: principal_cache.Generations | None = state.get(_STATE_GENERATIONS)
        return generations
    state[_STATE_DONE] = True  # two Authorize aliases on one route count once
    cache.note_generation(tenant_id, None)  # known only once this round trip succeeds
    settings: Settings = request.app.state.settings
    plan = plan or Plan.FREE
    buckets = [ratelimit.tenant_bucket(settings, tenant_id, plan)]
    if not settings.rate_limit_enabled:
        buckets = []
    limiter = ratelimit.limiter_for(request)
    credentials_keys = []
    if user_id is not None:
        credentials_keys = [
            principal_cache.user_generation_key(user_id),
            principal_cache.tenant_generation_key(tenant_id),
        ]
    try:
        quota, (generation, *credentials) = await limiter.exchange(
            buckets,
            tally=usage.tally(tenant_id) if meter else None,
            reads=[cache.generation_key(tenant_id)],
            generations=credentials_keys,
            generation_ttl=cache.GENERATION_TTL_SECONDS,
        )
    except ratelimit.LimiterUnavailable as exc:
        if buckets:
            RATE_LIMIT_FAIL_OPEN.labels("tenant").inc()
            limiter.unavailable("tenant", exc, "serving without a limit (fail open)")
        return None
    cache.note_generation(tenant_id, generation)
    generations = (credentials[0], credentials[1]) if credentials else None
    state[_STATE_GENERATIONS] = generations
    if quota is not None:
        ratelimit.decide_tenant(request, plan, quota)
    return generations


async def readmit(request: Request, tenant_id: uuid.UUID, plan: Plan | None) -> None:
    """Decide the call again under `plan`: admitted under a kept credential check whose
    plan turned out stale (an upgrade or downgrade since). Metered once already."""
    request.scope.setdefault("state", {})[_STATE_DONE] = False
    ratelimit.forget(request)
    await admit(request, tenant_id, plan, meter=False)


def generations_read(request: Request) -> principal_cache.Generations | None:
    """What this call's admission read (see `admit`), even when it refused the call."""
    state = request.scope.setdefault("state", {})
    found: principal_cache.Generations | None = state.get(_STATE_GENERATIONS)
    return found


def generations_by_key(
    request: Request, user_id: uuid.UUID, tenant_id: uuid.UUID | None
) -> dict[str, bytes]:
    """The credential generations this call's admission read, by their keys (empty if
    it read none: no tenant, no kept check, Redis trouble)."""
    read = generations_read(request)
    if read is None or tenant_id is None:
        return {}
    user, tenant = read
    if user is None or tenant is None:
        return {}
    return {
        principal_cache.user_generation_key(user_id): user,
        principal_cache.tenant_generation_key(tenant_id): tenant,
    }
