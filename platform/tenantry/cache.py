"""Read-through cache for tenant data in Redis, with read-your-writes.

Keys are `t:{tenant_id}:…` so a tenant purge can delete them by prefix. Every entry key
carries the tenant's *generation*, a number kept in `t:{tenant_id}:gen`:

- a read looks up the generation and the entry in one round trip (a Lua script);
- the unit of work (`deps.UnitOfWorkRoute`) bumps the generation of every tenant its
  session wrote to *after* its commit and *before* the response is sent, so the
  writer's next read misses and sees the write;
- a reader that loaded stale rows before a concurrent commit stores them under the old
  generation, which no later read asks for: the fill/invalidate race cannot resurrect
  stale data.

Generations are Redis server time in microseconds (or the previous value + 1), so a
lost or purged generation key never comes back at an old number with entries still
alive. Misses are single-flight across processes (a short `SET NX` lock; the others
poll briefly, then read the database themselves). Any Redis error bypasses the cache
(counted as `result="bypass"`) and opens a one-second breaker, so a dead Redis costs
reads nothing. Writes that reach Redis only after a failed bump are bounded by the
entry TTL.

Each process also keeps recent entries in memory (`local`, a byte-bounded LRU) under
the same generation-carrying keys. It is read only when the request already knows the
tenant's current generation: `admission` reads it in the round trip every tenant call
makes anyway (`note_generation`), whether rate limits are on or off. So a local hit
costs no Redis round trip and is exactly as fresh as a Redis hit: a write bumps the
generation before its response, and the writer's next request, on any process, reads
the new one and misses. Without a known generation (Redis down) the local tier is
never consulted.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar

from redis import exceptions as redis_exc
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from tenantry.kit.responses import Cached
from tenantry.observability.metrics import CACHE_REQUESTS, series

logger = logging.getLogger("tenantry.cache")

ENTRY_TTL_SECONDS = 300
GENERATION_TTL_SECONDS = 86_400
LOCK_TTL_MS = 3_000
# A waiter polls for the lock holder's result this long, then reads the database itself.
WAIT_STEPS = 10
WAIT_STEP_SECONDS = 0.015
BREAKER_SECONDS = 1.0

# KEYS[1] = generation key; ARGV[1] = entry key prefix (the generation is appended),
# ARGV[2] = generation TTL, ARGV[3] = fill-lock TTL (ms). One round trip answers
# {generation, entry} on a hit, or {generation, false, 1 if this caller holds the fill
# lock}, so a miss costs no extra trip to take the lock.
_READ = """
local gen = redis.call('GET', KEYS[1])
if not gen then
  local t = redis.call('TIME')
  redis.call('SET', KEYS[1], string.format('%d', t[1] * 1000000 + t[2]), 'NX', 'EX', ARGV[2])
  gen = redis.call('GET', KEYS[1])
end
local key = ARGV[1] .. gen
local value = redis.call('GET', key)
if value then return {gen, value} end
local leader = redis.call('SET', key .. ':lock', '1', 'NX', 'PX', ARGV[3])
return {gen, false, leader and 1 or 0}
"""

# KEYS = the generation keys to bump; ARGV[1] = their TTL.
_BUMP = """
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
for _, key in ipairs(KEYS) do
  local cur = tonumber(redis.call('GET', key) or '0')
  redis.call('SET', key, string.format('%d', math.max(cur + 1, now)), 'EX', ARGV[1])
end
return #KEYS
"""
_bump_scripts: weakref.WeakKeyDictionary[Redis, AsyncScript] = weakref.WeakKeyDictionary()
# Each key's value, made if absent as the rate limiter's call makes the credential
# check's (the time in µs, for ARGV[1] seconds), so that a value read before Redis lost
# its data never matches one read after.
_READ_GENERATIONS = """
local values = {}
for i, key in ipairs(KEYS) do
  local value = redis.call('GET', key)
  if not value then
    local t = redis.call('TIME')
    value = string.format('%d', t[1] * 1000000 + t[2])
    redis.call('SET', key, value, 'EX', ARGV[1])
  end
  values[i] = value
