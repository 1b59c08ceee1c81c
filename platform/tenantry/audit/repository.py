from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from tenantry.audit.schemas import AuditFilters
from tenantry.db import Rider, writes_for
from tenantry.kit.keyset import by_created, fetch_page
from tenantry.kit.pagination import PageParams
from tenantry.kit.repository import TenantRepository
from tenantry.models import AuditEvent

NEWEST_FIRST = by_created(col(AuditEvent.created_at), col(AuditEvent.id))
_ACTORS = ("actor_user_id", "actor_api_key_id", "ip", "user_agent")
_FIELDS = ("tenant_id", "created_at", "action", "target_type", "target_id", "data", *_ACTORS)


@functools.cache
def _insert() -> sa.Insert:
    """The audit row as a template, compiled once (`db.compiled`); PostgreSQL makes its
    id (no `uuid4()` system call here). Placeholders are `audit_*`, apart from those of
    any write it rides in."""
    values: dict[str, Any] = {name: sa.bindparam(f"audit_{name}") for name in _FIELDS}
    return sa.insert(AuditEvent).values({**values, "id": sa.func.gen_random_uuid()})


@functools.cache
def _riding() -> sa.CTE:
    return _insert().cte("audit_row")


class AuditEventRepository(TenantRepository[AuditEvent]):
    model = AuditEvent

    def _values(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {f"audit_{name}": None for name in _ACTORS}
        values.update({f"audit_{name}": value for name, value in fields.items()})
        values["audit_tenant_id"] = self.tenant_id
        values["audit_created_at"] = datetime.now(UTC)
        return values

    async def write(self, **fields: Any) -> None:
        """Write one event in the unit of work's transaction, whichever it is
        (`writes_for(opens=False)`)."""
        writes = await writes_for(self.session, opens=False)
        await writes.all(_insert(), self._values(fields))

    def rider(self, fields: Mapping[str, Any]) -> Rider:
        """The event as a CTE riding in the write it records (`Writes.one(riders=…)`)."""
        return Rider(self._values(fields), cte=_riding())

    async def page(
        self, params: PageParams, filters: AuditFilters
    ) -> tuple[Sequence[Any], str | None]:
        stmt = self.select()
        if filters.action:
            # "member." lists every member action; "member.removed" just that one.
            if filters.action.endswith("."):
                stmt = stmt.where(
                    col(AuditEvent.action).startswith(filters.action, autoescape=True)
                )
            else:
                stmt = stmt.where(col(AuditEvent.action) == filters.action)
        if filters.actor_user_id:
            stmt = stmt.where(col(AuditEvent.actor_user_id) == filters.actor_user_id)
        if filters.target_type:
            stmt = stmt.where(col(AuditEvent.target_type) == filters.target_type)
        if filters.target_id:
            stmt = stmt.where(col(AuditEvent.target_id) == filters.target_id)
        return await fetch_page(self.session, stmt, NEWEST_FIRST, params)
