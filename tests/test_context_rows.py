"""`context_rows()`: a GET's read and its RLS context in one round trip (single
PostgreSQL). Committed rows and the real lane, as in production."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from tenantry import context_rows
from tenantry.config import Settings
from tenantry.db import ContextReads, Database, RawReads
from tenantry.main import create_app
from tenantry.models import Project, Task
from tenantry.tasks.schemas import TaskSort
from tests.fixtures.factories import Actor, make_tenant

pytestmark = pytest.mark.committed


@pytest.fixture
async def lane(settings: Settings) -> AsyncIterator[Database]:
    """A database of its own with a one-connection lane, so every read meets the same
    connection (and what it prepared), as the single PostgreSQL it is."""
    db = Database.from_settings(settings.model_copy(update={"db_read_pool_size": 1}))
    assert await db.detect_citus() is False
    yield db
    await db.dispose()


async def _tasks(db: Database, tenant_id: uuid.UUID, titles: list[str]) -> uuid.UUID:
    async with db.session_scope(tenant_id) as session:
        project = Project(tenant_id=tenant_id, name="Lane")
        session.add(project)
        await session.flush()
        for title in titles:
            session.add(Task(tenant_id=tenant_id, project_id=project.id, title=title))
    return project.id


def _titles(project_id: uuid.UUID | None = None) -> sa.Select[tuple[str]]:
    """No tenant filter at all: only RLS keeps a read to its tenant."""
    stmt = sa.select(col(Task.title)).order_by(col(Task.title))
    if project_id is not None:
        stmt = stmt.where(col(Task.project_id) == project_id)
    return stmt


async def _setting(db: Database, name: str) -> str | None:
    """What the lane's pooled connection holds for `name` between requests."""
    connection = await db.lane.acquire()
    try:
        value: str | None = await connection.fetchval("SELECT current_setting($1, true)", name)
        return value
    finally:
        db.lane.release(connection)


async def _prepared_reads(connection: asyncpg.Connection) -> list[asyncpg.Record]:
    return await connection.fetch(
        "SELECT name FROM pg_prepared_statements WHERE name LIKE 'tenantry_read_%'"
    )


async def test_a_read_is_one_call_and_rls_keeps_it_to_its_tenant(lane: Database) -> None:
    mine, theirs = await make_tenant(lane), await make_tenant(lane)
    project = await _tasks(lane, mine.id, ["a", "b"])
    await _tasks(lane, theirs.id, ["secret"])
    async with lane.reads(mine.id, None) as reads:
        assert isinstance(reads, ContextReads)
        assert await reads.all(_titles()) == [{"title": "a"}, {"title": "b"}]
        assert await reads.all(_titles(project)) == [{"title": "a"}, {"title": "b"}]
    async with lane.reads(theirs.id, None) as reads:
        assert await reads.all(_titles()) == [{"title": "secret"}]
        assert await reads.all(_titles(project)) == []
    async with lane.reads(None, None) as reads:
        assert await reads.all(_titles()) == []
    assert lane.lane.in_use == 0


async def test_the_pooled_connection_carries_no_tenant_after_a_read(lane: Database) -> None:
    tenant = await make_tenant(lane)
    await _tasks(lane, tenant.id, ["a"])
    async with lane.reads(tenant.id, uuid.uuid4()) as reads:
        assert await reads.all(_titles()) == [{"title": "a"}]
    assert await _setting(lane, "app.tenant_id") in (None, "")
    assert await _setting(lane, "app.user_id") in (None, "")
    connection = await lane.lane.acquire()
    try:
        assert not connection.is_in_transaction()
        # Nor does a statement run on it afterwards see the tenant's rows.
        assert await connection.fetch("SELECT title FROM tasks") == []
    finally:
        lane.lane.release(connection)


async def test_values_of_every_type_survive_the_text_round_trip(lane: Database) -> None:
    """Arguments travel as text and are cast back inside the prepared statement."""
    tenant = await make_tenant(lane)
    odd = 'it\'s "quoted", {odd} NULL \\ back\\slash \\x00 é'
    project = await _tasks(lane, tenant.id, [odd])
    async with lane.reads(tenant.id, None) as reads:
        (row,) = await reads.all(sa.select(Task).where(col(Task.project_id) == project))
    stmt = sa.select(col(Task.id), col(Task.created_at), col(Task.priority)).where(
        col(Task.id) == sa.bindparam("id"),
        col(Task.created_at) == sa.bindparam("at"),
        col(Task.priority) == sa.bindparam("priority"),
        col(Task.due_date).is_(None),
        col(Task.title) == sa.any_(sa.bindparam("titles", type_=postgresql.ARRAY(sa.String))),
    )
    values = {"id": row["id"], "at": row["created_at"], "priority": row["priority"]}
    async with lane.reads(tenant.id, None) as reads:
        found = await reads.all(stmt, {**values, "titles": [odd]})
        assert found == [
            {"id": row["id"], "created_at": row["created_at"], "priority": row["priority"]}
        ]
        assert await reads.all(stmt, {**values, "titles": [odd[:-1], None, "NULL"]}) == []


