from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

from tenantry.models.base import IDModel, Timestamped


class User(IDModel, Timestamped, table=True):
    """A person who signs in. Global: one user may belong to many tenants."""

    __tablename__ = "users"
    __table_args__ = (
        sa.Index("uq_users_email_lower", sa.text("lower(email)"), unique=True),
        sa.Index("uq_users_username_lower", sa.text("lower(username)"), unique=True),
    )

    email: str = Field(max_length=320)
    username: str = Field(max_length=50)
    full_name: str = Field(default="", max_length=200)
    password_hash: str = Field(max_length=255)
    is_active: bool = True
    is_superuser: bool = False
    email_verified_at: datetime | None = Field(
        default=None,
        sa_type=sa.DateTime(timezone=True),
    )
