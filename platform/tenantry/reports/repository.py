from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tenantry.kit.keyset import by_created, fetch_page
from tenantry.kit.pagination import PageParams
from tenantry.kit.repository import TenantRepository
from tenantry.models import Report, ReportStatus

NEWEST_FIRST = by_created(col(Report.created_at), col(Report.id))


class ReportRepository(TenantRepository[Report]):
    model = Report

    async def page(self, params: PageParams) -> tuple[Sequence[Report], str | None]:
        return await fetch_page(self.session, self.select(), NEWEST_FIRST, params)

    async def get_for_update(self, id: uuid.UUID) -> Report | None:
        stmt = self.select().where(col(Report.id) == id).with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def set_status(self, id: uuid.UUID, status: ReportStatus, **values: Any) -> None:
        """A status change without loading the row (after a failed build's rollback)."""
        stmt = (
            sa.update(Report)
            .where(col(Report.tenant_id) == self.tenant_id, col(Report.id) == id)
            .values(status=status, **values)
        )
        await self.session.execute(stmt)

    async def count_in_flight(self) -> int:
        stmt = (
            sa.select(sa.func.count())
            .select_from(Report)
            .where(
                col(Report.tenant_id) == self.tenant_id,
                col(Report.status).in_([ReportStatus.QUEUED, ReportStatus.RUNNING]),
            )
        )
        return int((await self.session.execute(stmt)).scalar_one())

    async def lock_tenant(self) -> None:
        """Serialise report creation per tenant so the in-flight cap holds under races."""
        await self.session.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtext('reports:' || :tenant))"),
            {"tenant": str(self.tenant_id)},
        )


async def stale_reports(
    session: AsyncSession, *, queued_before: datetime, running_before: datetime
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(id, tenant_id) of reports whose job was lost, across tenants.

    The reports policy has one narrow, read-only arm for this: in-flight rows only,
    while `app.maintenance` names the relay.
    """
    await session.execute(sa.text("SELECT set_app_context(p_maintenance => 'reports-relay')"))
    rows = await session.execute(
        sa.text(
            "SELECT id, tenant_id FROM reports"
            " WHERE (status = 'queued' AND created_at < :queued)"
            "    OR (status = 'running' AND started_at < :running)"
            " LIMIT 500"
        ),
        {"queued": queued_before, "running": running_before},
    )
    return [(row.id, row.tenant_id) for row in rows]
