"""Engine, sessions and the per-transaction tenant context. No FastAPI here."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.util import greenlet_spawn

from tenantry.config import Settings

# One statement sets every RLS input for the current transaction only, so a pooled
# connection never carries one request's tenant into the next. It also closes the
# lookup arms (API key, invitation token, maintenance), which only their own lookups
# open. `set_app_context()` (a migration) issues `SET LOCAL`, which Citus forwards to its
# workers and the set_config function is not; never set an RLS input any other way.
_SET_CONTEXT = (
    "SELECT set_app_context($1, $2, p_api_key_hash => '', p_invitation_token_hash => '',"
    " p_maintenance => '')"
)
_CONTEXT = "rls_context"
# How asyncpg reports a connection that is gone: the server closed it (restart,
# pg_terminate_backend), the socket broke, or the protocol met the server's goodbye
# mid-operation.
_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    ConnectionError,
)


class TenantSession(Session):
    """A session that scopes every transaction it begins to its RLS context.

    The context (`set_tenant_context`) lives in `session.info` and is applied by the
    `after_begin` hook below, so it costs nothing until the session first touches the
    database (a cached read never does) and it survives a commit: the next transaction
    is scoped again. A session without a context begins with the settings empty.
    """


@event.listens_for(TenantSession, "after_begin")
def _apply_context(session: Session, transaction: object, connection: sa.Connection) -> None:
    tenant_id, user_id = session.info.get(_CONTEXT, (None, None))
    connection.exec_driver_sql(_SET_CONTEXT, _context_args(tenant_id, user_id))


def _context_args(tenant_id: uuid.UUID | None, user_id: uuid.UUID | None) -> tuple[str, str]:
    return (str(tenant_id) if tenant_id else "", str(user_id) if user_id else "")


def create_engine(settings: Settings, *, url: str | None = None, **overrides: Any) -> AsyncEngine:
    """An asyncpg engine whose every wait is bounded, so a hung database becomes a 503."""
    connect_args = {
        "timeout": settings.db_connect_timeout,
        "command_timeout": settings.db_statement_timeout_ms / 1000 + 5,
        "server_settings": {
            "statement_timeout": str(settings.db_statement_timeout_ms),
            "lock_timeout": str(settings.db_lock_timeout_ms),
            "idle_in_transaction_session_timeout": "60000",
            "application_name": "tenantry",
        },
    }
    options: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout,
        # No pre-ping: with asyncpg it is three round trips (BEGIN, `;`, ROLLBACK) on
        # every checkout, more than the request's own queries. A connection that died
        # (database restart, failover) fails its first statement instead; that error is
        # a DBAPI disconnect, so SQLAlchemy invalidates the whole pool and the request
        # answers 503 (`errors.is_unavailable`), and the next checkout connects afresh.
        # pool_recycle bounds a connection's age below any idle timeout in between.
        "pool_pre_ping": False,
        "pool_recycle": 1800,
        # Statement parameters (emails, token hashes) stay out of error messages, so out
        # of logs and Sentry too.
        "hide_parameters": True,
        "connect_args": connect_args,
    }
    options.update(overrides)
    return create_async_engine(url or settings.database_url, **options)


def create_sessionmaker(bind: AsyncEngine | AsyncConnection) -> async_sessionmaker[AsyncSession]:
    # Objects stay readable after commit: responses are serialised after the unit of work ends.
    return async_sessionmaker(
        bind=bind,
        expire_on_commit=False,
        autoflush=False,
        join_transaction_mode="create_savepoint",
        sync_session_class=TenantSession,
    )


async def set_tenant_context(
    session: AsyncSession,
    tenant_id: uuid.UUID | None,
    *,
    user_id: uuid.UUID | None = None,
) -> None:
    """Scope row-level security to a tenant (and a user's own rows) for this session.

    Applied at once to an open transaction, else when the next one begins.
    """
    session.info[_CONTEXT] = (tenant_id, user_id)
    if session.in_transaction():
        connection = await session.connection()
        await connection.exec_driver_sql(_SET_CONTEXT, _context_args(tenant_id, user_id))


async def end_read_only_transaction(session: AsyncSession) -> None:
    """End a transaction that has only read, returning its connection to the pool.

    For a request about to wait on slow CPU work (a password hash): holding a pooled
    connection and an open transaction through that wait would let a burst of logins
    exhaust the pool. The next statement begins a fresh transaction, scoped again to the
    session's RLS context.
    """
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("end_read_only_transaction() with pending writes")
    await session.commit()


class Database:
    """The engine and its sessionmaker, built once per process."""

    def __init__(self, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]):
        self.engine = engine
        self.sessionmaker = sessionmaker

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        engine = create_engine(settings)
        return cls(engine, create_sessionmaker(engine))

    async def dispose(self) -> None:
        await self.engine.dispose()

    async def fetch_one(self, query: str, *args: Any) -> dict[str, Any] | None:
        """One read-only statement on a pooled connection, straight through asyncpg.

        For the credential check every request makes: through the ORM its four round
        trips cost more CPU than the rest of a cached read. The statement runs in an
        explicit transaction of its own (BEGIN … COMMIT), so it sees no RLS context but
        what it sets itself, and a context it sets with `SET LOCAL` reaches Citus's
        workers (an autocommit statement's would not).

        A pooled connection found dead (the database restarted, a proxy dropped it) is
        invalidated and the read, having changed nothing, moves on to the next one, until
        one answers or a fresh connection cannot be made (a 503): after a restart every
        idle connection is dead, and each fails at once. A timeout or a cancellation
        invalidates the connection (its state is unknown) and is not retried.
        """
        pool = self.engine.sync_engine.pool
        attempts = getattr(pool, "size", lambda: 0)() + 1
        for attempt in range(1, attempts + 1):
            # Returning or invalidating a pooled connection may await the driver, which
            # SQLAlchemy's pool does only inside its greenlet bridge.
            pooled = await self.engine.raw_connection()
            try:
                connection: asyncpg.Connection = pooled.driver_connection
                async with connection.transaction(readonly=True):
                    record = await connection.fetchrow(query, *args)
            except BaseException as exc:
                if isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, _CONNECTION_LOST):
                    raise  # the statement failed; the connection is fine
                await greenlet_spawn(pooled.invalidate, exc)
                if attempt == attempts or not isinstance(exc, _CONNECTION_LOST):
                    raise
                continue
            finally:
                await greenlet_spawn(pooled.close)
            break
        return None if record is None else dict(record.items())

    @asynccontextmanager
    async def session_scope(
        self, tenant_id: uuid.UUID | None = None, *, user_id: uuid.UUID | None = None
    ) -> AsyncIterator[AsyncSession]:
        """One transaction for a job or a script: commit on success, roll back on error."""
        async with self.sessionmaker() as session:
            try:
                await set_tenant_context(session, tenant_id, user_id=user_id)
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise


_ROLE_CHECK = sa.text(
    """
    SELECT r.rolsuper, r.rolbypassrls,
           (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relowner = r.oid AND n.nspname = 'public' AND c.relkind IN ('r', 'p'))
             AS owned
    FROM pg_roles r WHERE r.rolname = current_user
    """
)


async def app_role_problems(engine: AsyncEngine) -> list[str]:
    """Why this connection's role could escape row-level security (empty when it can't)."""
    async with engine.connect() as conn:
        row = (await conn.execute(_ROLE_CHECK)).one()
    problems = []
    if row.rolsuper:
        problems.append("is a superuser")
    if row.rolbypassrls:
        problems.append("has BYPASSRLS")
    if row.owned:
        problems.append(f"owns {row.owned} table(s)")
    return problems
