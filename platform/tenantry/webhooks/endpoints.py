from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from tenantry.deps import SessionDep, SettingsDep, UnitOfWorkRoute
from tenantry.kit.conditions import IfMatch
from tenantry.kit.http import location
from tenantry.kit.openapi import raises
from tenantry.kit.pagination import Page, PageParams
from tenantry.kit.responses import entity, entity_responses, serialise
from tenantry.webhooks.auth import WebhooksManage
from tenantry.webhooks.schemas import (
    DeliveryDetail,
    DeliveryListQuery,
    DeliveryQueued,
    DeliveryRead,
    SecretRotated,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhookUpdate,
)
from tenantry.webhooks.service import EndpointDisabled, TooManyEndpoints
from tenantry.webhooks.service import webhook as webhook_service

router = APIRouter(prefix="/webhooks", tags=["webhooks"], route_class=UnitOfWorkRoute)


@router.post(
    "",
    response_model=WebhookCreated,
    status_code=status.HTTP_201_CREATED,
    responses=raises(TooManyEndpoints),
)
async def create(
    body: WebhookCreate,
    principal: WebhooksManage,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> WebhookCreated:
    """Add an endpoint; its signing `secret` is in this answer only (admins)."""
    created = await webhook_service.create(session, settings, principal, body)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Location"] = location(request, "webhooks", created.id)
    return created


@router.get("", response_model=Page[WebhookRead], openapi_extra=PageParams.openapi())
async def list(
    principal: WebhooksManage, session: SessionDep, request: Request
) -> Page[WebhookRead]:
    """List the tenant's endpoints, newest first, without secrets (admins)."""
    return await webhook_service.list(session, principal, PageParams.parse(request))


@router.get("/{id}", response_model=WebhookRead, responses=entity_responses(conditional_get=True))
async def get(
    id: uuid.UUID, principal: WebhooksManage, session: SessionDep, request: Request
) -> Response:
    """One endpoint, without its secret (admins)."""
    return entity(request, serialise(await webhook_service.get(session, principal, id)))


@router.patch("/{id}", response_model=WebhookRead, responses=entity_responses())
async def update(
    id: uuid.UUID,
    body: WebhookUpdate,
    principal: WebhooksManage,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    if_match: IfMatch,
) -> Response:
    """Change `url`, `events`, `description` or `status` (only if `If-Match` holds, when
    sent); enabling replays nothing."""
    updated = await webhook_service.update(session, settings, principal, id, body, if_match)
    return entity(request, serialise(updated))


@router.delete("/{id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete(
    id: uuid.UUID, principal: WebhooksManage, session: SessionDep, if_match: IfMatch
) -> Response:
    """Delete an endpoint with its delivery log (only if `If-Match` holds, when sent)."""
    await webhook_service.delete(session, principal, id, if_match)
    return Response(status_code=204)


@router.post("/{id}/rotate-secret", response_model=SecretRotated)
async def rotate_secret(
    id: uuid.UUID,
    principal: WebhooksManage,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> SecretRotated:
    """A new signing secret; for 24 h the old one signs each delivery too (admins)."""
    secret = await webhook_service.rotate_secret(session, settings, principal, id)
    response.headers["Cache-Control"] = "no-store"
    return SecretRotated(secret=secret)


@router.post(
    "/{id}/ping",
    response_model=DeliveryQueued,
    status_code=status.HTTP_202_ACCEPTED,
    responses=raises(EndpointDisabled),
)
async def ping(id: uuid.UUID, principal: WebhooksManage, session: SessionDep) -> DeliveryQueued:
    """Send a `webhook.ping` event to this endpoint, whatever it subscribes to."""
    return DeliveryQueued(delivery_id=await webhook_service.ping(session, principal, id))


@router.get(
    "/{id}/deliveries",
    response_model=Page[DeliveryRead],
    openapi_extra=DeliveryListQuery.openapi(),
)
async def deliveries(
    id: uuid.UUID, principal: WebhooksManage, session: SessionDep, request: Request
) -> Page[DeliveryRead]:
    """The endpoint's deliveries, newest first; `status` filters."""
    query = DeliveryListQuery.parse(request)
    return await webhook_service.deliveries(session, principal, id, query, query.status)


@router.get("/{id}/deliveries/{delivery_id}", response_model=DeliveryDetail)
async def delivery(
    id: uuid.UUID, delivery_id: uuid.UUID, principal: WebhooksManage, session: SessionDep
) -> DeliveryDetail:
    """One delivery with every attempt (each answer's body cut at 1 KiB)."""
    return await webhook_service.delivery(session, principal, id, delivery_id)


@router.post(
    "/{id}/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryQueued,
    status_code=status.HTTP_202_ACCEPTED,
    responses=raises(EndpointDisabled),
)
async def redeliver(
    id: uuid.UUID, delivery_id: uuid.UUID, principal: WebhooksManage, session: SessionDep
) -> DeliveryQueued:
    """One more attempt of the same delivery, with the same `webhook-id`, now."""
    return DeliveryQueued(
        delivery_id=await webhook_service.redeliver(session, principal, id, delivery_id)
    )
