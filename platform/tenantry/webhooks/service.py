"""Webhook endpoints and their delivery log, managed by a tenant's admins and owners."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.audit.service import audit
from tenantry.auth.principal import Principal
from tenantry.config import Settings
from tenantry.db import Rider
from tenantry.errors import Conflict, NotFound, Unprocessable
from tenantry.kit.pagination import Page, PageParams
from tenantry.kit.precondition import Precondition, writable
from tenantry.models import DeliveryStatus, EndpointStatus, WebhookDelivery, WebhookEndpoint
from tenantry.models.base import utcnow
from tenantry.webhooks import addresses, events
from tenantry.webhooks.repository import (
    SUBSCRIBED,
    WebhookDeliveryRepository,
    WebhookEndpointRepository,
    WebhookEventRepository,
)
from tenantry.webhooks.schemas import (
    AttemptRead,
    DeliveryDetail,
    DeliveryRead,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhookUpdate,
)
from tenantry.webhooks.secrets import Sealer, new_secret

ROTATION_OVERLAP = timedelta(hours=24)


class WebhookNotFound(NotFound):
    title = "Webhook endpoint not found"

    def __init__(self) -> None:
        super().__init__("No webhook endpoint with this id")


class DeliveryNotFound(NotFound):
    title = "Delivery not found"

    def __init__(self) -> None:
        super().__init__("No delivery with this id for this endpoint")


class TooManyEndpoints(Conflict):
    code = "webhook-limit"
    title = "Too many webhook endpoints"


class EndpointDisabled(Conflict):
    code = "webhook-disabled"
    title = "The webhook endpoint is disabled"

    def __init__(self) -> None:
        super().__init__("A disabled endpoint receives nothing; enable it first")


async def _check_url(settings: Settings, url: str) -> None:
    try:
        await addresses.resolve_target(settings, url)
    except addresses.AddressRefused as exc:
        raise Unprocessable(str(exc), field="body.url") from None


def read_delivery(row: WebhookDelivery) -> DeliveryRead:
    value = DeliveryRead.model_validate(row)
    if row.status is not DeliveryStatus.PENDING:
        value.next_attempt_at = None
    return value


class WebhookService:
    def _repo(self, session: AsyncSession, principal: Principal) -> WebhookEndpointRepository:
        return WebhookEndpointRepository(session, principal.require_tenant())

    async def _get(
        self,
        session: AsyncSession,
        principal: Principal,
        id: uuid.UUID,
        *,
        lock: bool = False,
        precondition: Precondition | None = None,
    ) -> WebhookEndpoint:
        """The endpoint; locked when it is about to change, so an `If-Match` checked
        here still holds at the write."""
        repo = self._repo(session, principal)
        endpoint = await (repo.get_for_update(id) if lock else repo.get(id))
        return writable(endpoint, WebhookNotFound, WebhookRead.model_validate, precondition)

    async def create(
        self, session: AsyncSession, settings: Settings, principal: Principal, data: WebhookCreate
    ) -> WebhookCreated:
        await _check_url(settings, data.url)
        repo = self._repo(session, principal)
        if await repo.lock_and_count() >= settings.webhook_max_endpoints:
            raise TooManyEndpoints(
                f"A tenant has at most {settings.webhook_max_endpoints} webhook endpoints"
            )
        secret = new_secret()
        endpoint_id = uuid.uuid4()
        endpoint = repo.add(
            WebhookEndpoint(
                id=endpoint_id,
                tenant_id=repo.tenant_id,
                url=data.url,
                events=list(data.events),
                description=data.description,
                secret_sealed=Sealer(settings).seal(endpoint_id, secret),
            )
        )
        await session.flush()
        await audit.record(
            session,
            principal,
            "webhook.created",
            target_type="webhook",
            target_id=endpoint.id,
            data={"url": endpoint.url, "events": endpoint.events},
        )
        return WebhookCreated(**WebhookRead.model_validate(endpoint).model_dump(), secret=secret)

    async def list(
        self, session: AsyncSession, principal: Principal, params: PageParams
    ) -> Page[WebhookRead]:
        rows, next_cursor = await self._repo(session, principal).page(params)
        return Page(items=[WebhookRead.model_validate(r) for r in rows], next_cursor=next_cursor)

    async def get(self, session: AsyncSession, principal: Principal, id: uuid.UUID) -> WebhookRead:
        return WebhookRead.model_validate(await self._get(session, principal, id))

    async def update(
        self,
        session: AsyncSession,
        settings: Settings,
        principal: Principal,
        id: uuid.UUID,
        data: WebhookUpdate,
        precondition: Precondition | None = None,
    ) -> WebhookRead:
        endpoint = await self._get(session, principal, id, lock=True, precondition=precondition)
        changes = {
            field: value
            for field, value in data.model_dump(exclude_unset=True).items()
            if getattr(endpoint, field) != value
        }
        if "url" in changes:
            await _check_url(settings, changes["url"])
        for field, value in changes.items():
            setattr(endpoint, field, value)
        if changes.get("status") is EndpointStatus.ENABLED:
            # Enabling starts afresh and replays nothing that was missed.
            endpoint.disabled_reason = None
            endpoint.consecutive_failures = 0
        elif changes.get("status") is EndpointStatus.DISABLED:
            endpoint.disabled_reason = None
            repo = WebhookDeliveryRepository(session, endpoint.tenant_id)
            await repo.cancel_pending(id)
        if changes:
            session.add(endpoint)
            await session.flush()
            await audit.record(
                session,
                principal,
                "webhook.updated",
                target_type="webhook",
                target_id=id,
                data={"fields": sorted(changes)},
            )
        return WebhookRead.model_validate(endpoint)

    async def delete(
        self,
        session: AsyncSession,
        principal: Principal,
        id: uuid.UUID,
        precondition: Precondition | None = None,
    ) -> None:
        endpoint = await self._get(session, principal, id, lock=True, precondition=precondition)
        await self._repo(session, principal).delete(endpoint)
        await session.flush()
        await audit.record(
            session,
            principal,
            "webhook.deleted",
            target_type="webhook",
            target_id=id,
            data={"url": endpoint.url},
        )

    async def rotate_secret(
        self, session: AsyncSession, settings: Settings, principal: Principal, id: uuid.UUID
    ) -> str:
        """A new secret; the one it replaces keeps signing too for 24 h, so receivers can
        switch over without dropping a delivery."""
        endpoint = await self._get(session, principal, id, lock=True)
        secret = new_secret()
        endpoint.previous_secret_sealed = endpoint.secret_sealed
        endpoint.previous_secret_expires_at = utcnow() + ROTATION_OVERLAP
        endpoint.secret_sealed = Sealer(settings).seal(endpoint.id, secret)
        session.add(endpoint)
        await session.flush()
        await audit.record(
            session, principal, "webhook.secret_rotated", target_type="webhook", target_id=id
        )
        return secret

    async def ping(self, session: AsyncSession, principal: Principal, id: uuid.UUID) -> uuid.UUID:
        endpoint = await self._get(session, principal, id)
        if endpoint.status is not EndpointStatus.ENABLED:
            raise EndpointDisabled()
        (delivery_id,) = await events.emit(
            session,
            endpoint.tenant_id,
            events.PING,
            {"endpoint_id": str(endpoint.id), "url": endpoint.url},
            only_endpoint=endpoint.id,
        )
        await audit.record(
            session,
            principal,
            "webhook.pinged",
            target_type="webhook",
            target_id=id,
            data={"delivery_id": str(delivery_id)},
        )
        return delivery_id

    async def deliveries(
        self,
        session: AsyncSession,
        principal: Principal,
        id: uuid.UUID,
        params: PageParams,
        status: DeliveryStatus | None,
    ) -> Page[DeliveryRead]:
        await self._get(session, principal, id)
        repo = WebhookDeliveryRepository(session, principal.require_tenant())
        rows, next_cursor = await repo.page(id, params, status)
        return Page(items=[read_delivery(row) for row in rows], next_cursor=next_cursor)

    async def delivery(
        self, session: AsyncSession, principal: Principal, id: uuid.UUID, delivery_id: uuid.UUID
    ) -> DeliveryDetail:
        repo = WebhookDeliveryRepository(session, principal.require_tenant())
        row = await repo.get_of(id, delivery_id)
        if row is None:
            raise DeliveryNotFound()
        attempts = [AttemptRead.model_validate(a) for a in await repo.attempts(delivery_id)]
        return DeliveryDetail(**read_delivery(row).model_dump(), attempts=attempts)

    async def redeliver(
        self, session: AsyncSession, principal: Principal, id: uuid.UUID, delivery_id: uuid.UUID
    ) -> uuid.UUID:
        """One more attempt of the same delivery (same `webhook-id`), now."""
        endpoint = await self._get(session, principal, id)
        repo = WebhookDeliveryRepository(session, principal.require_tenant())
        delivery = await repo.get_of(id, delivery_id, lock=True)
        if delivery is None:
            raise DeliveryNotFound()
        if endpoint.status is not EndpointStatus.ENABLED:
            raise EndpointDisabled()
        delivery.status = DeliveryStatus.PENDING
        delivery.max_attempts = delivery.attempt_count + 1
        delivery.next_attempt_at = utcnow()
        delivery.delivered_at = None
        session.add(delivery)
        await session.flush()
        events.wake(session, endpoint.tenant_id, endpoint.id)
        await audit.record(
            session,
            principal,
            "webhook.redelivered",
            target_type="webhook",
            target_id=id,
            data={"delivery_id": str(delivery_id)},
        )
        return delivery_id


class WebhookEvents:
    """What every other domain may call: record an event in its own transaction, where
    it records the audit event (the outbox, its fan-out and the wake-ups stay here)."""

    async def emit(
        self,
        session: AsyncSession,
        tenant_id: uuid.UUID,
        type: str,
        data: BaseModel | dict[str, Any],
        *,
        subscribed: bool = True,
    ) -> None:
        """`subscribed=False`: the change's own statement found no endpoint listening
        (`rider`), so there is nothing to fan out and no statement is sent. An endpoint
        enabled after that statement and before the commit misses the event, as one
        enabled after the fan-out statement would."""
        if subscribed:
            await events.emit(session, tenant_id, type, data)

    def rider(self, session: AsyncSession, tenant_id: uuid.UUID, type: str) -> Rider:
        """Asks, inside the write that causes `type`, whether any endpoint listens: the
        answer rides back in the write's row (`listening`)."""
        return WebhookEventRepository(session, tenant_id).subscribed(type)

    def listening(self, row: dict[str, Any]) -> bool:
        """The answer to `rider` in a written row, taken out of it (for `emit`)."""
        return bool(row.pop(SUBSCRIBED))


webhook = WebhookService()
webhook_events = WebhookEvents()
