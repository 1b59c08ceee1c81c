"""Row-level security from the attacker's side: raw SQL as the app role, no ORM help."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request

from tenantry.auth.api_key import resolve_api_key
from tenantry.config import Settings
from tenantry.db import Database, create_engine, set_tenant_context
from tenantry.errors import is_unavailable
from tenantry.models import GLOBAL_TABLES, AuditEvent, AuthSession, Project, Role
from tests.fixtures.factories import add_member, make_tenant, make_user
from tests.fixtures.tenancy import make_api_key
from tests.fixtures.tenant_data import make_project

pytestmark = pytest.mark.committed

SCOPE = "SELECT set_app_context($1)"


def _dsn(settings: Settings) -> str:
    return settings.database_url.replace("postgresql+asyncpg://", "postgresql://")


@pytest.fixture
async def two_tenants(db: Database) -> dict[str, uuid.UUID]:
    a, b = await make_tenant(db), await make_tenant(db)
    user_a, user_b = await make_user(db), await make_user(db)
    await add_member(db, a, user_a, Role.OWNER)
    await add_member(db, b, user_b, Role.OWNER)
    for tenant in (a, b):
        async with db.session_scope(tenant.id) as session:
            session.add(AuditEvent(tenant_id=tenant.id, action="seed"))
    return {"a": a.id, "b": b.id, "user_a": user_a.id, "user_b": user_b.id}


@pytest.fixture
async def conn(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(_dsn(settings))
    yield connection
    await connection.close()


class TestTenantScopedTransaction:
    async def test_sees_only_its_own_rows(
        self, conn: asyncpg.Connection, two_tenants: dict
    ) -> None:
        async with conn.transaction():
            await conn.execute(SCOPE, str(two_tenants["a"]))
            for table in ("memberships", "audit_events"):
                tenants = {r[0] for r in await conn.fetch(f"SELECT tenant_id FROM {table}")}
                assert tenants == {two_tenants["a"]}, table

    async def test_reads_of_other_tenant_by_id_find_nothing(
        self, conn: asyncpg.Connection, two_tenants: dict
    ) -> None:
        async with conn.transaction():
            await conn.execute(SCOPE, str(two_tenants["a"]))
            count = await conn.fetchval(
                "SELECT count(*) FROM audit_events WHERE tenant_id = $1", two_tenants["b"]
            )
        assert count == 0

    async def test_cannot_insert_into_other_tenant(
        self, conn: asyncpg.Connection, two_tenants: dict
    ) -> None:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            async with conn.transaction():
                await conn.execute(SCOPE, str(two_tenants["a"]))
                await conn.execute(
                    "INSERT INTO audit_events (id, tenant_id, action, data) "
                    "VALUES ($1, $2, 'forged', '{}')",
                    uuid.uuid4(),
                    two_tenants["b"],
                )

    async def test_cannot_update_or_delete_other_tenant(
        self, conn: asyncpg.Connection, two_tenants: dict
    ) -> None:
        async with conn.transaction():
            await conn.execute(SCOPE, str(two_tenants["a"]))
            updated = await conn.execute(
                "UPDATE audit_events SET action = 'hijacked' WHERE tenant_id = $1", two_tenants["b"]
            )
            deleted = await conn.execute(
                "DELETE FROM memberships WHERE tenant_id = $1", two_tenants["b"]
            )
        assert updated == "UPDATE 0"
        assert deleted == "DELETE 0"

    async def test_cannot_move_own_row_into_other_tenant(
        self, conn: asyncpg.Connection, two_tenants: dict
    ) -> None:
        # RLS refuses it (42501); on Citus, changing the distribution column is refused
        # before RLS is even asked.
        with pytest.raises(
            (asyncpg.InsufficientPrivilegeError, asyncpg.FeatureNotSupportedError),
            match=r"row-level security|modifying the partition value",
        ):
            async with conn.transaction():
                await conn.execute(SCOPE, str(two_tenants["a"]))
                await conn.execute("UPDATE audit_events SET tenant_id = $1", two_tenants["b"])


class TestUnscopedTransaction:
    async def test_sees_nothing_and_does_not_error(
        self, conn: asyncpg.Connection, two_tenants: dict
    ) -> None:
        for table in ("memberships", "audit_events"):
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0

    async def test_empty_setting_sees_nothing(
        self, conn: asyncpg.Connection, two_tenants: dict
    ) -> None:
        async with conn.transaction():
            await conn.execute(SCOPE, "")
            assert await conn.fetchval("SELECT count(*) FROM audit_events") == 0

    async def test_scope_does_not_outlive_its_transaction(
        self, settings: Settings, two_tenants: dict
    ) -> None:
        # One pooled connection: a scoped transaction, then an unscoped one on it.
        engine = create_engine(settings, pool_size=1, max_overflow=0)
        try:
            pool_db = Database(engine, Database.from_settings(settings).sessionmaker)
            pool_db.sessionmaker.configure(bind=engine)
            async with pool_db.session_scope(two_tenants["a"]) as session:
                seen = (
                    await session.execute(sa.text("SELECT count(*) FROM audit_events"))
                ).scalar()
                assert seen == 1
            async with pool_db.sessionmaker() as session:
                leaked = (
                    await session.execute(sa.text("SELECT count(*) FROM audit_events"))
                ).scalar()
                setting = (
                    await session.execute(sa.text("SELECT current_setting('app.tenant_id', true)"))
                ).scalar()
            assert leaked == 0
            assert setting in (None, "")
        finally:
            await engine.dispose()


class TestMembershipLookupArm:
    async def test_user_reads_own_memberships_across_tenants(
        self, conn: asyncpg.Connection, db: Database, two_tenants: dict
    ) -> None:
        tenant_b = two_tenants["b"]
        async with db.session_scope(tenant_b) as session:
            from tenantry.models import Membership

            session.add(
                Membership(tenant_id=tenant_b, user_id=two_tenants["user_a"], role=Role.VIEWER)
            )
        async with conn.transaction():
            await conn.execute(
                "SELECT set_app_context(p_user_id => $1)", str(two_tenants["user_a"])
            )
            rows = await conn.fetch("SELECT tenant_id, user_id FROM memberships")
        assert {r["tenant_id"] for r in rows} == {two_tenants["a"], tenant_b}
        assert {r["user_id"] for r in rows} == {two_tenants["user_a"]}

    async def test_lookup_arm_is_read_only(
        self, conn: asyncpg.Connection, db: Database, two_tenants: dict
    ) -> None:
        # Seeing your own membership in B must not let you promote yourself in B.
        async with db.session_scope(two_tenants["b"]) as session:
            from tenantry.models import Membership

            session.add(
                Membership(
                    tenant_id=two_tenants["b"], user_id=two_tenants["user_a"], role=Role.VIEWER
                )
            )
        async with conn.transaction():
            await conn.execute(
                "SELECT set_app_context(p_user_id => $1)", str(two_tenants["user_a"])
            )
            result = await conn.execute(
                "UPDATE memberships SET role = 'owner' WHERE user_id = $1", two_tenants["user_a"]
            )
        assert result == "UPDATE 0"


class TestAppRole:
    async def test_is_not_superuser_and_cannot_bypass_rls(self, conn: asyncpg.Connection) -> None:
        row = await conn.fetchrow(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        )
        assert row["rolsuper"] is False
        assert row["rolbypassrls"] is False

    async def test_owns_no_table(self, conn: asyncpg.Connection) -> None:
        owned = await conn.fetchval(
            "SELECT count(*) FROM pg_class WHERE relowner = "
            "(SELECT oid FROM pg_roles WHERE rolname = current_user)"
        )
        assert owned == 0

    async def test_cannot_alter_schema_or_drop_policy(self, conn: asyncpg.Connection) -> None:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("ALTER TABLE audit_events DISABLE ROW LEVEL SECURITY")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE sneaky (id int)")


_RLS_CATALOG = sa.text(
    """
    SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
           EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                   AND a.attname = 'tenant_id' AND NOT a.attisdropped) AS has_tenant_id,
           (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
    """
)


class TestCatalog:
    async def test_every_tenant_table_has_forced_rls(self, engine: AsyncEngine) -> None:
        async with engine.connect() as conn:
            rows = (await conn.execute(_RLS_CATALOG)).all()
        tenant_tables = [r for r in rows if r.has_tenant_id]
        assert tenant_tables, "no tenant-owned tables found"
        unprotected = [
            r.relname
            for r in tenant_tables
            if not (r.relrowsecurity and r.relforcerowsecurity and r.policies)
        ]
        assert unprotected == []

    async def test_every_other_table_is_declared_global(self, engine: AsyncEngine) -> None:
        async with engine.connect() as conn:
            rows = (await conn.execute(_RLS_CATALOG)).all()
        undeclared = [
            r.relname for r in rows if not r.has_tenant_id and r.relname not in GLOBAL_TABLES
        ]
        assert undeclared == []

    async def test_catalog_check_catches_a_table_without_force(
        self, owner_engine: AsyncEngine, engine: AsyncEngine
    ) -> None:
        # Prove the check above can fail: drop FORCE inside a rolled-back transaction.
        async with owner_engine.connect() as conn:
            transaction = await conn.begin()
            await conn.execute(sa.text("ALTER TABLE audit_events NO FORCE ROW LEVEL SECURITY"))
            rows = (await conn.execute(_RLS_CATALOG)).all()
            await transaction.rollback()
        weak = [r.relname for r in rows if r.has_tenant_id and not r.relforcerowsecurity]
        assert weak == ["audit_events"]


async def test_set_tenant_context_scopes_orm_session(db: Database, two_tenants: dict) -> None:
    async with db.sessionmaker() as session:
        await set_tenant_context(session, two_tenants["b"])
        rows = (await session.execute(sa.select(AuditEvent.tenant_id))).scalars().all()
    assert set(rows) == {two_tenants["b"]}


async def test_context_scopes_every_transaction_of_the_session(
    db: Database, two_tenants: dict
) -> None:
    # SET LOCAL ends with its transaction; the session re-applies its context
    # to the next one, so a commit in the middle of a unit of work cannot unscope it.
    async with db.sessionmaker() as session:
        await set_tenant_context(session, two_tenants["a"])
        await session.execute(sa.select(AuditEvent.tenant_id))
        await session.commit()
        rows = (await session.execute(sa.select(AuditEvent.tenant_id))).scalars().all()
    assert set(rows) == {two_tenants["a"]}


async def test_context_set_inside_an_open_transaction_applies_at_once(
    db: Database, two_tenants: dict
) -> None:
    async with db.sessionmaker() as session:
        await set_tenant_context(session, two_tenants["a"])
        await session.execute(sa.select(AuditEvent.tenant_id))
        await set_tenant_context(session, two_tenants["b"])
        rows = (await session.execute(sa.select(AuditEvent.tenant_id))).scalars().all()
    assert set(rows) == {two_tenants["b"]}


async def test_session_without_context_sees_no_tenant_rows(db: Database, two_tenants: dict) -> None:
    async with db.sessionmaker() as session:
        rows = (await session.execute(sa.select(AuditEvent.tenant_id))).scalars().all()
        settings = (
            await session.execute(
                sa.text(
                    "SELECT current_setting('app.tenant_id', true), current_setting('app.user_id', true)"
                )
            )
        ).one()
    assert rows == []
    assert tuple(settings) == ("", "")


class TestSessionPrincipal:
    """The credential check's function: one statement, no RLS context left behind."""

    async def test_leaves_the_callers_settings_as_they_were(
        self, conn: asyncpg.Connection, two_tenants: dict
    ) -> None:
        async with conn.transaction():
            await conn.execute("SELECT set_app_context(p_user_id => '')")
            await conn.fetch(
                "SELECT * FROM session_principal($1, $2, $3)",
                uuid.uuid4(),
                two_tenants["user_a"],
                two_tenants["a"],
            )
            assert await conn.fetchval("SELECT current_setting('app.user_id', true)") == ""
            assert await conn.fetchval("SELECT count(*) FROM memberships") == 0

    async def test_reads_memberships_only_of_the_given_user(
        self, db: Database, two_tenants: dict
    ) -> None:
        # user_a's session asking about tenant b (where they are not a member): no role.
        async with db.session_scope(None, user_id=two_tenants["user_a"]) as session:
            auth = AuthSession(
                user_id=two_tenants["user_a"],
                refresh_token_hash="0" * 64,
                expires_at=datetime.now(UTC) + timedelta(hours=1),
            )
            session.add(auth)
            await session.flush()
            session_id = auth.id
        own = await db.fetch_one(
            "SELECT * FROM session_principal($1, $2, $3)",
            session_id,
            two_tenants["user_a"],
            two_tenants["a"],
        )
        other = await db.fetch_one(
            "SELECT * FROM session_principal($1, $2, $3)",
            session_id,
            two_tenants["user_a"],
            two_tenants["b"],
        )
        assert own is not None and own["role"] == Role.OWNER
        assert other is not None and other["role"] is None
        assert other["tenant_status"] == "active"


@pytest.fixture
async def pool_of(settings: Settings) -> AsyncIterator[Callable[[int], Database]]:
    """Production Databases (own engine and pool) of a given size, disposed afterwards."""
    made: list[Database] = []

    def make(size: int) -> Database:
        update = {"db_pool_size": size, "db_read_pool_size": size}
        made.append(Database.from_settings(settings.model_copy(update=update)))
        return made[-1]

    yield make
    for database in made:
        await database.dispose()


async def test_fetch_one_replaces_a_connection_that_died(
    pool_of: Callable[[int], Database], conn: asyncpg.Connection
) -> None:
    """A database restart kills pooled connections: the read moves on to a fresh
    connection instead of failing the request."""
    db = pool_of(1)
    first = await db.fetch_one("SELECT pg_backend_pid() AS pid")
    assert first is not None
    assert await conn.fetchval("SELECT pg_terminate_backend($1::int)", first["pid"])
    second = await db.fetch_one("SELECT pg_backend_pid() AS pid")
    assert second is not None and second["pid"] != first["pid"]
    assert db.lane.in_use == 0


async def test_fetch_one_survives_every_pooled_connection_dying_at_once(
    pool_of: Callable[[int], Database], conn: asyncpg.Connection
) -> None:
    """A database restart: every idle connection in the pool is dead, not just one."""
    db = pool_of(3)
    pids = await asyncio.gather(
        *(db.fetch_one("SELECT pg_backend_pid() AS pid, pg_sleep(0.05)") for _ in range(3))
    )
    old = {row["pid"] for row in pids if row is not None}
    assert len(old) == 3
    for pid in old:
        assert await conn.fetchval("SELECT pg_terminate_backend($1::int)", pid)
    row = await db.fetch_one("SELECT pg_backend_pid() AS pid")
    assert row is not None and row["pid"] not in old


async def test_fetch_one_fails_as_unavailable_when_the_database_is_gone(
    settings: Settings,
) -> None:
    dead = settings.model_copy(
        update={"database_url": "postgresql+asyncpg://nobody@127.0.0.1:1/none"}
    )
    db = Database.from_settings(dead)
    try:
        with pytest.raises(ConnectionRefusedError) as failure:
            await db.fetch_one("SELECT 1")
        assert is_unavailable(failure.value)
    finally:
        await db.dispose()


async def test_fetch_one_keeps_the_connection_after_a_statement_error(
    pool_of: Callable[[int], Database],
) -> None:
    db = pool_of(1)
    first = await db.fetch_one("SELECT pg_backend_pid() AS pid")
    with pytest.raises(asyncpg.PostgresError):
        await db.fetch_one("SELECT 1/0")
    again = await db.fetch_one("SELECT pg_backend_pid() AS pid")
    assert first == again


async def test_an_api_key_scopes_every_transaction_of_its_session(
    db: Database, settings: Settings
) -> None:
    """The key's tenant is the session's context, not a setting of its first transaction:
    a commit in the middle of the request must not leave the next one unscoped."""
    tenant = await make_tenant(db)
    project = await make_project(db, tenant)
    _, key = await make_api_key(db, settings, tenant)
    request = Request({"type": "http", "headers": [], "client": ("127.0.0.1", 1)})
    async with db.sessionmaker() as session:
        principal = await resolve_api_key(session, settings, key, request)
        await session.commit()
        ids = (await session.execute(sa.select(Project.id))).scalars().all()
        lookup = await session.scalar(sa.text("SELECT current_setting('app.api_key_hash', true)"))
    assert principal.tenant_id == tenant.id
    assert ids == [project.id]
    assert lookup == ""  # the lookup arm stays closed after the key is found
