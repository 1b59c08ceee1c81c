"""Migration 0010 (keys (tenant_id, id)) runs in place on a database with rows in it,
keeps every row and every reference, and goes back down cleanly."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
from alembic.config import Config

from alembic import command
from tenantry import embedded
from tenantry.cli import find_alembic_ini
from tests.fixtures import services as fixtures
from tests.fixtures.services import drop_database

BEFORE = "0009_webhooks"
AFTER = "0010_tenant_keys"


def _config(url: str) -> Config:
    config = Config(str(find_alembic_ini()))
    config.attributes.update(url=url, app_role=embedded.APP_ROLE, skip_logging=True)
    return config


@pytest.fixture
def database(test_services: fixtures.TestServices) -> Iterator[tuple[str, Config]]:
    admin = test_services.admin_dsn
    name = f"tenantry_keys_{uuid.uuid4().hex[:10]}"
    asyncio.run(embedded.ensure_roles_and_database(admin, name))
    try:
        yield name, _config(fixtures._url_for(admin, embedded.OWNER_ROLE, name))
    finally:
        asyncio.run(drop_database(admin, name))


async def _seed(admin_dsn: str, database: str) -> None:
    tenant, user, project, report = (uuid.uuid4() for _ in range(4))
    slug = f"s{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_dsn, database=database)
    try:
        await conn.execute(
            "INSERT INTO tenants (id, name, slug, plan, status)"
            " VALUES ($1, 'T', $2, 'free', 'active')",
            tenant,
            slug,
        )
        await conn.execute(
            "INSERT INTO users (id, email, username, full_name, password_hash, is_active,"
            " is_superuser) VALUES ($1, $2, $3, '', 'x', true, false)",
            user,
            f"{slug}@example.com",
            slug,
        )
        await conn.execute(
            "INSERT INTO memberships (id, tenant_id, user_id, role)"
            " VALUES (gen_random_uuid(), $1, $2, 'owner')",
            tenant,
            user,
        )
        await conn.execute(
            "INSERT INTO projects (id, tenant_id, name) VALUES ($1, $2, 'P')", project, tenant
        )
        task = uuid.uuid4()
        await conn.execute(
            "INSERT INTO tasks (id, tenant_id, project_id, title, status, priority, assignee_id)"
            " VALUES ($1, $2, $3, 'T', 'todo', 2, $4)",
            task,
            tenant,
            project,
            user,
        )
        await conn.execute(
            "INSERT INTO comments (id, tenant_id, task_id, author_id, body)"
            " VALUES (gen_random_uuid(), $1, $2, $3, 'c')",
            tenant,
            task,
            user,
        )
        await conn.execute(
            "INSERT INTO reports (id, tenant_id, kind, format, params, status, attempts)"
            " VALUES ($1, $2, 'tasks', 'csv', '{}', 'succeeded', 1)",
            report,
            tenant,
        )
        await conn.execute(
            "INSERT INTO report_chunks (tenant_id, report_id, seq, data) VALUES ($1, $2, 0, 'x')",
            tenant,
            report,
        )
        await conn.execute(
            "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, scopes)"
            " VALUES (gen_random_uuid(), $1, 'k', 'tnt_', $2, '{}')",
            tenant,
            slug,
        )
    finally:
        await conn.close()


async def _state(admin_dsn: str, database: str) -> dict[str, object]:
    conn = await asyncpg.connect(admin_dsn, database=database)
    try:
        counts = {
            table: await conn.fetchval(f"SELECT count(*) FROM {table}")
            for table in (
                "memberships",
                "projects",
                "tasks",
                "reports",
                "report_chunks",
                "api_keys",
            )
        }
        keys = {
            row["table"]: row["key"]
            for row in await conn.fetch(
                "SELECT conrelid::regclass::text AS table, pg_get_constraintdef(oid) AS key"
                " FROM pg_constraint WHERE contype = 'p' AND conrelid::regclass::text"
                " IN ('tasks', 'report_chunks')"
            )
        }
        return {"counts": counts, "keys": keys}
    finally:
        await conn.close()


def test_upgrades_in_place_and_back(
    database: tuple[str, Config], test_services: fixtures.TestServices
) -> None:
    name, config = database
    admin = test_services.admin_dsn
    command.upgrade(config, BEFORE)
    asyncio.run(_seed(admin, name))
    before = asyncio.run(_state(admin, name))
    assert set(before["counts"].values()) == {1}  # type: ignore[attr-defined]

    command.upgrade(config, AFTER)
    after = asyncio.run(_state(admin, name))
    assert after["counts"] == before["counts"]
    assert after["keys"] == {
        "tasks": "PRIMARY KEY (tenant_id, id)",
        "report_chunks": "PRIMARY KEY (tenant_id, report_id, seq)",
    }

    command.downgrade(config, BEFORE)
    assert asyncio.run(_state(admin, name)) == before
