"""Every statement the app sends about a tenant table names the tenant (`tenant_id = …`).

On Citus that predicate is what routes a statement to the one shard holding the tenant;
RLS alone routes nothing (every shard is asked). The repository base adds it to reads,
the primary key (tenant_id, id) puts it into the ORM's own UPDATE and DELETE, and inserts
carry the column. This drives the API through a tenant's working day, records every SQL
statement on the app's engine, and checks them; the few statements that must span
tenants by design are listed below with their reason.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import GLOBAL_TABLES, Role, Tenant, metadata
from tests.fixtures.accounts import bearer, sign_up, tokens_for
from tests.fixtures.factories import make_actor

API = "/api/v1"
TENANT_TABLES = {t.name for t in metadata.sorted_tables if "tenant_id" in t.c} - GLOBAL_TABLES
_TABLE = re.compile(r"\b(?:from|join|update|into)\s+(\w+)", re.IGNORECASE)
_NAMES_TENANT = re.compile(r"\btenant_id\b\s*(?:=|in\b)", re.IGNORECASE)
# Statements that span tenants on purpose (they fan out to every shard on Citus).
BY_DESIGN = {
    # A request carrying an API key has no tenant until its key is found.
    "api-key lookup": re.compile(r"from api_keys k join tenants t .* where k\.key_hash =", re.S),
    # Accepting an invitation happens before its tenant is known.
    "invitation lookup": re.compile(r"where invitations\.token_hash =", re.S),
    # A user's own list of tenants (RLS: their own membership rows).
    "my tenants": re.compile(
        r"from memberships join tenants .* where memberships\.user_id =", re.S
    ),
}


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine.sync_engine, "before_cursor_execute", record)


def _unrouted(statements: list[str]) -> list[str]:
    offenders = []
    for sql in statements:
        tables = {name.lower() for name in _TABLE.findall(sql)} & TENANT_TABLES
        if not tables or sql.lower().startswith("insert"):
            continue  # an INSERT carries tenant_id among its columns (RLS checks it)
        if _NAMES_TENANT.search(sql) or any(p.search(sql.lower()) for p in BY_DESIGN.values()):
            continue
        offenders.append(sql)
    return offenders


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def test_a_tenants_day_names_the_tenant_in_every_statement(
    client: httpx.AsyncClient, db: Database, settings: Settings, statements: list[str]
) -> None:
    user = await sign_up(client)
    pair = await tokens_for(client, user["username"])
    slug = f"org-{uuid.uuid4().hex[:8]}"
    tenant = await _ok(
        await client.post(
            f"{API}/tenants",
            json={"name": "Org", "slug": slug},
            headers=bearer(pair["access_token"]),
        ),
        201,
    )
    pair = await _ok(
        await client.post(
            f"{API}/auth/switch-tenant", json={"tenant": slug}, headers=bearer(pair["access_token"])
        )
    )
    headers = bearer(pair["access_token"])
    member = await make_actor(
        db,
        settings,
        tenant=Tenant(id=uuid.UUID(tenant["id"]), name="Org", slug=slug),
        role=Role.MEMBER,
    )

    project = await _ok(
        await client.post(f"{API}/projects", json={"name": "P"}, headers=headers), 201
    )
    await _ok(await client.get(f"{API}/projects", headers=headers))
    await _ok(
        await client.patch(f"{API}/projects/{project['id']}", json={"name": "Q"}, headers=headers)
    )
    tasks_url = f"{API}/projects/{project['id']}/tasks"
    task = await _ok(
        await client.post(
            tasks_url, json={"title": "T", "assignee_id": str(member.user.id)}, headers=headers
        ),
        201,
    )
    await _ok(await client.get(tasks_url, headers=headers))
    await _ok(await client.get(f"{API}/tasks/{task['id']}", headers=headers))
    await _ok(
        await client.patch(f"{API}/tasks/{task['id']}", json={"status": "doing"}, headers=headers)
    )
    await _ok(await client.get(f"{API}/members", headers=headers))
    await _ok(
        await client.post(
            f"{API}/invitations", json={"email": "x@example.com", "role": "member"}, headers=headers
        ),
        201,
    )
    await _ok(await client.get(f"{API}/invitations", headers=headers))
    key = await _ok(
        await client.post(
            f"{API}/api-keys", json={"name": "ci", "scopes": ["read"]}, headers=headers
        ),
        201,
    )
    await _ok(await client.get(f"{API}/projects", headers={"X-API-Key": key["key"]}))
    await _ok(await client.get(f"{API}/audit-events", headers=headers))
    await _ok(await client.delete(f"{API}/members/{member.user.id}", headers=headers), 204)
    await _ok(await client.delete(f"{API}/tasks/{task['id']}", headers=headers), 204)
    await _ok(await client.delete(f"{API}/projects/{project['id']}", headers=headers), 204)

    touched = {t for sql in statements for t in _TABLE.findall(sql.lower())} & TENANT_TABLES
    assert {
        "projects",
        "tasks",
        "memberships",
        "invitations",
        "api_keys",
        "audit_events",
    } <= touched
    assert _unrouted(statements) == []


def test_the_check_catches_a_statement_without_the_tenant() -> None:
    assert _unrouted(["UPDATE tasks SET title=$1 WHERE tasks.id = $2"]) != []
    assert _unrouted(["SELECT id FROM projects WHERE projects.tenant_id = $1"]) == []
