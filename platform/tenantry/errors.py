"""Typed errors that carry their HTTP status, and the problem+json handlers (RFC 9457).

Services raise `AppError` subclasses; nothing outside endpoints raises HTTPException.
Every path, including validation errors and crashes, answers problem+json without a
trace or SQL.
"""

from __future__ import annotations

import logging
import time
from http import HTTPStatus
from typing import Any, ClassVar

import asyncpg
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from redis import exceptions as redis_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

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


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def _app_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return problem(
        exc.status, exc.detail, title=exc.title, code=exc.code, headers=exc.headers, **exc.extra
    )


# FastAPI's words for a body it could not decode (bad JSON bytes, deep nesting).
_BODY_PARSE_ERROR = "There was an error parsing the body"


def allowed_methods(request: Request) -> list[str]:
    """Every method of every route serving this path (one route per method here, so
    Starlette's own `Allow` would name only the first one it tried)."""
    from fastapi.routing import iter_route_contexts

    path = request.scope.get("path", "")
    by_template: dict[str, set[str]] = {}
    for context in iter_route_contexts(request.app.routes):
        regex = getattr(context, "path_regex", None)
        if regex is not None and regex.match(path):
            template = str(getattr(context, "path_format", None) or path)
            methods_of = by_template.setdefault(template, set())
            methods_of.update(getattr(context, "methods", None) or ())
    if not by_template:
        return []
    # `/invitations/accept` is its own resource, not `/invitations/{id}` with id "accept".
    resource = min(by_template, key=lambda template: template.count("{"))
    methods = by_template[resource]
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers or {})
    if exc.status_code == 304:
        return Response(status_code=304, headers=headers)
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    if exc.status_code == 400 and detail == _BODY_PARSE_ERROR:
        # FastAPI's answer to a body json.loads cannot read (invalid UTF-8, nesting
        # deeper than the parser's recursion limit): malformed input, like any other
        # malformed body a 422 naming `body`.
        message = "Malformed body: not valid UTF-8 JSON, or nested too deeply"
        return problem(
            422,
            f"body: {message}",
            title="Validation failed",
            code="validation-error",
            errors=[{"field": "body", "message": message}],
        )
    return problem(exc.status_code, detail, headers=headers)


_MEDIA_NAMES = {
    "application/json": "JSON (Content-Type: application/json)",
    "application/x-www-form-urlencoded": (
        "a form (Content-Type: application/x-www-form-urlencoded)"
    ),
}


def _expected_media(request: Request) -> str | None:
    """What the route reads its body as, in words for an error message."""
    route = request.scope.get("route")
    body_field = getattr(route, "body_field", None)
    media_type = getattr(getattr(body_field, "field_info", None), "media_type", None)
    if not isinstance(media_type, str):
        return None
    return _MEDIA_NAMES.get(media_type, media_type)


def _wrong_media(request: Request) -> str | None:
    """A message when the body's Content-Type is not the one the route reads."""
    expected = _expected_media(request)
    if expected is None:
        return None
    route = request.scope.get("route")
    media_type = route.body_field.field_info.media_type  # type: ignore[union-attr]
    sent = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if (
        not sent
        or sent == media_type
        or (media_type == "application/json" and sent.endswith("+json"))
    ):
        return None
    return f"Expected {expected}, got {sent}"


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    wrong_media = _wrong_media(request)
    if wrong_media is not None and any(err.get("loc", ())[:1] == ("body",) for err in exc.errors()):
        # A JSON body sent to the login form (or a form to a JSON route) fails field by
        # field; the one thing to fix is the Content-Type.
        return problem(
            422,
            wrong_media,
            title="Validation failed",
            code="validation-error",
            errors=[{"field": "body", "message": wrong_media}],
        )
    errors = []
    for err in exc.errors():
        message = str(err.get("msg", "Invalid value"))
        # Pydantic prefixes custom validator messages; the rule itself reads better.
        message = message.removeprefix("Value error, ")
        loc = err.get("loc", ())
        if err.get("type") == "json_invalid":
            # Pydantic locates a JSON syntax error by character offset (`body.1`); the
            # field a client can act on is the body itself.
            loc = loc[:1]
        errors.append({"field": _field_path(loc), "message": message})
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]) or "Invalid request"
    return problem(422, detail, title="Validation failed", code="validation-error", errors=errors)


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


async def _unhandled(request: Request, exc: Exception) -> Response:
    # A backstop for errors raised outside the HTTP shell middleware (which answers
    # everything inside it with crash_response, security headers included).
    return crash_response(exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unhandled)
