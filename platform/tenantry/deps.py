"""FastAPI side of the house: the unit of work and shared dependencies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from arq.connections import ArqRedis
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry import cache
from tenantry.config import Settings
from tenantry.db import Database
from tenantry.errors import AppError
from tenantry.jobs import send_jobs, take_jobs


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed *before* the response is sent.

    Declared with `scope="function"`, so FastAPI runs the code after `yield` as soon as
    the handler returns: a failed commit becomes an error response, never a 200 for a
    write that did not happen. Buffered jobs leave only after the commit, and the
    cache of every tenant written to is invalidated before the response goes out, so
    the client's next read sees its write. An AppError raised with `keep_changes=True`
    commits too (the refusal is itself a write).
    """
    db: Database = request.app.state.db
    async with db.sessionmaker() as session:
        try:
            yield session
            # A read answered from the cache never touched the database: nothing to end.
            if session.in_transaction():
                await session.commit()
        except AppError as exc:
            if not exc.keep_changes:
                await session.rollback()
                take_jobs(session)
                raise
            await session.commit()
            await send_jobs(request.app.state.redis, take_jobs(session))
            raise
        except BaseException:
            await session.rollback()
            take_jobs(session)
            raise
        await cache.invalidate(request.app.state.redis, cache.take_stale(session))
        await send_jobs(request.app.state.redis, take_jobs(session))


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


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