async def test_a_connection_without_the_statement_prepares_it_in_the_same_call(
    lane: Database,
) -> None:
    """As a server connection a pooler hands over, or one whose statement was
    deallocated: `context_rows()` prepares it there itself, in the same round trip."""
    tenant = await make_tenant(lane)
    await _tasks(lane, tenant.id, ["a"])
    async with lane.reads(tenant.id, None) as reads:
        assert await reads.all(_titles()) == [{"title": "a"}]
    connection = await lane.lane.acquire()
    try:
        names = await _prepared_reads(connection)
        assert names
        for (name,) in names:
            await connection.execute(f"DEALLOCATE {name}")
    finally:
        lane.lane.release(connection)
    async with lane.reads(tenant.id, None) as reads:
        assert await reads.all(_titles()) == [{"title": "a"}]
    connection = await lane.lane.acquire()
    try:
        assert await _prepared_reads(connection) == names
    finally:
        lane.lane.release(connection)


@pytest.fixture
async def probe(owner_engine: AsyncEngine) -> AsyncIterator[str]:
    """A table of the test's own, whose column type it changes under a prepared read."""
    name = f"context_probe_{uuid.uuid4().hex[:8]}"
    async with owner_engine.begin() as conn:
        await conn.execute(sa.text(f"CREATE TABLE {name} (n integer)"))
        await conn.execute(sa.text(f"INSERT INTO {name} VALUES (1)"))
        await conn.execute(sa.text(f"GRANT SELECT ON {name} TO tenantry_app"))
    yield name
    async with owner_engine.begin() as conn:
        await conn.execute(sa.text(f"DROP TABLE {name}"))


async def test_a_schema_change_under_a_prepared_read_is_learned_again(
    lane: Database, owner_engine: AsyncEngine, probe: str
) -> None:
    stmt = (
        sa.select(sa.column("n"))
        .select_from(sa.table(probe))
        .where(sa.column("n") >= sa.bindparam("least", type_=sa.Integer))
    )
    async with lane.reads(None, None) as reads:
        assert await reads.all(stmt, {"least": 0}) == [{"n": 1}]
    async with owner_engine.begin() as conn:
        await conn.execute(sa.text(f"ALTER TABLE {probe} ALTER n TYPE text"))
        await conn.execute(sa.text(f"UPDATE {probe} SET n = 'one'"))
    text_stmt = sa.select(sa.column("n")).select_from(sa.table(probe))
    async with lane.reads(None, None) as reads:
        assert await reads.all(text_stmt) == [{"n": "one"}]
    async with owner_engine.begin() as conn:
        await conn.execute(sa.text(f"ALTER TABLE {probe} ALTER n TYPE bigint USING 2"))
    async with lane.reads(None, None) as reads:
        assert await reads.all(text_stmt) == [{"n": 2}]


async def test_a_statement_with_a_literal_reads_in_a_transaction_of_its_own(
    lane: Database,
) -> None:
    """Its text could hold something that looks like a parameter: not rewritten."""
    tenant = await make_tenant(lane)
    await _tasks(lane, tenant.id, ["a", "$1 isn't a parameter"])
    stmt = sa.select(col(Task.title)).where(col(Task.title) != sa.literal_column("'$2'"))
    sql = str(stmt.compile(dialect=lane.engine.dialect))
    connection = await lane.lane.acquire()
    try:
        assert await context_rows.learn(connection, sql) is None
    finally:
        lane.lane.release(connection)
    async with lane.reads(tenant.id, None) as reads:
        titles = sorted(row["title"] for row in await reads.all(stmt))
    assert titles == ["$1 isn't a parameter", "a"]
    assert await _setting(lane, "app.tenant_id") in (None, "")
    assert lane.lane.in_use == 0


