"""One guard for text PostgreSQL cannot store, in front of every route.

PostgreSQL `text` holds neither NUL (U+0000) nor, being UTF-8, a lone surrogate
(U+D800–U+DFFF, which JSON can spell as `\\ud800`). Either one reaching a query is a
driver error, a 500 and a log line per request, before any validation that could
name it. So this pure ASGI middleware refuses them up front, in one place, as a 422
naming the field the same way validation does (`query.q`, `body.title`,
`body.username`, `path`):

- query string and path: a percent-encoded NUL (`%00`);
- `application/x-www-form-urlencoded` bodies (login): a NUL in any field;
- multipart bodies: a NUL byte anywhere (no route takes a file);
- JSON bodies: a NUL or a lone surrogate in any string, key or value.

Search terms are refused like every other string, not stripped: one rule everywhere.

The common case costs a byte search: a JSON body is parsed here only when it holds a
`\\u` escape at all, and a form body only when it holds `%00`.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantry.errors import problem

_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
MESSAGE = "must not contain NUL or unpaired surrogate characters"


def _bad(text: str) -> bool:
    return _BAD_CHAR.search(text) is not None


def _in_pairs(pairs: list[tuple[str, str]], prefix: str) -> str | None:
    for name, value in pairs:
        if _bad(name) or _bad(value):
            return f"{prefix}.{name}" if not _bad(name) else prefix
    return None


def _query_field(query_string: bytes) -> str | None:
    if b"%00" not in query_string and b"\x00" not in query_string:
        return None
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    return _in_pairs(pairs, "query") or "query"


def _json_field(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return path if _bad(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if _bad(key):
                return path
            found = _json_field(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _json_field(item, f"{path}.{index}")
            if found:
                return found
    return None


def body_field(content_type: str, body: bytes) -> str | None:
    """The field of `body` holding a character PostgreSQL cannot store, if any."""
    if not body:
        return None
    if content_type.startswith("application/x-www-form-urlencoded"):
        if b"%00" not in body and b"\x00" not in body:
            return None
        pairs = parse_qsl(body.decode("latin-1"), keep_blank_values=True)
        return _in_pairs(pairs, "body") or "body"
    if content_type.startswith("multipart/"):
        return "body" if b"\x00" in body else None
    if _SUSPECT_ESCAPE.search(body) is None:
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON after all: validation answers it
    return _json_field(document, "body")


def refusal(field: str) -> Any:
    return problem(
        422,
        f"{field}: {MESSAGE}",
        title="Validation failed",
        code="validation-error",
        errors=[{"field": field, "message": MESSAGE}],
    )


class InputGuardMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        field = _query_field(scope.get("query_string", b""))
        if field is None and "\x00" in unquote(scope.get("raw_path", b"").decode("latin-1")):
            field = "path"
        if field is not None:
            await _refuse(scope, send, field)
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        content_type = ""
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value.decode("latin-1").lower()
                break
        message = await receive()
        if message["type"] != "http.request":
            await self.app(scope, _replay([message], receive), send)
            return
        messages = [message]
        while message.get("more_body", False):
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                await self.app(scope, _replay(messages, receive), send)
                return
        body = b"".join(m.get("body", b"") for m in messages)
        field = body_field(content_type, body)
        if field is not None:
            await _refuse(scope, send, field)
            return
        await self.app(scope, _replay(messages, receive), send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


async def _refuse(scope: Scope, send: Send, field: str) -> None:
    async def no_body() -> Message:
        return {"type": "http.disconnect"}

    await refusal(field)(scope, no_body, send)
