"""The yardstick: plain Starlette + asyncpg + pyjwt doing the same work as
`GET /api/v1/projects/{id}/tasks?limit=20` — verify the JWT the same way, check the
session/membership/tenant in one query under the same RLS settings, run the same list
query as the app role, answer orjson. No cache, no framework extras.

Run: DATABASE_URL=postgresql://tenantry_app@127.0.0.1/tenantry_bench SECRET_KEY=… \
     uvicorn bench.reference_app:app --port 8100
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import jwt
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

SECRET = os.environ["SECRET_KEY"]
DSN = os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")

CONTEXT = "SELECT set_config('app.tenant_id', $1, true), set_config('app.user_id', $2, true)"
STATE = """
SELECT s.revoked_at, s.expires_at, u.is_active, m.role, t.status, t.deleted_at
FROM auth_sessions s
JOIN users u ON u.id = s.user_id
LEFT JOIN tenants t ON t.id = $3::uuid
LEFT JOIN memberships m ON m.tenant_id = t.id AND m.user_id = u.id
WHERE s.id = $1 AND s.user_id = $2
"""
LIST = """
SELECT id, project_id, title, description, status, priority, assignee_id, due_date,
       created_at, updated_at
FROM tasks WHERE tenant_id = $1 AND project_id = $2
ORDER BY created_at DESC, id DESC LIMIT $3
"""


def _unauthorized() -> Response:
    return Response(b'{"status":401}', 401, {"WWW-Authenticate": "Bearer"})


async def tasks(request: Request) -> Response:
    header = request.headers.get("authorization", "")
    try:
        claims = jwt.decode(
            header.removeprefix("Bearer "),
            SECRET,
            algorithms=["HS256"],
            audience="tenantry-api",
            issuer="tenantry",
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti", "type"]},
        )
        user_id, tenant_id = uuid.UUID(claims["sub"]), uuid.UUID(claims["tid"])
        session_id = uuid.UUID(claims["sid"])
    except (jwt.PyJWTError, KeyError, ValueError, TypeError):
        return _unauthorized()
    project_id = uuid.UUID(request.path_params["project_id"])
    limit = int(request.query_params.get("limit", 20))
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(CONTEXT, str(tenant_id), str(user_id))
        state = await conn.fetchrow(STATE, session_id, user_id, tenant_id)
        if (
            state is None
            or state["revoked_at"] is not None
            or state["expires_at"] <= datetime.now(UTC)
            or state["role"] is None
        ):
            return _unauthorized()
        rows = await conn.fetch(LIST, tenant_id, project_id, limit + 1)
    items = [dict(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        raw = orjson.dumps(["-created_at", last["created_at"].isoformat(), str(last["id"])])
        next_cursor = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    body = orjson.dumps(
        {"items": items, "next_cursor": next_cursor}, option=orjson.OPT_UTC_Z, default=str
    )
    return Response(body, media_type="application/json")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(DSN, min_size=10, max_size=10)
    yield
    await app.state.pool.close()


app = Starlette(routes=[Route("/api/v1/projects/{project_id}/tasks", tasks)], lifespan=lifespan)
