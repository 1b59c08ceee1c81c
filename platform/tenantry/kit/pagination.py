"""What a list takes and answers; `kit.keyset` pages through the rows."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

from tenantry.kit.query import QueryModel

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class PageParams(QueryModel):
    """`?limit=&cursor=`; list endpoints with filters extend it with their own fields."""

    limit: int = Field(20, ge=1, le=100, description="Page size, 1–100")
    cursor: str | None = Field(
        None,
        max_length=512,
        pattern=r"^[A-Za-z0-9_-]*$",
        description="Opaque: a `next_cursor` this list returned (another is 422)",
    )
