"""Typed errors that carry their HTTP status, and their problem+json body (RFC 9457).

Services raise `AppError` subclasses; nothing outside endpoints raises HTTPException.
Every path, including validation errors and crashes, answers problem+json without a
trace or SQL: `tenantry.error_handlers` installs the handlers in the app. Workers raise
and catch these errors too, so this module stays free of FastAPI.
"""

from __future__ import annotations

import logging
import time
from http import HTTPStatus
from typing import Any, ClassVar

import asyncpg
import sqlalchemy.exc
from redis import exceptions as redis_exc
from starlette.responses import JSONResponse

logger = logging.getLogger("tenantry.errors")

PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "https://tenantry.dev/problems/"


class AppError(Exception):
    status: ClassVar[int] = 400
    title: ClassVar[str | None] = None
    code: ClassVar[str] = "bad-request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
        keep_changes: bool = False,
    ):
        self.detail = detail or self.default_detail()
        self.headers = headers or {}
        self.extra = extra or {}
        # True when the refusal itself must be recorded (e.g. a replayed refresh token
        # revokes its session): the unit of work commits before answering the error.
        self.keep_changes = keep_changes
        super().__init__(self.detail)

    def default_detail(self) -> str:
        return self.title or HTTPStatus(self.status).phrase


class BadRequest(AppError):
    status = 400
    code = "bad-request"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str = "Missing or invalid credentials", **kwargs: Any):
        super().__init__(detail, **kwargs)
        self.headers.setdefault("WWW-Authenticate", "Bearer")


class Forbidden(AppError):
    status = 403
    code = "forbidden"


class NotFound(AppError):
    status = 404
    code = "not-found"


class Conflict(AppError):
    status = 409
    code = "conflict"


class Gone(AppError):
    status = 410
    code = "gone"


class PreconditionFailed(AppError):
    """`If-Match` names no current version of the object: nothing was changed."""

    status = 412
    code = "precondition-failed"
    title = "Precondition failed"


class Unprocessable(AppError):
    """A 422 raised by a service; `field` names the offending input like validation does."""

    status = 422
    code = "validation-error"
    title = "Validation failed"  # the same title as a request that fails validation

    def __init__(self, detail: str, *, field: str | None = None, **kwargs: Any):
        super().__init__(detail, **kwargs)
        # The contract promises an `errors` list on every 422; without a field it names
        # the body as a whole.
        self.extra.setdefault("errors", [{"field": field or "body", "message": detail}])


class TooManyRequests(AppError):
    status = 429
    code = "rate-limited"


class ServiceUnavailable(AppError):
    status = 503
    code = "unavailable"

    def __init__(self, detail: str = "A dependency is unavailable; try again shortly", **kw: Any):
        super().__init__(detail, **kw)
        self.headers.setdefault("Retry-After", "5")


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    phrase = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": _TYPE_BASE + (code or phrase.lower().replace(" ", "-").replace("'", "")),
        "title": title or phrase,
        "status": status,
        "detail": detail,
    }
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


_UNAVAILABLE_SQLSTATES = {
    "57014",  # query_canceled (statement_timeout)
    "55P03",  # lock_not_available (lock_timeout)
    "57P01",  # admin_shutdown
    "57P03",  # cannot_connect_now
    "53300",  # too_many_connections
    "08000",
    "08003",
    "08006",
    "08001",
    "08004",
}


def _causes(exc: BaseException) -> list[BaseException]:
    """The error, the driver error SQLAlchemy wraps (`orig`) and their explicit causes."""
    chain: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(chain) < 8:
        current = todo.pop()
        if current is None or any(current is seen for seen in chain):
            continue
        chain.append(current)
        todo.append(getattr(current, "orig", None))
        todo.append(current.__cause__)
    return chain


def is_unavailable(exc: BaseException) -> bool:
    """True when the error means a dependency is down, refusing or too slow, not a bug.

    One mapping for every layer an error can surface from: SQLAlchemy's `DBAPIError`,
    the asyncpg adapter's own error classes (raised unwrapped by a raw pooled
    connection, as `Database.fetch_one` uses), asyncpg itself, Redis and the socket.
    A server refusing new connections (`57P03` starting up or shutting down, `53300`
    too many connections) is as unavailable as one that does not answer.
    """
    for error in _causes(exc):
        if isinstance(error, redis_exc.ConnectionError | redis_exc.TimeoutError):
            return True
        if isinstance(
            error, sqlalchemy.exc.TimeoutError | ConnectionError | TimeoutError | OSError
        ):
            return True
        if isinstance(error, asyncpg.InterfaceError | asyncpg.PostgresConnectionError):
            return True
        if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
            return True
        sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if isinstance(sqlstate, str) and (
            sqlstate in _UNAVAILABLE_SQLSTATES or sqlstate.startswith("08")
        ):
            return True
    return False


class _Throttled:
    """One log line per `interval` with a count, not one per request, while a
    dependency is down (a Redis or PostgreSQL outage answers every request 503)."""

    def __init__(self, interval: float = 30.0) -> None:
        self.interval = interval
        self._last = float("-inf")
        self._count = 0

    def warn(self, message: str, reason: str) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        logger.warning("%s: %s; %d response(s) since last notice", message, reason, self._count)
        self._last = now
        self._count = 0


_unavailable_log = _Throttled()


def crash_response(exc: Exception) -> JSONResponse:
    """The answer to an exception nothing else handled: 503 when a dependency is down or
    too slow (the client should retry), else a 500 that says nothing about the cause."""
    if is_unavailable(exc):
        _unavailable_log.warn("dependency unavailable, answered 503", type(exc).__name__)
        return problem(
            503,
            "A dependency is unavailable; try again shortly",
            code="unavailable",
            headers={"Retry-After": "5"},
        )
    logger.exception("unhandled error")
    return problem(500, "An unexpected error occurred", code="internal-error")
