"""`Database.reads()`: a GET's rows on a raw asyncpg connection, one transaction under
the tenant's RLS context. Committed data and a real pool, as in production (the rest of
the suite reads through savepoint sessions instead)."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from arq.connections import ArqRedis
from sqlmodel import col

from tenantry.config import Settings
from tenantry.db import _CONNECTION_LOST, Database, compiled
from tenantry.main import create_app
from tenantry.models import Role, Task
from tests.fixtures.factories import Actor, make_actor, make_tenant

pytestmark = pytest.mark.committed


@pytest.fixture(params=["transaction", "one call"])
def either_way(request: pytest.FixtureRequest, db: Database) -> Database:
    """The test's database reading in a transaction (Citus, PgBouncer) or as one
    `context_rows()` call (a single PostgreSQL): both ways must keep the same promises."""
    db.citus = request.param == "transaction"
    return db


async def _project(client: httpx.AsyncClient, actor: Actor, name: str) -> str:
    response = await client.post("/api/v1/projects", json={"name": name}, headers=actor.headers)
    assert response.status_code == 201, response.text
    project_id: str = response.json()["id"]
    return project_id


async def _task(client: httpx.AsyncClient, actor: Actor, project: str, title: str) -> str:
    response = await client.post(
        f"/api/v1/projects/{project}/tasks", json={"title": title}, headers=actor.headers
    )
    assert response.status_code == 201, response.text
    task_id: str = response.json()["id"]
    return task_id


async def test_pages_and_objects_read_through_the_raw_path(
    client: httpx.AsyncClient, owner: Actor, db: Database
) -> None:
    project = await _project(client, owner, "Raw")
    titles = [f"task {i}" for i in range(5)]
    for title in titles:
        await _task(client, owner, project, title)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(
            f"/api/v1/projects/{project}/tasks", params=params, headers=owner.headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [item["title"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(titles))  # newest first, every task once
    # Every connection went back to the pool with no transaction left open.
    assert db.lane.in_use == 0


async def test_another_tenants_ids_answer_404_not_their_rows(
    client: httpx.AsyncClient, owner: Actor, db: Database, settings: Settings
) -> None:
    project = await _project(client, owner, "Mine")
    task = await _task(client, owner, project, "secret")
    other = await make_actor(db, settings, tenant=await make_tenant(db), role=Role.OWNER)
    for path in (f"/api/v1/tasks/{task}", f"/api/v1/projects/{project}"):
        response = await client.get(path, headers=other.headers)
        assert response.status_code == 404, path
    response = await client.get(f"/api/v1/projects/{project}/tasks", headers=other.headers)
    assert response.status_code == 404


async def test_rls_alone_keeps_a_lane_to_its_tenant(
    client: httpx.AsyncClient, owner: Actor, either_way: Database
) -> None:
    """A statement with no tenant filter at all still sees only the lane's tenant."""
    project = await _project(client, owner, "Scoped")
    await _task(client, owner, project, "one")
    assert owner.tenant is not None
    stranger = await make_tenant(either_way)
    everything = sa.select(col(Task.title))
    async with either_way.reads(owner.tenant.id, owner.user.id) as reads:
        assert [row["title"] for row in await reads.all(everything)] == ["one"]
    async with either_way.reads(stranger.id, None) as reads:
        assert await reads.all(everything) == []
    async with either_way.reads(None, None) as reads:
        assert await reads.all(everything) == []


async def test_statements_of_one_shape_bind_their_own_values(either_way: Database) -> None:
    """The compiled form is cached per shape; each statement's values must still win."""
    first = sa.select(sa.literal(1).label("n")).where(sa.literal("a") == sa.literal("a"))
    second = sa.select(sa.literal(2).label("n")).where(sa.literal("a") == sa.literal("b"))
    sql_one, args_one = compiled(first, either_way.engine.dialect)
    sql_two, args_two = compiled(second, either_way.engine.dialect)
    assert sql_one == sql_two
    assert args_one != args_two
    async with either_way.reads(None, None) as reads:
        assert await reads.all(first) == [{"n": 1}]
        assert await reads.all(second) == []


async def test_a_failed_statement_rolls_back_and_the_connection_is_reused(
    either_way: Database,
) -> None:
    with pytest.raises(asyncpg.DivisionByZeroError):
        async with either_way.reads(None, None) as reads:
            await reads.all(sa.select((sa.literal(1) / sa.literal(0)).label("boom")))
    async with either_way.reads(None, None) as reads:
        assert await reads.all(sa.select(sa.literal(1).label("ok"))) == [{"ok": 1}]
    assert either_way.lane.in_use == 0
    # The pooled connection is idle, not left inside our BEGIN.
    connection = await either_way.lane.acquire()
    try:
        assert not connection.is_in_transaction()
    finally:
        either_way.lane.release(connection)


@pytest.mark.parametrize("citus", [True, False], ids=["transaction", "one call"])
async def test_a_dead_pooled_connection_is_replaced(settings: Settings, citus: bool) -> None:
    """Its own one-connection pool: the dead connection must not be left in the shared
    engine's pool for the next test to meet."""
    db = Database.from_settings(settings.model_copy(update={"db_read_pool_size": 1}))
    db.citus = citus
    try:
        async with db.reads(None, None) as reads:
            (row,) = await reads.all(sa.select(sa.func.pg_backend_pid().label("pid")))
        admin = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
        try:
            await admin.execute("SELECT pg_terminate_backend($1)", row["pid"])
        finally:
            await admin.close()
        async with db.reads(None, None) as reads:
            (again,) = await reads.all(sa.select(sa.func.pg_backend_pid().label("pid")))
        assert again["pid"] != row["pid"]
        assert issubclass(asyncpg.ConnectionDoesNotExistError, _CONNECTION_LOST)
    finally:
        await db.dispose()


def test_expanding_parameters_are_refused(db: Database) -> None:
    stmt = sa.select(col(Task.id)).where(col(Task.id).in_([uuid.uuid4()]))
    with pytest.raises(ValueError, match="expanding"):
        compiled(stmt, db.engine.dialect)


async def test_users_me_reads_the_account_and_its_tenants_raw(
    client: httpx.AsyncClient, owner: Actor, db: Database, settings: Settings
) -> None:
    """The RLS user arm needs `app.user_id` in the lane: without it, no tenants."""
    assert owner.tenant is not None
    second = await make_tenant(db)
    await make_actor(db, settings, tenant=second, role=Role.MEMBER)  # someone else's
    response = await client.get("/api/v1/users/me", headers=owner.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == str(owner.user.id)
    assert [m["tenant_id"] for m in body["memberships"]] == [str(owner.tenant.id)]
    assert body["memberships"][0]["role"] == "owner"


async def test_a_full_lane_answers_503_after_its_timeout_then_recovers(
    settings: Settings, db: Database, owner: Actor, redis: ArqRedis
) -> None:
    """Every wait is bounded: a request that cannot get a lane connection within
    `DB_POOL_TIMEOUT` answers 503 problem+json with Retry-After, never hangs or 500s."""
    tight = settings.model_copy(update={"db_read_pool_size": 1, "db_pool_timeout": 0.3})
    app = create_app(tight)
    async with app.router.lifespan_context(app):
        lane = app.state.db.lane
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            held = await lane.acquire()
            try:
                response = await client.get("/api/v1/users/me", headers=owner.headers)
            finally:
                lane.release(held)
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert int(response.headers["retry-after"]) >= 1
            assert "Traceback" not in response.text
            recovered = await client.get("/api/v1/users/me", headers=owner.headers)
            assert recovered.status_code == 200, recovered.text
            assert lane.in_use == 0
