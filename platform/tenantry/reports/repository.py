from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
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
