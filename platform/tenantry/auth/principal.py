"""Who is calling: a user's access token or a tenant's API key, resolved per request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from tenantry.errors import Forbidden
from tenantry.models import Plan, Role


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID | None
    tenant_id: uuid.UUID | None
    role: Role | None
    session_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    scopes: frozenset[Scope] = field(default_factory=frozenset)
    is_superuser: bool = False
    plan: Plan | None = None
    ip: str | None = None
    user_agent: str | None = None

    @property
    def is_api_key(self) -> bool:
        return self.api_key_id is not None

    def require_tenant(self) -> uuid.UUID:
        """The tenant id for tenant-scoped code; the auth alias guarantees it is set."""
        assert self.tenant_id is not None, "tenant-scoped call without a tenant"
        return self.tenant_id

    def can(self, scope: Scope) -> bool:
        if self.is_api_key:
            return scope in self.scopes
        if self.role is None:
            return False
        return scope is Scope.READ or self.role.at_least(Role.MEMBER)


def user_id_of(principal: Principal) -> uuid.UUID:
    """The calling user; 403 for an API key, which acts for the tenant, not a person."""
    if principal.user_id is None:
        raise Forbidden("This endpoint needs a user, not an API key")
    return principal.user_id
