"""The app's exception handlers: every error a request can raise answers problem+json.

Kept apart from `tenantry.errors` (the error types and their body), which services and
workers import, so that only the API loads FastAPI.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from tenantry.errors import AppError, crash_response, problem


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


async def _unhandled(request: Request, exc: Exception) -> Response:
    # A backstop for errors raised outside the HTTP shell middleware (which answers
    # everything inside it with crash_response, security headers included).
    return crash_response(exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unhandled)
