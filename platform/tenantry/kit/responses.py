"""Responses built from already-serialised bodies: cached reads, ETags and 304s.

Hot reads serialise once (or not at all, on a cache hit), so they answer with bytes
instead of handing a model to FastAPI's `response_model` machinery again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from tenantry.kit.pagination import RowPage

JSON = "application/json"


def entity_responses(
    status: int = 200, *, conditional_get: bool = False
) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route answering with `entity()`: the ETag, and for a GET the
    304 it gives when `If-None-Match` holds the current tag."""
    etag = {
        "description": "The object's version: send it back in If-None-Match or If-Match",
        "required": True,
        "schema": {"type": "string"},
    }
    responses: dict[int | str, dict[str, Any]] = {status: {"headers": {"ETag": etag}}}
    if conditional_get:
        responses[304] = {
            "description": "Not modified: `If-None-Match` holds the current ETag (no body)",
            "headers": {"ETag": etag},
        }
    return responses


def etag_for(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@dataclass(frozen=True)
class Cached:
    """A serialised representation and its ETag."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes) -> Cached:
        return cls(body, etag_for(body))

    def pack(self) -> bytes:
        return self.etag.encode() + b"\n" + self.body

    @classmethod
    def unpack(cls, raw: bytes) -> Cached:
        etag, _, body = raw.partition(b"\n")
        return cls(body, etag.decode())


def serialise(value: BaseModel | RowPage) -> Cached:
    return Cached.of(body_of(value))


def body_of(value: BaseModel | RowPage) -> bytes:
    return value.json() if isinstance(value, RowPage) else value.model_dump_json().encode()


def _matches(if_none_match: str, etag: str) -> bool:
    # RFC 9110 §13.1.2: weak comparison, a list of tags, or "*".
    if if_none_match.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))


def json_bytes(body: bytes, *, status_code: int = 200) -> Response:
    return Response(body, status_code=status_code, media_type=JSON)


def entity(
    request: Request,
    value: Cached,
    *,
    status_code: int = 200,
    location: str | None = None,
) -> Response:
    """One object with its ETag; 304 (no body) when the client already has it."""
    headers = {"ETag": value.etag}
    if status_code == 200 and request.method in ("GET", "HEAD"):
        condition = request.headers.get("if-none-match")
        if condition and _matches(condition, value.etag):
            return Response(status_code=304, headers=headers)
    if location:
        headers["Location"] = location
    return Response(value.body, status_code=status_code, media_type=JSON, headers=headers)
