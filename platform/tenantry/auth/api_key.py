"""API keys as credentials: `tnt_…`, bound to one tenant, with scopes.

A key is `tnt_` + 30 random base62 characters + a 6-character base62 CRC32 of them
(the shape of GitHub's tokens): a typo or a truncated paste fails the checksum and is
refused without a database round trip, and secret scanners can recognise the format.
Only an HMAC of the whole key (keyed with SECRET_KEY) is stored.
"""

from __future__ import annotations

import secrets
import uuid
import zlib
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auth import tokens
from tenantry.auth.principal import Principal, Scope
from tenantry.config import Settings
from tenantry.db import set_tenant_context
from tenantry.errors import Forbidden, Unauthorized
from tenantry.models import Plan, TenantStatus

API_KEY_PREFIX = "tnt_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_RANDOM_LENGTH = 30  # ≈178 bits
_CHECKSUM_LENGTH = 6  # 62**6 > 2**32, so any CRC32 fits
KEY_LENGTH = len(API_KEY_PREFIX) + _RANDOM_LENGTH + _CHECKSUM_LENGTH
DISPLAY_PREFIX_LENGTH = 12  # `tnt_` + 8: enough to tell keys apart, useless to an attacker
# last_used_at is written at most this often per key, so using a key is not a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)

# The lookup arm of the api_keys policy reads app.api_key_hash; the tenant and user
# settings are cleared so no other arm can widen what this transaction sees.
_SET_LOOKUP = sa.text(
    "SELECT set_app_context('', '', p_api_key_hash => :key_hash,"
    " p_invitation_token_hash => '', p_maintenance => '')"
)
_FIND_KEY = sa.text(
    """
    SELECT k.id, k.tenant_id, k.scopes, k.expires_at, k.revoked_at, k.last_used_at,
           t.status, t.plan, t.deleted_at
    FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
    WHERE k.key_hash = :key_hash
    """
)
# Conditional, so two concurrent requests at the minute boundary write once or twice,
# never more, and a key used every second costs one write a minute.
_TOUCH = sa.text(
    "UPDATE api_keys SET last_used_at = now() WHERE id = :id"
    " AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => :resolution))"
)


def _base62(number: int, width: int) -> str:
    chars = []
    while number:
        number, rest = divmod(number, 62)
        chars.append(_ALPHABET[rest])
    return "".join(reversed(chars)).rjust(width, _ALPHABET[0])


def _checksum(random_part: str) -> str:
    return _base62(zlib.crc32(random_part.encode()), _CHECKSUM_LENGTH)


def generate_key() -> str:
    random_part = "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_LENGTH))
    return API_KEY_PREFIX + random_part + _checksum(random_part)


def is_well_formed(key: str) -> bool:
    """Shape and checksum only: cheap enough to run before any I/O."""
    if len(key) != KEY_LENGTH or not key.startswith(API_KEY_PREFIX):
        return False
    body = key[len(API_KEY_PREFIX) :]
    if any(char not in _ALPHABET for char in body):
        return False
    random_part, checksum = body[:_RANDOM_LENGTH], body[_RANDOM_LENGTH:]
    return secrets.compare_digest(_checksum(random_part), checksum)


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LENGTH]


def granted_scopes(stored: list[str]) -> frozenset[Scope]:
    """`write` implies `read`: a key that may change data may also see it."""
    scopes = {Scope(value) for value in stored if value in Scope.__members__.values()}
    if Scope.WRITE in scopes:
        scopes.add(Scope.READ)
    return frozenset(scopes)


async def resolve_api_key(
    session: AsyncSession, settings: Settings, key: str, request: Request
) -> Principal:
    """The principal of a live key in a live tenant; anything else is one uniform 401."""
    if not is_well_formed(key):
        raise Unauthorized("Invalid API key")
    key_hash = tokens.hash_secret(settings, key)
    await session.execute(_SET_LOOKUP, {"key_hash": key_hash})
    row = (await session.execute(_FIND_KEY, {"key_hash": key_hash})).first()
    now = datetime.now(UTC)
    if (
        row is None
        or row.revoked_at is not None
        or (row.expires_at is not None and row.expires_at <= now)
        or row.deleted_at is not None
    ):
        raise Unauthorized("Invalid API key")
    # From here on the session is the key's tenant's, like a user request's (every later
    # transaction too); setting the context also closes the lookup arm.
    await set_tenant_context(session, uuid.UUID(str(row.tenant_id)))
    if row.status == TenantStatus.SUSPENDED:
        raise Forbidden("This tenant is suspended")
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        await session.execute(
            _TOUCH, {"id": row.id, "resolution": LAST_USED_RESOLUTION.total_seconds()}
        )
    return Principal(
        user_id=None,
        tenant_id=uuid.UUID(str(row.tenant_id)),
        role=None,
        api_key_id=uuid.UUID(str(row.id)),
        scopes=granted_scopes(list(row.scopes or [])),
        plan=Plan(row.plan),
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )
