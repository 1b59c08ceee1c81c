"""FastAPI side of the house: the unit of work and shared dependencies."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any

from arq.connections import ArqRedis
from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry import cache
from tenantry.auth import principal_cache
from tenantry.config import Settings
from tenantry.db import (
    Database,
    TenantSession,
    end_writes,
    mark_written,
    take_written,
    use_database,
)
from tenantry.errors import AppError
from tenantry.jobs import send_jobs, take_jobs
from tenantry.kit.openapi import declares
from tenantry.models import TenantScoped

_UNIT_OF_WORK = "tenantry.unit_of_work"


class UnitOfWorkSession(TenantSession):
    """The request's session: it notes the tenant of every tenant-owned row it flushes,
    so the unit of work invalidates exactly those tenants' cache after the commit.

    A task, a membership whose removal unassigns tasks, anything of the tenant: reads
    of any of its resources may show it. Bulk `update()`/`delete()` statements skip the
    ORM's flush; call `mark_written` for those (`db.writes_for` notes its own).
    """

    def flush(self, objects: Sequence[Any] | None = None) -> None:
        changed = (*self.new, *self.dirty, *self.deleted)
        for obj in changed:
            if isinstance(obj, TenantScoped) and obj.tenant_id is not None:
                mark_written(self, obj.tenant_id)
        principal_cache.note_writes(self, changed)
        super().flush(objects)


@declares(503)  # the database may be down or too slow: 503 with Retry-After
async def get_session(request: Request) -> AsyncSession:
    """The request's unit of work: one session, ended by `UnitOfWorkRoute`.

    Creating it costs no connection: the session checks one out (and begins its
    transaction) on first use, so a read answered from the cache never touches the
    database. FastAPI caches the dependency, so every user within a request shares it.
    """
    db: Database = request.app.state.db
    session = db.sessionmaker(sync_session_class=UnitOfWorkSession)
    use_database(session, db, read_only=request.method in ("GET", "HEAD"))
    request.scope[_UNIT_OF_WORK] = session
    return session


class UnitOfWorkRoute(APIRoute):
    """Ends the request's unit of work after the handler and *before* the response is
    sent: a failed commit becomes an error response, never a 200 for a write that did
    not happen. Buffered jobs leave only after the commit, and the cache of every
    tenant written to is invalidated before the response goes out, so the client's
    next read sees its write. An AppError raised with `keep_changes=True` commits too
    (the refusal is itself a write); any other error rolls back.

    A route class rather than a dependency with `yield`: FastAPI's exit machinery for
    those (an exit stack, an anyio shielded scope) cost about 0.1 ms on every request.
    Every router of the API uses it (`tests/test_layout.py` checks).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except AppError as exc:
                session = request.scope.pop(_UNIT_OF_WORK, None)
                if session is not None:
                    if exc.keep_changes:
                        await _commit(request, session)
                    else:
                        await _discard(session, exc)
                raise
            except BaseException as exc:
                session = request.scope.pop(_UNIT_OF_WORK, None)
                if session is not None:
                    await _discard(session, exc)
                raise
            session = request.scope.pop(_UNIT_OF_WORK, None)
            if session is not None:
                await _commit(request, session)
            return response

        return handle


async def _commit(request: Request, session: AsyncSession) -> None:
    # A read answered from the cache never began a transaction: nothing to end. A
    # commit hands the connection back to the pool; there is nothing left to close.
    # The session's transaction and one opened by `db.writes_for` never coexist.
    try:
        if session.in_transaction():
            await session.commit()
        await end_writes(session, None)
    except BaseException as exc:
        await _discard(session, exc)
        raise
    redis = redis_of(request)
    await cache.invalidate(
        redis, take_written(session), principal_cache.take_changed(session.sync_session)
    )
    await send_jobs(redis, take_jobs(session))


async def _discard(session: AsyncSession, error: BaseException) -> None:
    take_jobs(session)
    try:
        await end_writes(session, error)
    finally:
        try:
            await session.rollback()
        finally:
            await session.close()


# Plain lookups are `async def` on purpose: FastAPI runs a sync dependency in the thread
# pool, and that hop costs more than the lookup on every request.
async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def redis_of(request: Request) -> ArqRedis:
    """The process's Redis client. A plain call, not a dependency: FastAPI spends about
    25 µs solving even a trivial dependency, on every request of the hot reads."""
    redis: ArqRedis = request.app.state.redis
    return redis


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
