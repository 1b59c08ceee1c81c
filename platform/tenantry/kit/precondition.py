"""A parsed `If-Match` and its check, as services receive it (`kit.conditions` reads
the header): without FastAPI, since workers import the services."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel

from tenantry.errors import AppError, PreconditionFailed
from tenantry.kit.responses import serialise

T = TypeVar("T")

# RFC 9110 §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE
_ENTITY_TAG = re.compile(r'(W/)?"[\x21\x23-\x7e\x80-\xff]*"')
# The header as the document describes it (ASCII tags; `*` or a comma-separated list).
_TAG = r'(?:W/)?"[\x21\x23-\x7e]*"'
IF_MATCH_PATTERN = rf"^\s*(?:\*|{_TAG}(?:\s*,\s*{_TAG})*)\s*$"


@dataclass(frozen=True, slots=True)
class Precondition:
    """A parsed `If-Match`: `tags` are the strong tags listed; `any` is `*`."""

    tags: tuple[str, ...] = ()
    any: bool = False

    def check(self, etag: str) -> None:
        """Raise 412 unless `etag` (the object's current one) satisfies the header.

        If-Match compares strongly (RFC 9110 §13.1.1): a weak tag never matches.
        """
        if self.any or etag in self.tags:
            return
        raise PreconditionFailed(
            "The object has changed since you read it (or the ETag is not its own); "
            "read it again and retry with its current ETag"
        )


def writable(
    row: T | None,
    missing: Callable[[], AppError],
    read: Callable[[T], BaseModel],
    precondition: Precondition | None,
) -> T:
    """The row a PATCH or DELETE is about to change: `missing()` (a 404) when there is
    none, 412 unless its ETag (of `read(row)`, the object as a GET serialises it)
    satisfies `precondition`. Lock the row first, so the check still holds at the write."""
    if row is None:
        raise missing()
    if precondition is not None:
        precondition.check(serialise(read(row)).etag)
    return row


def parse_if_match(value: str) -> Precondition:
    value = value.strip()
    if value == "*":
        return Precondition(any=True)
    tags = [part.strip() for part in value.split(",")]
    if not tags or not all(_ENTITY_TAG.fullmatch(tag) for tag in tags):
        raise PreconditionFailed('If-Match must be "*" or a list of quoted ETags, e.g. "abc"')
    return Precondition(tags=tuple(tag for tag in tags if not tag.startswith("W/")))
