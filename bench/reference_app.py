"""The yardstick: plain Starlette + asyncpg + pyjwt doing the same work as the API's
measured endpoints, with no cache and no framework extras, so a ratio to it says what
our layers cost.

Every request: verify the JWT the same way, then one transaction on a pooled
connection — BEGIN, the RLS context through `set_app_context(...)` exactly as
`tenantry.db` sets it, the credential check through `session_principal(...)` (the
statement the app runs), the endpoint's own statements as the app role, COMMIT —
and answer orjson. Five round trips for a read; the app is free to do better.

- `GET  /api/v1/projects/{id}/tasks?limit=20[&cursor=…]`: the list, keyset page 2 too
  (the API's cursor format, so the same targets drive both).
- `GET  /api/v1/tasks/{id}`: one task.
- `POST /api/v1/projects/{id}/tasks`, `PATCH /api/v1/tasks/{id}`: the write, its audit
  row and the webhook fan-out statement the app runs (`tenantry.webhooks.events`): it
  writes an event and deliveries only when the tenant has a subscribed endpoint, which
  the seeded tenants do not, so it inserts nothing. The app asks that question inside
  its write's own statement (with the audit row) and runs the fan-out only when an
  endpoint listens; the reference runs it every time. The rows written are the same.
- `GET  /api/v1/users/me`: the user and their memberships (the RLS user arm).

Run: DATABASE_URL=postgresql://tenantry_app@127.0.0.1/tenantry_bh_10 SECRET_KEY=… \
     uvicorn bench.reference_app:app --port 8100
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import jwt
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

SECRET = os.environ["SECRET_KEY"]
DSN = os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
POOL_SIZE = int(os.environ.get("REFERENCE_POOL_SIZE", "10"))

# As tenantry.db._SET_CONTEXT and tenantry.auth.dependencies._SESSION_PRINCIPAL.
CONTEXT = (
    "SELECT set_app_context($1, $2, p_api_key_hash => '', p_invitation_token_hash => '',"
    " p_maintenance => '')"
)
PRINCIPAL = "SELECT * FROM session_principal($1, $2, $3)"
COLUMNS = (
    "id, project_id, title, description, status, priority, assignee_id, due_date, "
    "created_at, updated_at"
)
LIST = f"""
SELECT {COLUMNS}
FROM tasks WHERE tenant_id = $1 AND project_id = $2
ORDER BY created_at DESC, id DESC LIMIT $3
"""
LIST_AFTER = f"""
SELECT {COLUMNS}
FROM tasks WHERE tenant_id = $1 AND project_id = $2 AND (created_at, id) < ($4, $5)
ORDER BY created_at DESC, id DESC LIMIT $3
"""
GET_TASK = f"SELECT {COLUMNS} FROM tasks WHERE tenant_id = $1 AND id = $2"
INSERT_TASK = f"""
INSERT INTO tasks (tenant_id, id, project_id, title, description, status, priority,
                   assignee_id, due_date, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
RETURNING {COLUMNS}
"""
AUDIT = """
INSERT INTO audit_events (tenant_id, id, created_at, actor_user_id, action, target_type,
                          target_id, ip, user_agent, data)
VALUES ($1, $2, $3, $4, $5, 'task', $6, $7, $8, $9)
"""
# tenantry.webhooks.events._FAN_OUT, with positional parameters.
FAN_OUT = """
WITH targets AS (
    SELECT id FROM webhook_endpoints
     WHERE tenant_id = $1 AND status = 'enabled'
       AND (events ? $3 OR events ? '*' OR id = $6)
       AND (CAST($6 AS uuid) IS NULL OR id = $6)
), event AS (
    INSERT INTO webhook_events (tenant_id, id, type, body, created_at)
    SELECT $1, $2, $3, $4, $5
     WHERE EXISTS (SELECT 1 FROM targets)
    RETURNING id
)
INSERT INTO webhook_deliveries (
    tenant_id, id, endpoint_id, event_id, event_type, status, attempt_count,
    max_attempts, next_attempt_at, created_at, updated_at)
SELECT $1, gen_random_uuid(), targets.id, event.id, $3, 'pending', 0,
       0, $5, $5, $5
  FROM targets CROSS JOIN event
RETURNING id, endpoint_id
"""
USER = """
SELECT id, email, username, full_name, is_active, is_superuser, email_verified_at, created_at
FROM users WHERE id = $1
"""
MEMBERSHIPS = """
SELECT m.tenant_id, t.slug AS tenant_slug, t.name AS tenant_name, m.role
FROM memberships m JOIN tenants t ON t.id = m.tenant_id
WHERE m.user_id = $1 AND t.deleted_at IS NULL
ORDER BY m.created_at, m.id
"""
STATUSES = frozenset({"todo", "doing", "done"})
WRITERS = frozenset({"owner", "admin", "member"})


class Refused(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


def _problem(status: int) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(
        orjson.dumps({"status": status}), status, headers, media_type="application/problem+json"
    )


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps(value, option=orjson.OPT_UTC_Z, default=str)
    return Response(body, status, headers, media_type="application/json")


def _claims(request: Request) -> tuple[uuid.UUID, uuid.UUID | None, uuid.UUID]:
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
        tenant = claims.get("tid")
        return (
            uuid.UUID(claims["sub"]),
            uuid.UUID(tenant) if tenant else None,
            uuid.UUID(claims["sid"]),
        )
    except (jwt.PyJWTError, KeyError, ValueError, TypeError):
        raise Refused(401) from None


async def _enter(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    tenant_id: uuid.UUID | None,
    session_id: uuid.UUID,
    *,
    need_tenant: bool = True,
) -> str | None:
    """Set the context and check the credential; the member's role in the tenant."""
    await conn.execute(CONTEXT, str(tenant_id) if tenant_id else "", str(user_id))
    state = await conn.fetchrow(PRINCIPAL, session_id, user_id, tenant_id)
    if (
        state is None
        or state["revoked_at"] is not None
        or state["expires_at"] <= datetime.now(UTC)
        or not state["is_active"]
    ):
        raise Refused(401)
    if need_tenant:
        if tenant_id is None or state["tenant_status"] is None or state["tenant_deleted_at"]:
            raise Refused(401)
        if state["role"] is None or state["tenant_status"] == "suspended":
            raise Refused(403)
    role: str | None = state["role"]
    return role


def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def _cursor_after(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        name, created, last_id = raw
        if name != "-created_at":
            raise ValueError(name)
        return datetime.fromisoformat(created), uuid.UUID(last_id)
    except (ValueError, TypeError) as exc:
        raise Refused(422) from exc


async def tasks(request: Request) -> Response:
    if request.method == "POST":
        return await create_task(request)
    try:
        user_id, tenant_id, session_id = _claims(request)
        project_id = uuid.UUID(request.path_params["project_id"])
        limit = int(request.query_params.get("limit", 20))
        cursor = request.query_params.get("cursor")
        after = _cursor_after(cursor) if cursor else None
        async with _pool(request).acquire() as conn, conn.transaction():
            await _enter(conn, user_id, tenant_id, session_id)
            if after is None:
                rows = await conn.fetch(LIST, tenant_id, project_id, limit + 1)
            else:
                rows = await conn.fetch(LIST_AFTER, tenant_id, project_id, limit + 1, *after)
    except Refused as refused:
        return _problem(refused.status)
    items = [dict(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        raw = orjson.dumps(["-created_at", last["created_at"].isoformat(), str(last["id"])])
        next_cursor = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return _json({"items": items, "next_cursor": next_cursor})


async def task(request: Request) -> Response:
    if request.method == "PATCH":
        return await update_task(request)
    try:
        user_id, tenant_id, session_id = _claims(request)
        task_id = uuid.UUID(request.path_params["task_id"])
        async with _pool(request).acquire() as conn, conn.transaction():
            await _enter(conn, user_id, tenant_id, session_id)
            row = await conn.fetchrow(GET_TASK, tenant_id, task_id)
    except Refused as refused:
        return _problem(refused.status)
    return _json(dict(row)) if row is not None else _problem(404)


def _fields(body: Any, *, create: bool) -> dict[str, Any]:
    """The task fields of a JSON body, checked as TaskCreate / TaskUpdate check them."""
    if not isinstance(body, dict):
        raise Refused(422)
    fields: dict[str, Any] = {}
    for name, value in body.items():
        if name == "title":
            if not isinstance(value, str) or not 1 <= len(value.strip()) <= 200:
                raise Refused(422)
            fields[name] = value.strip()
        elif name == "description":
            if value is not None and (not isinstance(value, str) or len(value) > 10_000):
                raise Refused(422)
            fields[name] = value
        elif name == "status":
            if value not in STATUSES:
                raise Refused(422)
            fields[name] = value
        elif name == "priority":
            if type(value) is not int or not 1 <= value <= 4:
                raise Refused(422)
            fields[name] = value
        elif name == "assignee_id":
            fields[name] = uuid.UUID(value) if value is not None else None
        elif name == "due_date":
            fields[name] = date.fromisoformat(value) if value is not None else None
        else:
            raise Refused(422)
    if create and "title" not in fields:
        raise Refused(422)
    return fields


def _event(type: str, tenant_id: uuid.UUID, task: dict[str, Any], at: datetime) -> str:
    """The webhook body, as tenantry.webhooks.events.payload builds it."""
    value = orjson.loads(orjson.dumps(task, option=orjson.OPT_UTC_Z, default=str))
    body = {
        "type": type,
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "tenant_id": str(tenant_id),
        "data": value,
    }
    return orjson.dumps(body).decode()


async def _record(
    conn: asyncpg.Connection,
    request: Request,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    action: str,
    task: dict[str, Any],
    data: dict[str, Any],
) -> None:
    """The audit row and the webhook fan-out, in the write's transaction."""
    at = datetime.now(UTC)
    client = request.client.host if request.client else None
    agent = (request.headers.get("user-agent") or "")[:400] or None
    await conn.execute(
        AUDIT,
        tenant_id,
        uuid.uuid4(),
        at,
        user_id,
        action,
        str(task["id"]),
        client,
        agent,
        orjson.dumps(data).decode(),
    )
    await conn.fetch(
        FAN_OUT, tenant_id, uuid.uuid4(), action, _event(action, tenant_id, task, at), at, None
    )


async def create_task(request: Request) -> Response:
    try:
        user_id, tenant_id, session_id = _claims(request)
        project_id = uuid.UUID(request.path_params["project_id"])
        try:
            fields = _fields(orjson.loads(await request.body()), create=True)
        except (orjson.JSONDecodeError, ValueError, TypeError):
            raise Refused(422) from None
        async with _pool(request).acquire() as conn, conn.transaction():
            if await _enter(conn, user_id, tenant_id, session_id) not in WRITERS:
                raise Refused(403)
            assert tenant_id is not None
            try:
                row = await conn.fetchrow(
                    INSERT_TASK,
                    tenant_id,
                    uuid.uuid4(),
                    project_id,
                    fields["title"],
                    fields.get("description"),
                    fields.get("status", "todo"),
                    fields.get("priority", 2),
                    fields.get("assignee_id"),
                    fields.get("due_date"),
                    datetime.now(UTC),
                )
            except asyncpg.ForeignKeyViolationError:
                raise Refused(404) from None
            value = dict(row)
            data = {"project_id": str(project_id), "title": value["title"]}
            await _record(conn, request, tenant_id, user_id, "task.created", value, data)
    except Refused as refused:
        return _problem(refused.status)
    return _json(value, 201, {"Location": f"/api/v1/tasks/{value['id']}"})


async def update_task(request: Request) -> Response:
    try:
        user_id, tenant_id, session_id = _claims(request)
        task_id = uuid.UUID(request.path_params["task_id"])
        try:
            fields = _fields(orjson.loads(await request.body()), create=False)
        except (orjson.JSONDecodeError, ValueError, TypeError):
            raise Refused(422) from None
        names = sorted(fields)
        sets = ", ".join(f"{name} = ${index}" for index, name in enumerate(names, start=3))
        statement = (
            f"UPDATE tasks SET {sets}{', ' if sets else ''}updated_at = now() "
            f"WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
        )
        async with _pool(request).acquire() as conn, conn.transaction():
            if await _enter(conn, user_id, tenant_id, session_id) not in WRITERS:
                raise Refused(403)
            assert tenant_id is not None
            row = await conn.fetchrow(statement, tenant_id, task_id, *(fields[n] for n in names))
            if row is None:
                raise Refused(404)
            value = dict(row)
            await _record(
                conn, request, tenant_id, user_id, "task.updated", value, {"fields": names}
            )
    except Refused as refused:
        return _problem(refused.status)
    return _json(value)


async def me(request: Request) -> Response:
    try:
        user_id, tenant_id, session_id = _claims(request)
        async with _pool(request).acquire() as conn, conn.transaction():
            await _enter(conn, user_id, tenant_id, session_id, need_tenant=False)
            user = await conn.fetchrow(USER, user_id)
            memberships = await conn.fetch(MEMBERSHIPS, user_id)
    except Refused as refused:
        return _problem(refused.status)
    if user is None:
        return _problem(404)
    value = dict(user)
    value["email_verified"] = value["email_verified_at"] is not None
    value["memberships"] = [dict(row) for row in memberships]
    return _json(value)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(DSN, min_size=POOL_SIZE, max_size=POOL_SIZE)
    yield
    await app.state.pool.close()


app = Starlette(
    routes=[
        Route("/api/v1/projects/{project_id}/tasks", tasks, methods=["GET", "POST"]),
        Route("/api/v1/tasks/{task_id}", task, methods=["GET", "PATCH"]),
        Route("/api/v1/users/me", me),
    ],
    lifespan=lifespan,
)
