"""`GET /users/me`, kept per process while nothing it shows has changed.

Every client's first call, and the one most often repeated: the account's columns and
its live tenants (slug, name, role) cost four PostgreSQL round trips (the context, the
user, the memberships, COMMIT) on top of the credential check. The body changes only
when a row changes that the unit of work already reports for the kept credential
check (`auth.principal_cache`): the user's row or one of their memberships (the user's
generation) or one of the tenants it lists (that tenant's generation). So a body is
answered again while those generations are the ones read *before* the read that
produced it: one Redis round trip (one script call) instead of four to PostgreSQL.

The first read of a user, or one whose tenant list differs from the kept one, is kept
unconfirmed, unless the request had read all its generations before it (the admission
call reads the user's and the token's tenant's: enough for a user of one tenant); the
next call reads them, then PostgreSQL again, and keeps that answer under them. Same trade as the
credential check: a write that bypasses the API's unit of work (SQL by hand, a script)
shows as soon as PostgreSQL's announcement of it is heard, or within `TTL_SECONDS`
where nothing is heard (Citus); without Redis every call reads PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

from tenantry import cache
from tenantry.auth.principal_cache import (
    Kept,
    hearing_epoch,
    tenant_generation_key,
    user_generation_key,
)

# A body is a few hundred bytes per tenant listed: 10,000 users' stay within megabytes.
MAX_ENTRIES = 10_000

Load = Callable[[], Awaitable[tuple[bytes, tuple[uuid.UUID, ...]]]]


@dataclass(frozen=True, slots=True)
class Body:
    body: bytes
    tenants: tuple[uuid.UUID, ...]
    generations: tuple[bytes, ...] | None  # None: unconfirmed


bodies: Kept[uuid.UUID, Body] = Kept(MAX_ENTRIES)


def _keys(user_id: uuid.UUID, tenants: tuple[uuid.UUID, ...]) -> list[str]:
    return [user_generation_key(user_id), *map(tenant_generation_key, tenants)]


def _known(keys: list[str], known: Mapping[str, bytes]) -> tuple[bytes, ...] | None:
    if not all(key in known for key in keys):
        return None
    return tuple(known[key] for key in keys)


async def read(
    redis: Redis, user_id: uuid.UUID, load: Load, known: Mapping[str, bytes] | None = None
) -> bytes:
    """The body for `user_id`: kept, while its generations hold, or `load()`ed.

    `known`: generations this request read already, by key, before calling here (its
    admission call reads the user's and the token's tenant's): for a user of that one
    tenant they are all the body depends on, and no second Redis call is made."""
    known = known or {}
    epoch = hearing_epoch()
    kept = bodies.get(user_id)
    generations = None
    if kept is not None:
        keys = _keys(user_id, kept.tenants)
        generations = _known(keys, known)
        if generations is None:
            generations = await cache.read_generations(redis, keys)
        if generations is not None and generations == kept.generations:
            return kept.body
    body, tenants = await load()
    # Trusted only under generations read before `load()`, of exactly these tenants.
    if kept is None or tenants != kept.tenants:
        generations = _known(_keys(user_id, tenants), known)
    bodies.put(user_id, Body(body, tenants, generations), epoch)
    return body
