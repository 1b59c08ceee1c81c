"""API keys: made by admins, shown once, kept as an HMAC, revoked rather than deleted
(so the audit trail can still name the key that did something)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.api_keys.repository import ApiKeyRepository
from tenantry.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from tenantry.audit.service import audit
from tenantry.auth import tokens
from tenantry.auth.api_key import display_prefix, generate_key
from tenantry.auth.principal import Principal, user_id_of
from tenantry.config import Settings
from tenantry.errors import NotFound
from tenantry.kit.pagination import Page, PageParams
from tenantry.models import ApiKey
from tenantry.models.base import utcnow
from tenantry.webhooks.service import webhook_events


class ApiKeyNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("API key not found")


class ApiKeyService:
    async def create(
        self, session: AsyncSession, settings: Settings, principal: Principal, data: ApiKeyCreate
    ) -> ApiKeyCreated:
        key = generate_key()
        expires_at = (
            utcnow() + timedelta(days=data.expires_in_days) if data.expires_in_days else None
        )
        api_key = ApiKeyRepository(session, principal.require_tenant()).add(
            ApiKey(
                tenant_id=principal.require_tenant(),
                name=data.name,
                prefix=display_prefix(key),
                key_hash=tokens.hash_secret(settings, key),
                scopes=[scope.value for scope in data.scopes],
                created_by=user_id_of(principal),
                expires_at=expires_at,
            )
        )
        await session.flush()
        await audit.record(
            session,
            principal,
            "api_key.created",
            target_type="api_key",
            target_id=api_key.id,
            data={"name": api_key.name, "prefix": api_key.prefix, "scopes": api_key.scopes},
        )
        read = ApiKeyRead.model_validate(api_key)
        # The key itself is never in an event: only the answer to its creator shows it.
        await webhook_events.emit(session, api_key.tenant_id, "api_key.created", read)
        return ApiKeyCreated(**read.model_dump(), key=key)

    async def list(
        self, session: AsyncSession, principal: Principal, params: PageParams
    ) -> Page[ApiKeyRead]:
        rows, next_cursor = await ApiKeyRepository(session, principal.require_tenant()).page(params)
        return Page(items=[ApiKeyRead.model_validate(row) for row in rows], next_cursor=next_cursor)

    async def revoke(self, session: AsyncSession, principal: Principal, key_id: uuid.UUID) -> None:
        api_key = await ApiKeyRepository(session, principal.require_tenant()).get_for_update(key_id)
        if api_key is None:
            raise ApiKeyNotFound()
        if api_key.revoked_at is not None:
            return  # already revoked: the DELETE is idempotent
        api_key.revoked_at = utcnow()
        session.add(api_key)
        await session.flush()
        await audit.record(
            session,
            principal,
            "api_key.revoked",
            target_type="api_key",
            target_id=api_key.id,
            data={"name": api_key.name, "prefix": api_key.prefix},
        )
        await webhook_events.emit(
            session, api_key.tenant_id, "api_key.revoked", ApiKeyRead.model_validate(api_key)
        )


api_key = ApiKeyService()
