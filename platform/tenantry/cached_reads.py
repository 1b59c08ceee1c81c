"""The one cached-read path, owned by the HTTP edge.

A handler hands `read_entity` / `read_page` a loader that calls its service; services
return models and never see Redis. The cache key is made here from the resource name,
the path ids and the *validated query model*, so a filter added to a list's query
model is part of the key without anyone remembering to add it. What the loader raises
(a typed `AppError`, e.g. not found) is answered as usual and never cached.

Deeper pages (`cursor` set) are cheap keyset reads and rarely repeated: not worth a key.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from tenantry import cache
from tenantry.deps import redis_of
from tenantry.errors import AppError
from tenantry.kit.pagination import PageParams, RowPage
from tenantry.kit.responses import Cached, body_of, entity, json_bytes, serialise

Load = Callable[[], Awaitable[BaseModel | RowPage]]


def page_key(name: str, query: PageParams, *path: uuid.UUID) -> str:
    """`name:path…:digest of every query field`; the cursor never reaches here."""
    fields = query.model_dump_json(exclude={"cursor"})
    digest = hashlib.sha256(fields.encode()).hexdigest()[:24]
    return ":".join([name, *map(str, path), digest])


async def cached(
    request: Request, tenant_id: uuid.UUID, key: str, load: Load, *, name: str
) -> Cached:
    """The serialised result of `load()`, from the tenant's cache when it holds it."""
    refusal: AppError | None = None

    async def fill() -> Cached | None:
        nonlocal refusal
        try:
            return serialise(await load())
        except AppError as exc:
            refusal = exc
            return None

    value = await cache.cached(redis_of(request), tenant_id, key, fill, cache=name)
    if value is None:
        assert refusal is not None
        raise refusal
    return value


async def read_entity(
    request: Request, tenant_id: uuid.UUID, name: str, id: uuid.UUID, load: Load
) -> Response:
    """One object with its ETag (304 when the client has it), cached under `name:id`."""
    return entity(request, await cached(request, tenant_id, f"{name}:{id}", load, name=name))


async def read_page(
    request: Request,
    tenant_id: uuid.UUID,
    name: str,
    query: PageParams,
    load: Load,
    *path: uuid.UUID,
) -> Response:
    """A list page; first pages are cached under a key made from `query` and `path`."""
    if query.cursor:  # never cached, so no ETag to compute either
        return json_bytes(body_of(await load()))
    value = await cached(request, tenant_id, page_key(name, query, *path), load, name=name)
    return json_bytes(value.body)
