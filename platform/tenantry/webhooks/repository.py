from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from tenantry.kit.keyset import by_created, fetch_page
from tenantry.kit.pagination import PageParams
from tenantry.kit.repository import TenantRepository
from tenantry.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint

ENDPOINTS_NEWEST_FIRST = by_created(col(WebhookEndpoint.created_at), col(WebhookEndpoint.id))
DELIVERIES_NEWEST_FIRST = by_created(col(WebhookDelivery.created_at), col(WebhookDelivery.id))


class WebhookEndpointRepository(TenantRepository[WebhookEndpoint]):
    model = WebhookEndpoint

    async def get_for_update(self, id: uuid.UUID) -> WebhookEndpoint | None:
        stmt = (
            self.select()
            .where(col(WebhookEndpoint.id) == id)
            .with_for_update(key_share=True)  # FOR NO KEY UPDATE: inserts of deliveries go on
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def lock_and_count(self) -> int:
        """Serialise creates within the tenant (a transaction-scoped advisory lock), so
        two at once cannot both pass the limit; then count."""
        await self.session.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended('webhooks:' || :t, 0))"),
            {"t": str(self.tenant_id)},
        )
        stmt = sa.select(sa.func.count()).where(col(WebhookEndpoint.tenant_id) == self.tenant_id)
        return int((await self.session.execute(stmt)).scalar_one())

    async def page(self, params: PageParams) -> tuple[Sequence[Any], str | None]:
        return await fetch_page(self.session, self.select(), ENDPOINTS_NEWEST_FIRST, params)


class WebhookDeliveryRepository(TenantRepository[WebhookDelivery]):
    model = WebhookDelivery

    async def get_of(
        self, endpoint_id: uuid.UUID, id: uuid.UUID, *, lock: bool = False
    ) -> WebhookDelivery | None:
        stmt = self.select().where(
            col(WebhookDelivery.endpoint_id) == endpoint_id, col(WebhookDelivery.id) == id
        )
        if lock:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def page(
        self, endpoint_id: uuid.UUID, params: PageParams, status: DeliveryStatus | None
    ) -> tuple[Sequence[Any], str | None]:
        stmt = self.select().where(col(WebhookDelivery.endpoint_id) == endpoint_id)
        if status is not None:
            stmt = stmt.where(col(WebhookDelivery.status) == status)
        return await fetch_page(self.session, stmt, DELIVERIES_NEWEST_FIRST, params)

    async def attempts(self, delivery_id: uuid.UUID) -> list[WebhookAttempt]:
        stmt = (
            sa.select(WebhookAttempt)
            .where(
                col(WebhookAttempt.tenant_id) == self.tenant_id,
                col(WebhookAttempt.delivery_id) == delivery_id,
            )
            .order_by(col(WebhookAttempt.at), col(WebhookAttempt.id))
        )
        return list((await self.session.execute(stmt)).scalars().all())
