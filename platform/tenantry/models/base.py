"""Table model building blocks: naming convention, ids, timestamps, tenant scoping."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

# Stable constraint names make Alembic autogenerate diffs and downgrades predictable.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = SQLModel.metadata

E = TypeVar("E", bound=StrEnum)


class StrEnumType(sa.types.TypeDecorator[E]):
    """A VARCHAR that loads back as its StrEnum, so `row.status is Status.X` holds and
    adding an enum member needs no migration (no native PostgreSQL enum)."""

    impl = sa.String
    cache_ok = True

    def __init__(self, enum: type[E], length: int = 20) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: E | str | None, dialect: sa.Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> E | None:
        return None if value is None else self.enum(value)


def utcnow() -> datetime:
    return datetime.now(UTC)


class IDModel(SQLModel):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)


class Timestamped(SQLModel):
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_type=sa.DateTime(timezone=True),
        sa_column_kwargs={"server_default": sa.func.now(), "nullable": False},
    )
    updated_at: datetime = Field(
        default_factory=utcnow,
        sa_type=sa.DateTime(timezone=True),
        sa_column_kwargs={"server_default": sa.func.now(), "onupdate": utcnow, "nullable": False},
    )


class TenantScoped(SQLModel):
    """Rows owned by one tenant; RLS in the database enforces the same boundary.

    `tenant_id` leads the primary key, (tenant_id, id), so the table can be distributed
    by tenant (Citus refuses keys without the distribution column), and the ORM's own
    UPDATE and DELETE statements carry `tenant_id = …`, which routes them to one shard.
    A row is fetched by `session.get(Model, {"tenant_id": …, "id": …})` or through a
    repository; `tenant_id` is never changed after insert (Citus refuses it).
    """

    tenant_id: uuid.UUID = Field(
        foreign_key="tenants.id", primary_key=True, index=True, ondelete="CASCADE"
    )


# Tables that carry no tenant_id on purpose. tests/test_rls.py checks that every other
# table has tenant_id with RLS enabled and forced, so a new table cannot slip through.
# On Citus they become reference tables (a copy on every node) and every table with
# tenant_id a distributed one (`tenantry.citus`).
GLOBAL_TABLES = frozenset({"tenants", "users", "auth_sessions", "email_outbox", "alembic_version"})
