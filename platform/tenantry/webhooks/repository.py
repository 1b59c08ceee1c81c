"""Webhook endpoints, deliveries and events: every statement of the webhooks domain.

The delivery job's claim and record, and the event fan-out, are single statements in
SQL (CTEs PostgreSQL runs atomically); each names its tenant, as every repository does.
`WebhookMaintenanceRepository` alone reads across tenants, for the cron jobs, through
the read-only RLS arm its transaction names (migration 0006).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tenantry.db import Rider, writes_for
from tenantry.kit.keyset import by_created, fetch_page
from tenantry.kit.pagination import PageParams
from tenantry.kit.repository import TenantRepository
from tenantry.models import (
    DeliveryStatus,
    EndpointStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

_FAN_OUT = sa.text(
    """
    WITH targets AS (
        SELECT id FROM webhook_endpoints
         WHERE tenant_id = :tenant AND status = 'enabled'
           AND (events ? :type OR events ? '*' OR id = :only)
           AND (CAST(:only AS uuid) IS NULL OR id = :only)
    ), event AS (
        INSERT INTO webhook_events (tenant_id, id, type, body, created_at)
        SELECT :tenant, gen_random_uuid(), :type, :body, :at
         WHERE EXISTS (SELECT 1 FROM targets)
        RETURNING id
    )
    INSERT INTO webhook_deliveries (
        tenant_id, id, endpoint_id, event_id, event_type, status, attempt_count,
        max_attempts, next_attempt_at, created_at, updated_at)
    SELECT :tenant, gen_random_uuid(), targets.id, event.id, :type, 'pending', 0,
           0, :at, :at, :at
      FROM targets CROSS JOIN event
    RETURNING id, endpoint_id
    """
)
SUBSCRIBED = "webhooks_subscribed"


@functools.cache
def _subscribed() -> sa.Label[bool]:
    """Whether an enabled endpoint of the tenant listens to the event type: the same
    test as `_FAN_OUT`'s targets, as a value a write's RETURNING can carry."""
    type = sa.bindparam("webhooks_type", type_=sa.String())
    has = col(WebhookEndpoint.events).op("?")
    return (
        sa.exists()
        .where(
            col(WebhookEndpoint.tenant_id) == sa.bindparam("webhooks_tenant"),
            col(WebhookEndpoint.status) == EndpointStatus.ENABLED.value,
            sa.or_(has(type), has(sa.literal("*", sa.String()))),
        )
        .label(SUBSCRIBED)
    )


_LOCK_ENDPOINT = sa.text(
    """
    SELECT url, secret_sealed,
           CASE WHEN previous_secret_expires_at > clock_timestamp()
                THEN previous_secret_sealed END AS previous_secret_sealed
      FROM webhook_endpoints
     WHERE tenant_id = :tenant AND id = :endpoint AND status = 'enabled'
       FOR NO KEY UPDATE
    """
)

_CLAIM = sa.text(
    """
    WITH busy AS (
        SELECT count(*) AS n FROM webhook_deliveries
         WHERE tenant_id = :tenant AND endpoint_id = :endpoint AND status = 'pending'
           AND lease_until > clock_timestamp()
    ), due AS (
        SELECT id, next_attempt_at FROM webhook_deliveries
         WHERE tenant_id = :tenant AND endpoint_id = :endpoint AND status = 'pending'
           AND next_attempt_at <= clock_timestamp()
           AND (lease_until IS NULL OR lease_until <= clock_timestamp())
           AND (SELECT n FROM busy) < :cap
         ORDER BY next_attempt_at, id
         LIMIT 2
           FOR UPDATE SKIP LOCKED
    ), picked AS (
        UPDATE webhook_deliveries d
           SET attempt_count = d.attempt_count + 1,
               lease_until = clock_timestamp() + make_interval(secs => :lease),
               updated_at = clock_timestamp()
         WHERE d.tenant_id = :tenant
           AND d.id = (SELECT id FROM due ORDER BY next_attempt_at, id LIMIT 1)
        RETURNING d.id, d.event_id, d.attempt_count, d.max_attempts
    )
    SELECT picked.id, picked.attempt_count, picked.max_attempts, e.body,
           (SELECT count(*) FROM due) > 1 AS more_due
      FROM picked
      JOIN webhook_events e ON e.tenant_id = :tenant AND e.id = picked.event_id
    """
)

_ATTEMPT = sa.text(
    """
    INSERT INTO webhook_attempts
        (tenant_id, id, delivery_id, at, status_code, duration_ms, error, response_body)
    VALUES (:tenant, :id, :delivery, :at, :status_code, :duration_ms, :error, :response_body)
    """
)

# Each update is fenced by the attempt this worker claimed: a stale worker records nothing.
_SUCCEEDED = sa.text(
    """
    UPDATE webhook_deliveries
       SET status = 'succeeded', delivered_at = clock_timestamp(), lease_until = NULL,
           last_status_code = :status_code, last_error = NULL, updated_at = clock_timestamp()
     WHERE tenant_id = :tenant AND id = :id AND status = 'pending' AND attempt_count = :attempt
    RETURNING endpoint_id
    """
)

_RETRY = sa.text(
    """
    UPDATE webhook_deliveries
       SET next_attempt_at = clock_timestamp() + make_interval(secs => :delay),
           lease_until = NULL, last_status_code = :status_code, last_error = :error,
           updated_at = clock_timestamp()
     WHERE tenant_id = :tenant AND id = :id AND status = 'pending' AND attempt_count = :attempt
    RETURNING endpoint_id
    """
)

_FAILED = sa.text(
    """
    UPDATE webhook_deliveries
       SET status = 'failed', lease_until = NULL, last_status_code = :status_code,
           last_error = :error, updated_at = clock_timestamp()
     WHERE tenant_id = :tenant AND id = :id AND status = 'pending' AND attempt_count = :attempt
    RETURNING endpoint_id
    """
)

_RESET_FAILURES = sa.text(
    """
    UPDATE webhook_endpoints SET consecutive_failures = 0
     WHERE tenant_id = :tenant AND id = :endpoint AND consecutive_failures <> 0
    """
)

_COUNT_FAILURE = sa.text(
    """
    UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1
     WHERE tenant_id = :tenant AND id = :endpoint
    RETURNING consecutive_failures, status
    """
)

_DISABLE = sa.text(
    """
    UPDATE webhook_endpoints
       SET status = 'disabled', disabled_reason = :reason, updated_at = clock_timestamp()
     WHERE tenant_id = :tenant AND id = :endpoint AND status = 'enabled'
    RETURNING url
    """
)

_CANCEL_PENDING = sa.text(
    """
    UPDATE webhook_deliveries
       SET status = 'failed', lease_until = NULL, last_error = 'Endpoint disabled',
           updated_at = clock_timestamp()
     WHERE tenant_id = :tenant AND endpoint_id = :endpoint AND status = 'pending'
    """
)

_DUE = sa.text(
    """
    SELECT DISTINCT tenant_id, endpoint_id FROM (
        SELECT tenant_id, endpoint_id FROM webhook_deliveries
         WHERE status = 'pending'
           AND next_attempt_at <= clock_timestamp() - make_interval(secs => :grace)
           AND (lease_until IS NULL OR lease_until <= clock_timestamp())
         ORDER BY next_attempt_at
         LIMIT :limit) AS due
    """
)

_GAUGES = sa.text(
    """
    SELECT count(*) AS pending,
           coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0) AS oldest
      FROM webhook_deliveries WHERE status = 'pending'
    """
)

_EVENT_TENANTS = sa.text("SELECT DISTINCT tenant_id FROM webhook_events LIMIT 500")

_DELETE_OLD = sa.text(
    """
    DELETE FROM webhook_events WHERE tenant_id = :tenant AND id IN (
        SELECT id FROM webhook_events
         WHERE tenant_id = :tenant
           AND created_at < now() - make_interval(days => :days)
         LIMIT :batch)
    """
)

_MAINTENANCE = "SELECT set_app_context(p_maintenance => :name)"

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

    def _params(self, endpoint_id: uuid.UUID) -> dict[str, Any]:
        return {"tenant": self.tenant_id, "endpoint": endpoint_id}

    async def lock_enabled(self, endpoint_id: uuid.UUID) -> Any | None:
        """Lock an enabled endpoint for a claim (`FOR NO KEY UPDATE`, which new deliveries'
        foreign-key checks do not wait for): its url and the secrets that sign."""
        return (await self.session.execute(_LOCK_ENDPOINT, self._params(endpoint_id))).first()

    async def reset_failures(self, endpoint_id: uuid.UUID) -> None:
        await self.session.execute(_RESET_FAILURES, self._params(endpoint_id))

    async def count_failure(self, endpoint_id: uuid.UUID) -> Any | None:
        """One more delivery failed for good in a row: the new count and the status."""
        return (await self.session.execute(_COUNT_FAILURE, self._params(endpoint_id))).first()

    async def disable(self, endpoint_id: uuid.UUID, reason: str) -> str | None:
        """Disable an enabled endpoint; its url, or None when it was not enabled."""
        params = {**self._params(endpoint_id), "reason": reason[:200]}
        row = (await self.session.execute(_DISABLE, params)).first()
        return None if row is None else str(row.url)


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

    async def claim(self, endpoint_id: uuid.UUID, *, cap: int, lease: float) -> Any | None:
        """Below `cap` live leases, lease the endpoint's oldest due delivery for `lease`
        seconds and count its attempt; None when nothing is due or the cap is reached."""
        params = {"tenant": self.tenant_id, "endpoint": endpoint_id, "cap": cap, "lease": lease}
        return (await self.session.execute(_CLAIM, params)).first()

    async def add_attempt(
        self,
        delivery_id: uuid.UUID,
        *,
        at: datetime,
        status_code: int | None,
        duration_ms: int,
        error: str | None,
        response_body: str | None,
    ) -> None:
        await self.session.execute(
            _ATTEMPT,
            {
                "tenant": self.tenant_id,
                "id": uuid.uuid4(),
                "delivery": delivery_id,
                "at": at,
                "status_code": status_code,
                "duration_ms": duration_ms,
                "error": error,
                "response_body": response_body,
            },
        )

    async def settle(
        self,
        delivery_id: uuid.UUID,
        attempt: int,
        outcome: str,
        *,
        status_code: int | None,
        error: str | None,
        retry_in: float = 0.0,
    ) -> bool:
        """Record the outcome of attempt number `attempt` ("succeeded", "retried" or
        "failed"); False when another claim has taken the delivery since."""
        statement = {"succeeded": _SUCCEEDED, "retried": _RETRY, "failed": _FAILED}[outcome]
        params = {
            "tenant": self.tenant_id,
            "id": delivery_id,
            "attempt": attempt,
            "status_code": status_code,
            "error": error,
            "delay": retry_in,
        }
        return (await self.session.execute(statement, params)).first() is not None

    async def cancel_pending(self, endpoint_id: uuid.UUID) -> None:
        """Fail the endpoint's pending deliveries (it was disabled)."""
        await self.session.execute(
            _CANCEL_PENDING, {"tenant": self.tenant_id, "endpoint": endpoint_id}
        )

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