async def test_a_read_cannot_write(lane: Database) -> None:
    """Read-only, as the `BEGIN READ ONLY` it replaces: a statement that writes fails
    and writes nothing."""
    tenant = await make_tenant(lane)
    insert = (
        sa.insert(Project)
        .values(id=sa.bindparam("id"), tenant_id=sa.bindparam("tenant"), name="Sneaky")
        .returning(col(Project.id))
    )
    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        async with lane.reads(tenant.id, None) as reads:
            await reads.all(insert, {"id": uuid.uuid4(), "tenant": tenant.id})
    async with lane.reads(tenant.id, None) as reads:
        assert await reads.all(sa.select(col(Project.id))) == []


async def test_behind_pgbouncer_and_on_citus_reads_keep_their_transaction(
    settings: Settings,
) -> None:
    """Nothing prepared survives transaction pooling; Citus forwards a context only
    from inside a transaction block."""
    pooled = Database.from_settings(settings.model_copy(update={"db_statement_cache_size": 0}))
    cluster = Database.from_settings(settings)
    try:
        await pooled.detect_citus()
        cluster.citus = True
        for db in (pooled, cluster):
            async with db.reads(None, None) as reads:
                assert isinstance(reads, RawReads)
                assert await reads.all(sa.select(sa.literal(1).label("n"))) == [{"n": 1}]
    finally:
        await pooled.dispose()
        await cluster.dispose()


def _expected(tasks: list[dict[str, Any]], sort: TaskSort, filters: dict[str, str]) -> list[str]:
    """The list's contract in Python: filtered, by the sort's key then id in its
    direction, tasks without the key last either way."""
    rows = [
        t
        for t in tasks
        if all(t[k] == v for k, v in filters.items() if k != "q")
        if "q" not in filters or filters["q"].lower() in t["title"].lower()
    ]
    field, descending = sort.value.lstrip("-"), sort.value.startswith("-")

    def key(task: dict[str, Any]) -> tuple[Any, uuid.UUID]:
        value = task[field]
        value = datetime.fromisoformat(value) if field == "created_at" else value
        return value, uuid.UUID(task["id"])

    valued = sorted((t for t in rows if t[field] is not None), key=key, reverse=descending)
    undated = sorted(
        (t for t in rows if t[field] is None), key=lambda t: uuid.UUID(t["id"]), reverse=descending
    )
    return [t["id"] for t in valued + undated]


async def test_every_list_shape_pages_through_one_call_each(
    settings: Settings, db: Database, owner: Actor
) -> None:
    """Every sort and filter is a statement of its own: each pages through the lane with
    cursor values of every type (timestamp, date, integer, uuid, text) as text."""
    app = create_app(settings.model_copy(update={"rate_limit_enabled": False}), db=db)
    async with app.router.lifespan_context(app):
        assert app.state.db.citus is False
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await _every_shape(client, owner)


async def _every_shape(client: httpx.AsyncClient, owner: Actor) -> None:
    response = await client.post("/api/v1/projects", json={"name": "Shapes"}, headers=owner.headers)
    project = response.json()["id"]
    me = str(owner.user.id)
    specs: list[dict[str, Any]] = [
        {"title": "alpha one", "priority": 1, "due_date": "2027-01-03"},
        {"title": "beta", "priority": 3, "status": "doing"},
        {"title": "Alpha two", "priority": 3, "due_date": "2027-01-01", "assignee_id": me},
        {"title": "gamma 100%", "due_date": "2027-01-03", "status": "done", "assignee_id": me},
        {"title": "delta_x \\ 'quoted'", "priority": 1},
    ]
    tasks = []
    for spec in specs:
        response = await client.post(
            f"/api/v1/projects/{project}/tasks", json=spec, headers=owner.headers
        )
        assert response.status_code == 201, response.text
        tasks.append(response.json())
    shapes: list[dict[str, str]] = [
        {},
        {"status": "todo"},
        {"assignee_id": me},
        {"q": "alpha"},
        {"q": "100%"},
        {"q": "_x \\ 'quoted"},
        {"status": "todo", "assignee_id": me, "q": "ALPHA"},
    ]
    for sort in TaskSort:
        for filters in shapes:
            seen: list[str] = []
            params: dict[str, str | int] = {"limit": 2, "sort": sort.value, **filters}
            while True:
                response = await client.get(
                    f"/api/v1/projects/{project}/tasks", params=params, headers=owner.headers
                )
                assert response.status_code == 200, response.text
                body = response.json()
                seen += [item["id"] for item in body["items"]]
                if body["next_cursor"] is None:
                    break
                params["cursor"] = body["next_cursor"]
            assert seen == _expected(tasks, sort, filters), (sort, filters)
