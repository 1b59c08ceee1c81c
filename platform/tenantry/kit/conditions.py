"""`If-Match`: optimistic concurrency for the PATCH and DELETE of an object with an ETag.

Without the header a write goes through (last writer wins, as before). With it, the
write happens only if the object's current ETag is one of those listed (or, for `*`,
if the object exists); otherwise 412 and nothing changes. The service checks the tag on
the row it has locked (`SELECT … FOR UPDATE`) in the transaction that writes it, so two
writers holding the same tag cannot both win: the second sees the first one's version.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header

from tenantry.kit.openapi import declares
from tenantry.kit.precondition import IF_MATCH_PATTERN, Precondition, parse_if_match
from tenantry.kit.schemas import not_null


def _if_match_schema(schema: dict[str, Any]) -> None:
    # A header is a string or absent, never null: without this the document said
    # `anyOf: [string, null]`, and a client generated from it (or a fuzzer) sent the
    # text `null`, which is a malformed tag (412).
    not_null(schema)
    # Documented, not enforced by validation: a malformed tag is a failed
    # precondition (412), not a 422.
    schema["pattern"] = IF_MATCH_PATTERN


@declares(412)
async def if_match(
    value: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description="Write only if the object's current ETag is one of these (or `*`: "
            "if it exists); otherwise 412 and nothing changes. Malformed: 412 too.",
            json_schema_extra=_if_match_schema,
        ),
    ] = None,
) -> Precondition | None:
    return None if value is None else parse_if_match(value)


IfMatch = Annotated[Precondition | None, Depends(if_match)]
