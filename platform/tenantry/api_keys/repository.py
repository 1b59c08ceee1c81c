from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlmodel import col

from tenantry.kit.keyset import by_created, fetch_page
from tenantry.kit.pagination import PageParams
from tenantry.kit.repository import TenantRepository
from tenantry.models import ApiKey

NEWEST_FIRST = by_created(col(ApiKey.created_at), col(ApiKey.id))


class ApiKeyRepository(TenantRepository[ApiKey]):
    model = ApiKey

    async def get_for_update(self, key_id: uuid.UUID) -> ApiKey | None:
        stmt = (
            self.select()
            .where(col(ApiKey.id) == key_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def page(self, params: PageParams) -> tuple[Sequence[Any], str | None]:
        return await fetch_page(self.session, self.select(), NEWEST_FIRST, params)
