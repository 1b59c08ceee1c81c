"""What every job receives in `ctx`: the process's database and settings."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.jobs import send_jobs, take_jobs


def ctx_db(ctx: dict[str, Any]) -> Database:
    db: Database = ctx["db"]
    return db


def ctx_settings(ctx: dict[str, Any]) -> Settings:
    settings: Settings = ctx["settings"]
    return settings


@asynccontextmanager
async def unit_of_work(
    ctx: dict[str, Any], tenant_id: uuid.UUID | None = None
) -> AsyncIterator[AsyncSession]:
    """A job's transaction, scoped to its tenant; jobs it buffers leave after the commit."""
    async with ctx_db(ctx).session_scope(tenant_id) as session:
        yield session
        jobs = take_jobs(session)
    await send_jobs(ctx.get("redis"), jobs)
