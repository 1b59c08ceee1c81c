"""Removing a deleted tenant's data: every tenant-owned row, its outbox mail, its Redis
keys, then the tenant row itself.

Batches of `batch_size` rows, one short transaction each (scoped by RLS to the tenant),
so a purge never holds long locks or bloats one transaction. Everything it does is a
delete of what is left, so it is idempotent: a killed worker's job runs again and
carries on where the last committed batch ended. The tenant row goes last, so until
the purge has finished the tenant stays visible (deleted_at set) for a relay to find.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlmodel import col

from tenantry.db import Database
from tenantry.models import EmailOutbox, Tenant, metadata

logger = logging.getLogger("tenantry.tenants.purge")

DEFAULT_BATCH_SIZE = 500
REDIS_SCAN_COUNT = 1000


def tenant_key_pattern(tenant_id: uuid.UUID) -> str:
    """Every per-tenant Redis key starts `t:{tenant_id}:` so a purge can find it."""
    return f"t:{tenant_id}:*"


def tenant_tables() -> list[sa.Table]:
    """Every table with a tenant_id, dependents before what they reference.

    Read from the metadata, so a table another domain adds later is purged too.
    """
    return [table for table in reversed(metadata.sorted_tables) if "tenant_id" in table.c]


def _batch_delete(table: sa.Table, tenant_id: uuid.UUID, batch_size: int) -> sa.Delete:
    # `tenant_id = …` on the DELETE itself too, so on Citus it routes to one shard.
    key = list(table.primary_key.columns)
    batch = sa.select(*key).where(table.c.tenant_id == tenant_id).limit(batch_size)
    mine = table.c.tenant_id == tenant_id
    if len(key) == 1:
        return table.delete().where(mine, key[0].in_(batch.scalar_subquery()))
    return table.delete().where(mine, sa.tuple_(*key).in_(batch))


class _OutOfTime(Exception):
    """The run's time budget is spent; what is committed stays, the next run goes on."""


@dataclass
class PurgeResult:
    tenant_id: uuid.UUID
    status: str  # purged | partial | gone | not-deleted
    rows: dict[str, int] = field(default_factory=dict)
    outbox: int = 0
    redis_keys: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "tenant_id": str(self.tenant_id),
            "status": self.status,
            "rows": self.rows,
            "outbox": self.outbox,
            "redis_keys": self.redis_keys,
        }


@dataclass
class _Drain:
    """Runs one batch delete again and again, each in its own transaction, until short."""

    db: Database
    batch_size: int
    pause_seconds: float
    deadline: float | None

    async def run(self, statement: sa.Delete, tenant_id: uuid.UUID | None) -> int:
        total = 0
        while True:
            async with self.db.session_scope(tenant_id) as session:
                deleted: int = (await session.execute(statement)).rowcount  # type: ignore[attr-defined]
            total += deleted
            if deleted < self.batch_size:
                return total
            if self.deadline is not None and time.monotonic() >= self.deadline:
                raise _OutOfTime
            if self.pause_seconds:
                await asyncio.sleep(self.pause_seconds)


class TenantPurger:
    async def purge(
        self,
        db: Database,
        redis: Redis,
        tenant_id: uuid.UUID,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        pause_seconds: float = 0.0,
        deadline: float | None = None,
    ) -> PurgeResult:
        """Purge a tenant whose deleted_at is set; anything else is left untouched.

        With a `deadline` (a `time.monotonic()` value) it stops after the batch that
        crosses it and answers status "partial": the caller runs it again to go on.
        """
        async with db.session_scope() as session:
            deleted_at = (
                await session.execute(
                    sa.select(col(Tenant.deleted_at)).where(col(Tenant.id) == tenant_id)
                )
            ).first()
        if deleted_at is None:
            return PurgeResult(tenant_id, "gone")
        if deleted_at[0] is None:
            # Never purge a live tenant, whatever asked for it.
            logger.error("refusing to purge tenant %s: it is not deleted", tenant_id)
            return PurgeResult(tenant_id, "not-deleted")

        result = PurgeResult(tenant_id, "purged")
        drain = _Drain(db, batch_size, pause_seconds, deadline)
        outbox = EmailOutbox.__table__  # type: ignore[attr-defined]
        outbox_batch = (
            sa.select(outbox.c.id).where(outbox.c.tenant_ref == tenant_id).limit(batch_size)
        )
        try:
            for table in tenant_tables():
                statement = _batch_delete(table, tenant_id, batch_size)
                result.rows[table.name] = await drain.run(statement, tenant_id)
            result.outbox = await drain.run(
                outbox.delete().where(outbox.c.id.in_(outbox_batch.scalar_subquery())), None
            )
        except _OutOfTime:
            result.status = "partial"
            logger.info("purge of tenant %s paused for time: %s", tenant_id, result.as_dict())
            return result
        result.redis_keys = await self._delete_keys(redis, tenant_id)
        async with db.session_scope() as session:
            await session.execute(
                sa.delete(Tenant).where(
                    col(Tenant.id) == tenant_id, col(Tenant.deleted_at).is_not(None)
                )
            )
        logger.info("purged tenant %s: %s", tenant_id, result.as_dict())
        return result

    async def _delete_keys(self, redis: Redis, tenant_id: uuid.UUID) -> int:
        # SCAN, never KEYS: it walks the keyspace in steps instead of blocking Redis.
        deleted = 0
        batch: list[bytes] = []
        async for key in redis.scan_iter(
            match=tenant_key_pattern(tenant_id), count=REDIS_SCAN_COUNT
        ):
            batch.append(key)
            if len(batch) >= REDIS_SCAN_COUNT:
                deleted += await redis.unlink(*batch)
                batch = []
        if batch:
            deleted += await redis.unlink(*batch)
        return deleted


purger = TenantPurger()
