"""Rate limits counted in Redis and shared by every API process (the contract's "Limits").

Each decision is one round trip: a Lua script that checks every counter of the request
and, only if all have room, consumes one from each (INCR, and PEXPIRE on a counter's
first hit). Windows are fixed, start at a counter's first hit and end when its key
expires, so the window is timed by Redis itself and API hosts' clocks never disagree.
Why not fastapi-limiter / pyrate-limiter: README "Rate limits".

Rules: `tenant` (every tenant-scoped call, by plan; `tenantry.admission` runs it in
the round trip that also meters the call and reads the cache generation), and the
dependencies `LoginRateLimit`, `SignupRateLimit`, `PasswordResetRateLimit` for the
routes that take a password or send an email. The tenant rule fails open when Redis is
unavailable; the others fail closed with 503. The decision is kept on the request's
state and the HTTP shell writes the quota headers onto whatever response follows
(200, 404, 429 alike).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from redis import exceptions as redis_exc
from redis.asyncio import Redis
from starlette.types import Scope

from tenantry.config import Settings
from tenantry.errors import ServiceUnavailable, TooManyRequests
from tenantry.kit.clients import client_ip, ip_key
from tenantry.kit.openapi import declares
from tenantry.models import Plan
from tenantry.observability.metrics import RATE_LIMIT_DECISIONS, series
from tenantry.redis_client import GuardedRedis

logger = logging.getLogger("tenantry.ratelimit")

# ARGV[1] = n, the number of counters. KEYS[i] (i <= n) is one counter, ARGV[2i] its
# limit and ARGV[2i+1] its window in ms. All or nothing: a request refused by one counter
# consumes none of the others, so a caller locked out per IP does not also burn a
# username's allowance. The last ARGV[2n+3] KEYS (default 0) are only read: their values
# end the reply (the tenant's cache generation rides on this round trip). The last
# ARGV[2n+4] of those (default 0) are generations that must never read as absent: one
# that is (never bumped, or lost with Redis's data) is created first with the time in
# µs, as a bump would, expiring after ARGV[2n+5] seconds, so a value read before a loss
# never matches one read after it. Any KEYS between are tallies (the usage meter):
# INCR'd on every call, refused or not, with EXPIRE ARGV[2n+2] seconds, so metering rides
# on the same round trip.
# Reply: {refused, count_1, ttl_ms_1, ..., read_1, ...}; ttl < 0 means "no window yet".
_SCRIPT = """
local n = tonumber(ARGV[1])
local reads = tonumber(ARGV[2 * n + 3] or '0')
local counts, ttls = {}, {}
local refused = 0
for i = 1, n do
  counts[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  ttls[i] = redis.call('PTTL', KEYS[i])
  if counts[i] >= tonumber(ARGV[2 * i]) then refused = 1 end
end
if refused == 0 then
  for i = 1, n do
    counts[i] = redis.call('INCR', KEYS[i])
    if ttls[i] < 0 then
      ttls[i] = tonumber(ARGV[2 * i + 1])
      redis.call('PEXPIRE', KEYS[i], ttls[i])
    end
  end
end
for i = n + 1, #KEYS - reads do
  redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[2 * n + 2])
end
local reply = {refused}
for i = 1, n do
  reply[2 * i] = counts[i]
  reply[2 * i + 1] = ttls[i]
end
local made = tonumber(ARGV[2 * n + 4] or '0')
for i = #KEYS - reads + 1, #KEYS do
  local value = redis.call('GET', KEYS[i])
  if not value and i > #KEYS - made then
    local t = redis.call('TIME')
    value = string.format('%d', t[1] * 1000000 + t[2])
    redis.call('SET', KEYS[i], value, 'EX', ARGV[2 * n + 5])
  end
  reply[#reply + 1] = value
end
return reply
"""

_STATE_QUOTA = "ratelimit"


@dataclass(frozen=True, slots=True)
class Bucket:
    """One counter: `limit` requests per `window_ms`, under a Redis key."""

    key: str
    limit: int
    window_ms: int


@dataclass(frozen=True, slots=True)
class Quota:
    """The outcome of a check, as the client sees it in the headers."""

    allowed: bool
    limit: int
    remaining: int
    reset_after_ms: int
    decided_at: float  # epoch seconds, for X-RateLimit-Reset

    @property
    def reset_at(self) -> int:
        """Epoch seconds when the window ends (GitHub's X-RateLimit-Reset)."""
        return math.ceil(self.decided_at + self.reset_after_ms / 1000)

    @property
    def retry_after(self) -> int:
        """Whole seconds until the window ends; never 0, so clients do wait."""
        return max(1, math.ceil(self.reset_after_ms / 1000))

    def header_items(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset_at).encode()),
        ]


class LimiterUnavailable(Exception):
    """Redis could not decide (down, slow, or refusing commands)."""


