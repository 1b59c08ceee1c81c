"""Keyset pagination with opaque cursors: stable under inserts, O(limit) at any depth."""

from __future__ import annotations

import base64
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel, Field

from tenantry.errors import Unprocessable
from tenantry.kit.query import QueryModel

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class PageParams(QueryModel):
    """`?limit=&cursor=`; list endpoints with filters extend it with their own fields."""

    limit: int = Field(20, ge=1, le=100, description="Page size, 1–100")
    cursor: str | None = Field(None, max_length=512, description="From next_cursor")


def encode_cursor(values: list[Any]) -> str:
    """Opaque to clients: the sort key of the last row served, base64url JSON."""
    raw = orjson.dumps(values, default=str)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, *, size: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError):
        raise Unprocessable("Invalid cursor", field="query.cursor") from None
    if not isinstance(values, list) or len(values) != size:
        raise Unprocessable("Invalid cursor", field="query.cursor")
    return values
