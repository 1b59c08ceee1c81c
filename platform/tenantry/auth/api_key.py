"""API keys as credentials: `tnt_…`, bound to one tenant, with scopes."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auth.principal import Principal
from tenantry.config import Settings
from tenantry.errors import Unauthorized

API_KEY_PREFIX = "tnt_"


async def resolve_api_key(
    session: AsyncSession, settings: Settings, key: str, request: Request
) -> Principal:
    """Placeholder until the API keys domain lands: every key is unknown."""
    raise Unauthorized("Invalid API key")
