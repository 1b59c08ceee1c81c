from __future__ import annotations

import uuid
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field

from tenantry.models.base import IDModel, StrEnumType, TenantScoped, Timestamped


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


_RANK = {Role.VIEWER: 1, Role.MEMBER: 2, Role.ADMIN: 3, Role.OWNER: 4}


class Membership(IDModel, TenantScoped, Timestamped, table=True):
    """A user's role in one tenant. RLS also lets a user read their own rows."""

    __tablename__ = "memberships"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "user_id"),)

    user_id: uuid.UUID = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    role: Role = Field(sa_type=StrEnumType(Role))
