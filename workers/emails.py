"""Email jobs: deliver one outbox row; relay rows whose delivery job was lost."""

from __future__ import annotations

import uuid
from typing import Any

from tenantry.notifications.delivery import email_delivery
from workers.context import ctx_db, ctx_settings


async def deliver(ctx: dict[str, Any], outbox_id: str) -> str:
    """Send one outbox row; on a transient failure schedule the next try."""
    outcome = await email_delivery.deliver_or_reschedule(
        ctx_db(ctx), ctx_settings(ctx), ctx["redis"], uuid.UUID(outbox_id)
    )
    return outcome.value


async def relay(ctx: dict[str, Any]) -> int:
    """Re-enqueue overdue pending rows."""
    return await email_delivery.relay(ctx_db(ctx), ctx_settings(ctx), ctx["redis"])