class RateLimiter:
    """Runs the script against the process's Redis client; one per app."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self._script = redis.register_script(_SCRIPT)
        self._skip_until = 0.0
        self._last_logged: dict[str, float] = {}
        self._since_logged: dict[str, int] = {}

    async def hit(self, *buckets: Bucket) -> Quota:
        """Check and consume one request from every bucket, atomically."""
        quota, _ = await self.exchange(buckets)
        assert quota is not None
        return quota

    async def exchange(
        self,
        buckets: Sequence[Bucket],
        *,
        tally: tuple[str, int] | None = None,
        reads: Sequence[str] = (),
        generations: Sequence[str] = (),
        generation_ttl: int = 0,
    ) -> tuple[Quota | None, list[bytes | None]]:
        """One round trip: the buckets' decision (None without buckets), `tally`
        (key, ttl seconds) counted whatever the decision, and the values of `reads`,
        then of `generations` (each made, for `generation_ttl` seconds, if absent).

        Other concerns ride here so that a tenant call costs one trip, not three.
        """
        if time.monotonic() < self._skip_until:
            raise LimiterUnavailable("Redis timed out recently")
        keys = [b.key for b in buckets]
        args: list[int] = [len(buckets)]
        for b in buckets:
            args.extend((b.limit, b.window_ms))
        if tally is not None:
            keys.append(tally[0])
        args.append(tally[1] if tally is not None else 0)
        keys.extend(reads)
        keys.extend(generations)
        args.extend((len(reads) + len(generations), len(generations), generation_ttl))
        try:
            reply = await self._run(keys, args)
        except redis_exc.TimeoutError as exc:
            self._skip_until = time.monotonic() + self.settings.rate_limit_backoff_seconds
            raise LimiterUnavailable(type(exc).__name__) from exc
        except (redis_exc.RedisError, OSError) as exc:
            raise LimiterUnavailable(type(exc).__name__) from exc
        read = [value or None for value in reply[1 + 2 * len(buckets) :]]
        return (_quota(tuple(buckets), reply) if buckets else None), read

    async def _run(self, keys: list[str], args: list[int]) -> Any:
        """The script, down the shared connection where there is one (`GuardedRedis`
        retries a dead connection once, under its breaker, either way)."""
        redis = self.redis
        if not isinstance(redis, GuardedRedis) or redis.multiplexed is None:
            return await self._script(keys=keys, args=args)  # TLS, a unix socket, fakeredis
        multiplexed = redis.multiplexed
        sha = self._script.sha

        async def evalsha() -> Any:
            try:
                return await multiplexed.execute("EVALSHA", sha, len(keys), *keys, *args)
            except redis_exc.NoScriptError:
                # A restarted or flushed Redis: EVAL loads it again.
                return await multiplexed.execute("EVAL", _SCRIPT, len(keys), *keys, *args)

        return await redis.guarded(evalsha)

    def unavailable(self, rule: str, reason: BaseException, outcome: str) -> None:
        """Log a Redis outage at most once per interval per rule, with how many
        requests it touched since the last message, instead of once per request."""
        now = time.monotonic()
        self._since_logged[rule] = self._since_logged.get(rule, 0) + 1
        last = self._last_logged.get(rule)
        if last is not None and now - last < self.settings.rate_limit_log_interval_seconds:
            return
        logger.warning(
            "rate limit '%s' could not reach Redis (%s): %s; %d request(s) since last notice",
            rule,
            reason,
            outcome,
            self._since_logged[rule],
        )
        self._last_logged[rule] = now
        self._since_logged[rule] = 0


def _quota(buckets: tuple[Bucket, ...], reply: list[Any]) -> Quota:
    refused = int(reply[0]) == 1
    now = time.time()
    best: Quota | None = None
    for i, bucket in enumerate(buckets):
        count = int(reply[2 * i + 1])
        ttl = int(reply[2 * i + 2])
        if ttl < 0:
            ttl = bucket.window_ms
        full = count >= bucket.limit
        if refused and not full:
            continue  # the headers name the counter that refused
        quota = Quota(
            allowed=not refused,
            limit=bucket.limit,
            remaining=max(0, bucket.limit - count),
            reset_after_ms=ttl,
            decided_at=now,
        )
        # Report the tightest counter: fewest left, then the longest wait.
        if best is None or (quota.remaining, -quota.reset_after_ms) < (
            best.remaining,
            -best.reset_after_ms,
        ):
            best = quota
    assert best is not None
    return best


def limiter_for(request: Request) -> RateLimiter:
    state = request.app.state
    limiter: RateLimiter | None = getattr(state, "ratelimiter", None)
    if limiter is None or limiter.redis is not state.redis:
        limiter = RateLimiter(state.redis, state.settings)
        state.ratelimiter = limiter
    return limiter


def response_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """The quota headers for this request's response (the HTTP shell adds them)."""
    quota: Quota | None = scope.get("state", {}).get(_STATE_QUOTA)
    return quota.header_items() if quota is not None else []


def _remember(request: Request, quota: Quota) -> None:
    state = request.scope.setdefault("state", {})
    current: Quota | None = state.get(_STATE_QUOTA)
    if current is None or (quota.allowed, quota.remaining) < (current.allowed, current.remaining):
        state[_STATE_QUOTA] = quota


