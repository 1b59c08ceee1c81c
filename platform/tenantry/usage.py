"""API calls per tenant per day: one Redis INCR per call, flushed to PostgreSQL by cron.

Counting in Redis keeps the hot path to a tally in the admission round trip; the cron moves counts
into `api_usage_daily` with GETDEL, so a count is either still in Redis or in the table,
never in both.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, date, datetime

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.db import Database
from tenantry.models import ApiUsageDaily

logger = logging.getLogger("tenantry.usage")

_PREFIX = "usage:"
TTL_SECONDS = 8 * 24 * 3600  # survive a week of flush outages


def usage_key(tenant_id: uuid.UUID, day: date) -> str:
    return f"{_PREFIX}{day.isoformat()}:{tenant_id}"


def tally(tenant_id: uuid.UUID) -> tuple[str, int]:
    """Today's counter of the tenant and its TTL: `admission` counts the call with it."""
    return usage_key(tenant_id, datetime.now(UTC).date()), TTL_SECONDS


async def flush(redis: Redis, db: Database) -> int:
    """Move every counter into the table; returns how many calls were moved."""
    moved = 0
    async for raw_key in redis.scan_iter(match=f"{_PREFIX}*", count=500):
        key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
        _, day_text, tenant_text = key.split(":", 2)
        value = await redis.getdel(key)
        if not value:
            continue
        calls = int(value)
        tenant_id = uuid.UUID(tenant_text)
        try:
            async with db.session_scope(tenant_id) as session:
                if not await _tenant_exists(session, tenant_id):
                    continue
                stmt = insert(ApiUsageDaily).values(
                    tenant_id=tenant_id, day=date.fromisoformat(day_text), calls=calls
                )
                await session.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["tenant_id", "day"],
                        set_={"calls": ApiUsageDaily.calls + stmt.excluded.calls},
                    )
                )
        except Exception:
            # Put the count back so the next flush retries it.
            await redis.incrby(key, calls)
            raise
        moved += calls
    return moved


async def _tenant_exists(session: AsyncSession, tenant_id: uuid.UUID) -> bool:
    found = await session.execute(
        sa.text("SELECT 1 FROM tenants WHERE id = :id"), {"id": tenant_id}
    )
    return found.first() is not None
