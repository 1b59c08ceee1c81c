"""On a Citus cluster (the CI job's): a tenant's statements route to one shard, and the
RLS context reaches the workers. Skipped on a single PostgreSQL, unless the run says
it expects Citus (TENANTRY_EXPECT_CITUS=1), where a missing cluster is a failure."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import col

from tenantry.config import Settings
from tenantry.db import Database, compiled
from tenantry.models import Project, Task, Tenant
from tenantry.tasks.repository import _in_project
from tests.fixtures.factories import make_tenant
from tests.fixtures.tenant_data import make_project, make_tasks

pytestmark = pytest.mark.committed


@pytest.fixture
async def conn(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
    has_citus = await connection.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'citus'")
    if not has_citus:
        await connection.close()
        if os.environ.get("TENANTRY_EXPECT_CITUS"):
            pytest.fail("TENANTRY_EXPECT_CITUS is set but the database has no citus extension")
        pytest.skip("not a Citus cluster")
    yield connection
    await connection.close()


@pytest.fixture
async def data(db: Database) -> tuple[Tenant, Project, Tenant]:
    tenant, other = await make_tenant(db), await make_tenant(db)
    project = await make_project(db, tenant)
    await make_tasks(db, project, 3)
    await make_tasks(db, await make_project(db, other), 2)
    return tenant, project, other


def _sql(statement: sa.ClauseElement) -> str:
    return str(
        statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    )


async def _tasks_in_plan(
    conn: asyncpg.Connection, tenant: uuid.UUID, sql: str, *args: object
) -> int:
    async with conn.transaction():
        await conn.execute("SELECT set_app_context($1, '')", str(tenant))
        plan = "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN {sql}", *args))
    found = re.search(r"Task Count: (\d+)", plan)
    assert found, plan
    return int(found.group(1))


async def test_a_tenants_first_page_routes_to_one_shard(
    conn: asyncpg.Connection, data: tuple[Tenant, Project, Tenant], db: Database
) -> None:
    tenant, project, _ = data
    # The list's own template, bound as the read path binds it (asyncpg parameters).
    page = (
        _in_project(False, False, False)
        .order_by(col(Task.created_at).desc(), col(Task.id).desc())
        .limit(sa.bindparam("page_limit"))
    )
    values = {"tenant_id": tenant.id, "project_id": project.id, "page_limit": 21}
    sql, args = compiled(page, db.engine.dialect, values)
    assert await _tasks_in_plan(conn, tenant.id, sql, *args) == 1
    # The policy alone routes nothing: without `tenant_id = …` every shard is asked.
    assert await _tasks_in_plan(conn, tenant.id, "SELECT count(*) FROM tasks") > 1


async def test_the_orms_own_writes_route_to_one_shard(
    conn: asyncpg.Connection, data: tuple[Tenant, Project, Tenant]
) -> None:
    """The primary key (tenant_id, id) puts tenant_id into every flush's WHERE."""
    tenant, project, _ = data
    update = _sql(
        sa.update(Project)
        .where(col(Project.tenant_id) == tenant.id, col(Project.id) == project.id)
        .values(name="x")
    )
    assert await _tasks_in_plan(conn, tenant.id, update) == 1


async def test_the_context_reaches_the_workers(
    conn: asyncpg.Connection, data: tuple[Tenant, Project, Tenant]
) -> None:
    tenant, _, other = data
    count = "SELECT count(*) FROM tasks"
    async with conn.transaction():
        await conn.execute("SELECT set_app_context($1, '')", str(tenant.id))
        assert await conn.fetchval(count) == 3
    # What set_app_context replaced: set_config is not forwarded, so the workers see
    # no tenant and every distributed read is silently empty.
    async with conn.transaction():
        await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(other.id))
        assert await conn.fetchval(count) == 0
    assert await conn.fetchval(count) == 0  # no context at all: nothing


async def test_a_cross_tenant_insert_is_refused_on_the_shard(
    conn: asyncpg.Connection, data: tuple[Tenant, Project, Tenant]
) -> None:
    tenant, _, other = data
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with conn.transaction():
            await conn.execute("SELECT set_app_context($1, '')", str(tenant.id))
            await conn.execute(
                "INSERT INTO projects (id, tenant_id, name, created_at, updated_at)"
                " VALUES ($1, $2, 'planted', now(), now())",
                uuid.uuid4(),
                other.id,
            )