class WebhookEventRepository:
    """The event outbox of one tenant."""

    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def subscribed(self, type: str) -> Rider:
        """Whether anyone listens to `type`, as a value riding in the write that causes
        it (`SUBSCRIBED` in its row): when none does, the change needs no fan-out."""
        return Rider(
            {"webhooks_tenant": self.tenant_id, "webhooks_type": type}, returns=_subscribed()
        )

    async def fan_out(
        self,
        type: str,
        body: str,
        at: datetime,
        *,
        only_endpoint: uuid.UUID | None,
    ) -> Sequence[Any]:
        """Write the event and a pending delivery per enabled endpoint subscribed to it
        (nothing at all when there is none), in the unit of work's transaction whichever
        it is (`writes_for(opens=False)`); the deliveries' {id, endpoint_id}."""
        params = {"tenant": self.tenant_id, "type": type, "body": body, "at": at}
        params["only"] = only_endpoint
        writes = await writes_for(self.session, opens=False)
        return await writes.all(_FAN_OUT, params)

    async def delete_older_than(self, *, days: int, batch: int) -> int:
        """Delete up to `batch` events older than `days` (their deliveries and attempts
        cascade); how many went."""
        params = {"tenant": self.tenant_id, "days": days, "batch": batch}
        result = await self.session.execute(_DELETE_OLD, params)
        return int(getattr(result, "rowcount", 0) or 0)


class WebhookMaintenanceRepository:
    """Reads across tenants for the crons; each opens the read-only arm named `name`."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _open(self, name: str) -> None:
        await self.session.execute(sa.text(_MAINTENANCE), {"name": name})

    async def due_endpoints(self, *, grace: float, limit: int) -> Sequence[Any]:
        """(tenant_id, endpoint_id) with a delivery overdue by more than `grace` seconds
        and no live lease."""
        await self._open("webhooks-relay")
        return (await self.session.execute(_DUE, {"grace": grace, "limit": limit})).all()

    async def pending(self) -> Any:
        """How many deliveries are pending, and the age of the oldest in seconds."""
        await self._open("webhooks-relay")
        return (await self.session.execute(_GAUGES)).one()

    async def tenants_with_events(self) -> list[uuid.UUID]:
        await self._open("webhooks-prune")
        return [row.tenant_id for row in await self.session.execute(_EVENT_TENANTS)]
