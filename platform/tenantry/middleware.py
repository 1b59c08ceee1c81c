"""The HTTP shell as one pure ASGI middleware: request id, security headers, rate-limit
headers, body cap, and a last-resort problem+json for anything that escaped the exception handlers.

Pure ASGI (not BaseHTTPMiddleware) so streaming responses pass through untouched and
the per-request overhead stays a few function calls.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantry import ratelimit
from tenantry.context import request_id_var, tenant_id_var, user_id_var
from tenantry.errors import crash_response, is_unavailable, problem
from tenantry.observability.sentry import capture_exception

logger = logging.getLogger("tenantry.http")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class HttpShellMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = _request_id(scope)
        token = request_id_var.set(request_id)
        tenant_token = tenant_id_var.set(None)
        user_token = user_id_var.set(None)
        scope.setdefault("state", {})["request_id"] = request_id
        started = False
        refused = False  # we answered 413 ourselves; the app's own answer is dropped
        rid_header = (b"x-request-id", request_id.encode())

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append(rid_header)
                headers.extend(SECURITY_HEADERS)
                # Decided in a dependency, written here so errors (404, 429) carry them too.
                headers.extend(ratelimit.response_headers(scope))
                message["headers"] = headers
            await send(message)

        try:
            declared = _content_length(scope)
            if declared is not None and declared > self.max_body_bytes:
                await _send_problem(send_wrapper, _too_large(self.max_body_bytes))
                return
            received = 0

            async def capped_receive() -> Message:
                # Count what actually arrives, so chunked bodies are capped too. Past the
                # cap we answer 413 and tell the app the client left, so it stops reading.
                nonlocal received, refused
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body_bytes and not started:
                        await _send_problem(send_wrapper, _too_large(self.max_body_bytes))
                        refused = True
                        return {"type": "http.disconnect"}
                return message

            await self.app(scope, capped_receive, send_wrapper)
        except Exception as exc:
            if started or refused:
                if refused:
                    return
                raise
            if not is_unavailable(exc):
                # Reported here, while the request's tenant is still in context; the
                # log line crash_response writes is the same exception, which Sentry
                # deduplicates.
                capture_exception(exc)
            await crash_response(exc)(scope, receive, send_wrapper)
        finally:
            # Kept for the access log and metrics, which finish outside this middleware.
            scope["state"]["tenant_id"] = tenant_id_var.get()
            scope["state"]["user_id"] = user_id_var.get()
            request_id_var.reset(token)
            tenant_id_var.reset(tenant_token)
            user_id_var.reset(user_token)


def _request_id(scope: Scope) -> str:
    for key, value in scope.get("headers", []):
        if key == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _SAFE_REQUEST_ID.match(candidate):
                return candidate
            break
    return os.urandom(16).hex()  # a uuid4().hex's randomness without the UUID object


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large(limit: int) -> Any:
    return problem(413, f"Request body exceeds {limit} bytes", code="payload-too-large")


async def _send_problem(send: Send, response: Any) -> None:
    async def _no_receive() -> Message:
        return {"type": "http.disconnect"}

    await response({"type": "http"}, _no_receive, send)
