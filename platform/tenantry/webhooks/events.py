"""Events into the outbox: recorded in the transaction of the change that causes them.

`emit()` is called by a service right where it records its audit event. One statement
writes the event and one delivery row per enabled endpoint of the tenant subscribed to
its type (nothing at all when there is none), inside the caller's transaction: a
rolled-back or refused write leaves no event, a committed one leaves every delivery it
needs. Waking the workers is the same machinery as the email outbox: a job buffered on
the session and sent after the commit (`tenantry.jobs`), and a relay cron that finds
pending rows whose job was lost (Redis down, a worker killed) and wakes them again.

Each wake-up is per endpoint, not per delivery, and coalesces (see `wake_job_id`): a
hundred events for one endpoint in a second queue one job, not a hundred.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, get_args

import orjson
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.jobs import Job, enqueue
from tenantry.webhooks.repository import WebhookEventRepository
from tenantry.webhooks.schemas import EventName

# The event catalogue (docs/webhooks.md): the schema's names, less the "*" wildcard.
CATALOGUE = tuple(name for name in get_args(EventName) if name != "*")
EVENT_TYPES = frozenset(CATALOGUE)
ALL = "*"
PING = "webhook.ping"

_WOKEN = "webhooks.woken"


def generation_key(tenant_id: uuid.UUID, endpoint_id: uuid.UUID) -> str:
    """Bumped by every delivery job when it starts (under the tenant's key prefix, so a
    tenant purge removes it)."""
    return f"t:{tenant_id}:webhooks:gen:{endpoint_id}"


def wake_job_id(endpoint_id: uuid.UUID) -> str:
    """The job id of a wake-up, completed with the endpoint's generation at send time.

    While a wake-up is queued and not started, more wake-ups get the same id and ARQ
    keeps one; once it has started (and bumped the generation) the next one gets a new
    id, so a delivery committed after a job's last look is never left without a job.
    """
    return f"webhooks:{endpoint_id}"


def wake(session: AsyncSession, tenant_id: uuid.UUID, endpoint_id: uuid.UUID) -> None:
    """Buffer one wake-up per endpoint per transaction; it leaves after the commit."""
    woken: set[uuid.UUID] = session.info.setdefault(_WOKEN, set())
    if endpoint_id in woken:
        return
    woken.add(endpoint_id)
    enqueue(
        session,
        Job.DELIVER_WEBHOOKS,
        job_id=wake_job_id(endpoint_id),
        generation_key=generation_key(tenant_id, endpoint_id),
        tenant_id=str(tenant_id),
        endpoint_id=str(endpoint_id),
    )


def payload(type: str, tenant_id: uuid.UUID, data: BaseModel | dict[str, Any], at: datetime) -> str:
    """The body every delivery of the event sends: `data` is the object exactly as the
    API serialises it (its Read schema in JSON mode)."""
    value = data.model_dump(mode="json") if isinstance(data, BaseModel) else data
    body = {
        "type": type,
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "tenant_id": str(tenant_id),
        "data": value,
    }
    return orjson.dumps(body).decode()


async def emit(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    type: str,
    data: BaseModel | dict[str, Any],
    *,
    only_endpoint: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """Record `type` for every subscribed enabled endpoint; the deliveries' ids.

    `only_endpoint` sends to that endpoint alone, whatever it subscribes to (a ping).
    """
    assert type in EVENT_TYPES, type
    at = datetime.now(UTC)
    rows = await WebhookEventRepository(session, tenant_id).fan_out(
        type, payload(type, tenant_id, data, at), at, only_endpoint=only_endpoint
    )
    for row in rows:
        wake(session, tenant_id, row["endpoint_id"])
    return [row["id"] for row in rows]
