from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from tenantry.api_keys.auth import ApiKeysManage
from tenantry.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from tenantry.api_keys.service import api_key as api_key_service
from tenantry.deps import SessionDep, SettingsDep, UnitOfWorkRoute
from tenantry.kit.http import location
from tenantry.kit.pagination import Page, PageParams

router = APIRouter(prefix="/api-keys", tags=["api-keys"], route_class=UnitOfWorkRoute)


@router.post("", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED)
async def create(
    body: ApiKeyCreate,
    principal: ApiKeysManage,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> ApiKeyCreated:
    """Create an API key; the `key` is in this answer only (admins)."""
    response.headers["Cache-Control"] = "no-store"
    created = await api_key_service.create(session, settings, principal, body)
    response.headers["Location"] = location(request, "api-keys", created.id)
    return created


@router.get("", response_model=Page[ApiKeyRead], openapi_extra=PageParams.openapi())
async def list(principal: ApiKeysManage, session: SessionDep, request: Request) -> Page[ApiKeyRead]:
    """List the tenant's API keys, newest first, without secrets (admins)."""
    return await api_key_service.list(session, principal, PageParams.parse(request))


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke(key_id: uuid.UUID, principal: ApiKeysManage, session: SessionDep) -> None:
    """Revoke an API key: it answers 401 from the next request on (admins)."""
    await api_key_service.revoke(session, principal, key_id)