def forget(request: Request) -> None:
    """Drop the quota remembered for the headers: the call is about to be decided again."""
    request.scope.setdefault("state", {}).pop(_STATE_QUOTA, None)


def _decide(request: Request, rule: str, plan: str, quota: Quota, what: str) -> None:
    _remember(request, quota)
    series(RATE_LIMIT_DECISIONS, rule, plan, "allowed" if quota.allowed else "refused").inc()
    if not quota.allowed:
        window = request.app.state.settings.rate_limit_window_seconds
        raise TooManyRequests(
            f"Rate limit of {quota.limit} {what} per {window} seconds exceeded; "
            f"retry in {quota.retry_after} seconds",
            headers={"Retry-After": str(quota.retry_after)},
        )


# --- the tenant rule ------------------------------------------------------------------


def plan_limit(settings: Settings, plan: Plan) -> int:
    return {
        Plan.FREE: settings.rate_limit_free,
        Plan.PRO: settings.rate_limit_pro,
        Plan.ENTERPRISE: settings.rate_limit_enterprise,
    }[plan]


def tenant_bucket(settings: Settings, tenant_id: uuid.UUID, plan: Plan) -> Bucket:
    """The tenant's counter. Only the limit (not the key) depends on the plan, so an
    upgrade or downgrade applies to the next call against the same window."""
    return Bucket(
        f"rl:tenant:{{{tenant_id}}}",
        plan_limit(settings, plan),
        settings.rate_limit_window_seconds * 1000,
    )


def decide_tenant(request: Request, plan: Plan, quota: Quota) -> None:
    """Remember the tenant rule's quota for the headers; 429 when the window is spent."""
    _decide(request, "tenant", plan.value, quota, "requests")


# --- login, sign-up, password reset -------------------------------------------------


async def _enforce_closed(request: Request, rule: str, buckets: list[Bucket], what: str) -> None:
    limiter = limiter_for(request)
    try:
        quota = await limiter.hit(*buckets)
    except LimiterUnavailable as exc:
        RATE_LIMIT_DECISIONS.labels(rule, "none", "unavailable").inc()
        limiter.unavailable(rule, exc, "refusing with 503 (fail closed)")
        raise ServiceUnavailable(
            "This endpoint is temporarily unavailable; try again shortly"
        ) from None
    _decide(request, rule, "none", quota, what)


def _per_ip(request: Request, rule: str, limit: int) -> Bucket:
    settings: Settings = request.app.state.settings
    return Bucket(
        f"rl:{rule}:{{{ip_key(client_ip(request))}}}",
        limit,
        settings.rate_limit_window_seconds * 1000,
    )


async def _form_username(request: Request) -> str:
    """The OAuth2 form's username, case-folded. `request.form()` is cached on the
    request, which FastAPI hands to the handler too, so the body is read only once."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return ""
    try:
        form = await request.form()
    except Exception:  # malformed multipart: the handler answers 422 for it
        return ""
    value = form.get("username")
    return value.strip().casefold()[:320] if isinstance(value, str) else ""


@declares(429, 503)  # fails closed: 503 when Redis cannot decide
async def login_rate_limit(request: Request) -> None:
    """Per client IP and username, and per client IP across usernames."""
    settings: Settings = request.app.state.settings
    if not settings.rate_limit_enabled:
        return
    ip = ip_key(client_ip(request))
    username = await _form_username(request)
    # Keyed, so the usernames people tried are not readable from a Redis dump.
    digest = hashlib.blake2b(
        f"{ip}\0{username}".encode(),
        key=settings.secret_key.get_secret_value().encode()[:64],
        digest_size=16,
    ).hexdigest()
    window = settings.rate_limit_window_seconds * 1000
    buckets = [
        Bucket(f"rl:login:{{{ip}}}:u:{digest}", settings.rate_limit_login, window),
        Bucket(f"rl:login:{{{ip}}}", settings.rate_limit_login_ip, window),
    ]
    await _enforce_closed(request, "login", buckets, "login attempts")


@declares(429, 503)  # fails closed: 503 when Redis cannot decide
async def signup_rate_limit(request: Request) -> None:
    """Sign-ups per client IP."""
    settings: Settings = request.app.state.settings
    if settings.rate_limit_enabled:
        bucket = _per_ip(request, "signup", settings.rate_limit_signup)
        await _enforce_closed(request, "signup", [bucket], "sign-ups")


@declares(429, 503)  # fails closed: 503 when Redis cannot decide
async def password_reset_rate_limit(request: Request) -> None:
    """Password-reset requests per client IP."""
    settings: Settings = request.app.state.settings
    if settings.rate_limit_enabled:
        bucket = _per_ip(request, "password_reset", settings.rate_limit_password_reset)
        await _enforce_closed(request, "password_reset", [bucket], "password-reset requests")


# For a route's `dependencies=[...]`, which FastAPI runs before the handler's own
# parameters: the limit is checked before any password is hashed or email queued.
LoginRateLimit: Any = Depends(login_rate_limit)
SignupRateLimit: Any = Depends(signup_rate_limit)
PasswordResetRateLimit: Any = Depends(password_reset_rate_limit)