end
return values
"""
_read_scripts: weakref.WeakKeyDictionary[Redis, AsyncScript] = weakref.WeakKeyDictionary()

_breakers: weakref.WeakKeyDictionary[Redis, float] = weakref.WeakKeyDictionary()
_REDIS_ERRORS = (redis_exc.RedisError, OSError)


def tenant_prefix(tenant_id: uuid.UUID) -> str:
    return f"t:{tenant_id}:"


def generation_key(tenant_id: uuid.UUID) -> str:
    return f"t:{tenant_id}:gen"


class LocalEntries:
    """This process's most recently used entries, bounded by their total size and, like
    the Redis entries, by ENTRY_TTL_SECONDS: a write whose generation bump failed (Redis
    down at that moment) is served stale no longer here than from Redis."""

    def __init__(self, max_bytes: int, *, ttl_seconds: float = ENTRY_TTL_SECONDS) -> None:
        self.max_bytes = max_bytes
        self.ttl_seconds = ttl_seconds
        self._entries: OrderedDict[str, tuple[Cached, float]] = OrderedDict()
        self._bytes = 0

    def get(self, key: str) -> Cached | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at <= time.monotonic():
            del self._entries[key]
            self._bytes -= len(value.body)
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: str, value: Cached) -> None:
        size = len(value.body)
        if size > self.max_bytes // 16 or key in self._entries:
            return  # one big page must not flush everything else
        self._entries[key] = (value, time.monotonic() + self.ttl_seconds)
        self._bytes += size
        self.resize(self.max_bytes)

    def resize(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        while self._bytes > self.max_bytes:
            _, (evicted, _) = self._entries.popitem(last=False)
            self._bytes -= len(evicted.body)


local = LocalEntries(max_bytes=64 * 1024 * 1024)  # resized from CACHE_LOCAL_MAX_BYTES
# (tenant, generation) as read in this request's admission round trip; see the top.
_known_generation: ContextVar[tuple[uuid.UUID, str] | None] = ContextVar(
    "cache_generation", default=None
)


def note_generation(tenant_id: uuid.UUID, generation: bytes | None) -> None:
    """Record the tenant's current generation, read by the caller's own round trip."""
    _known_generation.set((tenant_id, generation.decode()) if generation else None)


def _available(redis: Redis) -> bool:
    return _breakers.get(redis, 0.0) <= time.monotonic()


def _trip(redis: Redis, exc: BaseException) -> None:
    _breakers[redis] = time.monotonic() + BREAKER_SECONDS
    # Debug: the Redis client's breaker logs the outage once (tenantry.redis_client).
    logger.debug("cache bypassed, Redis unavailable: %s", type(exc).__name__)


async def cached(
    redis: Redis,
    tenant_id: uuid.UUID,
    name: str,
    fill: Callable[[], Awaitable[Cached | None]],
    *,
    cache: str,
) -> Cached | None:
    """The entry `name` of the tenant, or `fill()` (stored when it returns a value).

    `fill` answering None (e.g. not found) is passed through and not cached.
    """
    prefix = f"{tenant_prefix(tenant_id)}{name}:g"
    known = _known_generation.get()
    if known is not None and known[0] == tenant_id:
        value = local.get(prefix + known[1])
        if value is not None:
            series(CACHE_REQUESTS, cache, "hit").inc()
            return value
    if not _available(redis):
        CACHE_REQUESTS.labels(cache, "bypass").inc()
        return await fill()
    gen_key = generation_key(tenant_id)
    try:
        reply = await redis.eval(  # type: ignore[misc]
            _READ, 1, gen_key, prefix, str(GENERATION_TTL_SECONDS), str(LOCK_TTL_MS)
        )
    except _REDIS_ERRORS as exc:
        _trip(redis, exc)
        CACHE_REQUESTS.labels(cache, "bypass").inc()
        return await fill()
    key = prefix + reply[0].decode()
    if reply[1] is not None:
        series(CACHE_REQUESTS, cache, "hit").inc()
        value = Cached.unpack(reply[1])
        local.put(key, value)
        return value
    value = await _fill_once(redis, key, fill, leader=bool(reply[2]), cache=cache)
    if value is not None:
        local.put(key, value)
    return value


async def _fill_once(
    redis: Redis,
    key: str,
    fill: Callable[[], Awaitable[Cached | None]],
    *,
    leader: bool,
    cache: str,
) -> Cached | None:
    lock = key + ":lock"
    try:
        if not leader:
            for _ in range(WAIT_STEPS):
                await asyncio.sleep(WAIT_STEP_SECONDS)
                raw = await redis.get(key)
                if raw is not None:
                    series(CACHE_REQUESTS, cache, "hit").inc()
                    return Cached.unpack(raw)
    except _REDIS_ERRORS as exc:
        _trip(redis, exc)
        CACHE_REQUESTS.labels(cache, "bypass").inc()
        return await fill()
    series(CACHE_REQUESTS, cache, "miss").inc()
    value = await fill()
    if not leader:
        return value
    try:
        async with redis.pipeline(transaction=False) as pipe:
            if value is not None:
                pipe.set(key, value.pack(), ex=ENTRY_TTL_SECONDS)
            pipe.delete(lock)
            await pipe.execute()
    except _REDIS_ERRORS as exc:
        _trip(redis, exc)
    return value


async def read_generations(redis: Redis, keys: Sequence[str]) -> tuple[bytes, ...] | None:
    """The generations under `keys` (those `invalidate` bumps), in one script call; None
    when Redis does not answer (then nothing kept under them can be trusted)."""
    if not _available(redis):
        return None
    script = _read_scripts.get(redis)
    if script is None:
        script = _read_scripts[redis] = redis.register_script(_READ_GENERATIONS)
    try:
        return tuple(await script(keys=keys, args=[GENERATION_TTL_SECONDS]))
    except _REDIS_ERRORS as exc:
        _trip(redis, exc)
        return None


async def invalidate(
    redis: Redis, tenant_ids: set[uuid.UUID], generations: Sequence[str] = ()
) -> bool:
    """Make every cached entry of these tenants unreachable (bump their generations),
    and bump `generations` too (other keys in this scheme: the credential check's).
    False when Redis did not take it.

    One script call (EVALSHA) for all of them: every write pays for it, and a pipeline
    costs more of our CPU than the round trip it wraps."""
    keys = [generation_key(tenant_id) for tenant_id in tenant_ids] + list(generations)
    if not keys:
        return True
    script = _bump_scripts.get(redis)
    if script is None:
        script = _bump_scripts[redis] = redis.register_script(_BUMP)
    try:
        await script(keys=keys, args=[GENERATION_TTL_SECONDS])
    except _REDIS_ERRORS as exc:
        # The write is committed; entries already cached expire within ENTRY_TTL_SECONDS.
        # The credential generations are bumped again by whoever hears PostgreSQL
        # announce the change (auth.credential_changes), until Redis takes it.
        _trip(redis, exc)
        CACHE_REQUESTS.labels("invalidate", "bypass").inc()
        return False
    return True
