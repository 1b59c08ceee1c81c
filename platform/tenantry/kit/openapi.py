"""The OpenAPI document, completed from the code that answers the requests.

FastAPI documents what it validates itself (a 422 in its own shape, as JSON) and nothing
else. Clients generated from that document crash on our errors, so `complete()` rewrites
every operation from what the route is made of, with no table of statuses per route:

- each dependency may say which statuses it answers (`@declares(...)`, or an
  `openapi_statuses` attribute as `Authorize` has) and which security schemes it reads
  (`openapi_security`): the auth aliases give 401/403/429 and the schemes, the rate
  limits 429/503, the unit of work 503 (the database may be down), `If-Match` 412;
- a path parameter can name nothing: 404; parameters and bodies can be invalid: 422;
  a body can be too large: 413;
- a route adds what its service raises with `responses=raises(SomeConflict, …)`.

Every error is `application/problem+json` with the `Problem` schema (`ValidationProblem`
for 422, with its `errors`), the headers the server sends are listed, and names are
chosen for generated code: `list_tasks`, not `tasks-list`; `TaskPage`, not
`Page_TaskRead_`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from tenantry.kit.http import IDEMPOTENCY_KEY_PATTERN

PROBLEM_JSON = "application/problem+json"
BEARER = "bearer"
API_KEY = "apiKey"
SECURITY_SCHEMES: dict[str, Any] = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT access token, or an API key (tnt_…)",
        "description": "`Authorization: Bearer <access token or tnt_… API key>`",
    },
    API_KEY: {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "A tenant API key (`tnt_…`), instead of the Authorization header",
    },
}

_DESCRIPTIONS = {
    400: "The request cannot be used as sent (e.g. an invalid or expired token)",
    401: "Missing, invalid or expired credentials",
    403: "Authenticated, but not allowed to do this",
    404: "No such object in this tenant (another tenant's answers the same)",
    409: "Conflicts with the current state",
    410: "No longer available",
    412: "`If-Match` names no current version of the object; nothing changed",
    413: "The request body is over the size limit",
    422: "The request is invalid; `errors` names each field",
    429: "Rate limit exceeded; retry after `Retry-After` seconds",
    503: "A dependency is unavailable; retry after `Retry-After` seconds",
}
_RATE_HEADERS = {
    "X-RateLimit-Limit": "Requests allowed in the current window",
    "X-RateLimit-Remaining": "Requests left in the current window",
    "X-RateLimit-Reset": "Unix time (seconds) when the window resets",
}

T = TypeVar("T")


class FieldError(BaseModel):
    field: str = Field(description="Where: `body.email`, `query.limit`, `path.id`…")
    message: str


class Problem(BaseModel):
    """An error, as RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description="A URI naming the kind of problem")
    title: str
    status: int
    detail: str


class ValidationProblem(Problem):
    """A 422: the problem details and one entry per invalid field."""

    model_config = ConfigDict(title="ValidationProblem")

    errors: list[FieldError]


def declares(*statuses: int) -> Callable[[T], T]:
    """Mark a dependency with the error statuses it can answer."""

    def mark(call: T) -> T:
        call.openapi_statuses = statuses  # type: ignore[attr-defined]
        return call

    return mark


def raises(*errors: type[Exception]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route whose service raises these `AppError`s."""
    responses: dict[int | str, dict[str, Any]] = {}
    for error in errors:
        status: int = getattr(error, "status", 500)
        responses[status] = {"description": _DESCRIPTIONS.get(status, HTTPStatus(status).phrase)}
    return responses


def documented_body(annotation: Any) -> dict[str, Any]:
    """`openapi_extra=` for a route whose body the document should show as `annotation`
    (e.g. a union by `kind`) while the handler validates it with a simpler model."""
    schema = TypeAdapter(annotation).json_schema(
        ref_template="#/components/schemas/{model}", by_alias=True
    )
    definitions = schema.pop("$defs", {})
    return {
        "x-request-body": {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        },
        "x-components": definitions,
    }


# --- names for generated code -----------------------------------------------------------

# Handlers named for a verb on their resource get the resource (from the tag) added;
# other names (`login`, `get_me`, `request_password_reset`) are used as they are.
_VERBS = {"create", "list", "get", "update", "delete", "revoke", "download", "accept"}


def operation_id(route: Any) -> str:
    """`list_tasks`, `get_task`, `create_api_key`: openapi-python-client makes these
    `api.tasks.list_tasks`, …, and other generators read as well."""
    name: str = route.name
    if name not in _VERBS or not route.tags:
        return name
    resource = str(route.tags[0]).replace("-", "_")
    if name != "list":
        resource = resource.removesuffix("s")
    return f"{name}_{resource}"


def _schema_name(name: str) -> str:
    """`Page_TaskRead_` → `TaskPage`."""
    page = re.fullmatch(r"Page_(\w+?)(?:Read)?_", name)
    if page:
        return f"{page.group(1)}Page"
    return name


def _enum_varnames(values: list[Any]) -> list[str] | None:
    """Member names for an enum whose values are not identifiers (`-created_at` →
    `CREATED_AT_DESC`), so generators do not fall back to `VALUE_1`…"""
    if not all(isinstance(v, str) for v in values) or all(v.isidentifier() for v in values):
        return None
    names = []
    for value in values:
        base = re.sub(r"\W+", "_", value.lstrip("-")).strip("_").upper() or "EMPTY"
        names.append(f"{base}_DESC" if value.startswith("-") else base)
    return names if len(set(names)) == len(names) else None


# --- deriving statuses from the route ---------------------------------------------------


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def derived_statuses(route: Any) -> tuple[set[int], list[dict[str, list[str]]]]:
    """The error statuses and security requirements the route's parts can answer."""
    statuses: set[int] = set()
    security: list[dict[str, list[str]]] = []
    for dependant in _dependants(route.dependant):
        call = dependant.call
        statuses.update(getattr(call, "openapi_statuses", ()))
        for requirement in getattr(call, "openapi_security", ()):
            if requirement not in security:
                security.append(requirement)
        if dependant.path_params:
            statuses.update((404, 422))
        if dependant.query_params:
            statuses.add(422)
        if dependant.body_params:
            statuses.update((413, 422))
    return statuses, security


# --- the document -----------------------------------------------------------------------


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _header(description: str, *, required: bool = False, **schema: Any) -> dict[str, Any]:
    return {
        "description": description,
        "required": required,
        "schema": schema or {"type": "string"},
    }


def _problem_response(status: int, existing: dict[str, Any]) -> dict[str, Any]:
    schema = _ref("ValidationProblem" if status == 422 else "Problem")
    response: dict[str, Any] = {
        "description": existing.get("description") or _DESCRIPTIONS.get(status, "Error"),
        "content": {PROBLEM_JSON: {"schema": schema}},
    }
    headers = dict(existing.get("headers", {}))
    if status == 401:
        headers["WWW-Authenticate"] = _header("`Bearer`", required=True)
    if status in (429, 503):
        headers["Retry-After"] = _header(
            "Seconds to wait before retrying", required=True, type="integer", minimum=1
        )
    if headers:
        response["headers"] = headers
    return response


def _complete_operation(
    route: Any, method: str, operation: dict[str, Any], rate_limited: set[int]
) -> None:
    body = operation.pop("x-request-body", None)
    if body is not None:
        operation["requestBody"] = body
    statuses, security = derived_statuses(route)
    if method == "POST":
        statuses.update((400, 409, 422))  # the Idempotency-Key middleware wraps every POST
    if any(p.get("in") in ("query", "path") for p in operation.get("parameters", [])):
        statuses.add(422)  # parameters a handler parses itself (`QueryModel`) count too
    responses: dict[str, Any] = operation.setdefault("responses", {})
    # FastAPI's own 422 (`HTTPValidationError`, application/json) is never what we send.
    responses.pop("422", None)
    declared = {int(code) for code in responses if code.isdigit() and int(code) >= 400}
    for status in sorted(statuses | declared):
        responses[str(status)] = _problem_response(status, responses.get(str(status), {}))
    if security:
        operation["security"] = security
    limited = bool(statuses & rate_limited)
    for code, response in responses.items():
        status = int(code)
        headers: dict[str, Any] = response.setdefault("headers", {})
        if status == 201:
            headers.setdefault("Location", _header("Where the new object lives", required=True))
        if method == "POST" and status < 300:
            headers.setdefault(
                "Idempotent-Replayed",
                _header("`true` when an `Idempotency-Key` replayed the first answer"),
            )
        if limited:
            for name, description in _RATE_HEADERS.items():
                headers.setdefault(name, _header(description, type="integer"))
        if not headers:
            response.pop("headers")
        if status in (204, 304):
            response.pop("content", None)
    if method == "POST":
        parameters = operation.setdefault("parameters", [])
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Retry safely: the same key and body within 24 h replays "
                "the first answer and creates nothing (another body: 422; while the "
                "first is still running: 409); a malformed key is 400",
                "schema": {
                    "type": "string",
                    "maxLength": 255,
                    "pattern": f"^{IDEMPOTENCY_KEY_PATTERN}$",
                },
            }
        )


def _rename_schemas(doc: dict[str, Any]) -> None:
    schemas: dict[str, Any] = doc["components"]["schemas"]
    renames = {old: _schema_name(old) for old in schemas if _schema_name(old) != old}
    for old, new in renames.items():
        schema = schemas.pop(old)
        schema["title"] = new
        schemas[new] = schema

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.removeprefix("#/components/schemas/")
                if name in renames:
                    node["$ref"] = "#/components/schemas/" + renames[name]
            pattern = node.get("pattern")
            if isinstance(pattern, str) and pattern.endswith("$") and not pattern.endswith("\\$"):
                # Our validators (pydantic's regex, Python's fullmatch) take `$` as the end
                # of the text; Python's `re.search` (jsonschema, schemathesis) also lets it
                # match before a final newline. `(?!\n)` makes both read it alike.
                node["pattern"] = pattern + "(?!\\n)"
            if isinstance(node.get("enum"), list) and "x-enum-varnames" not in node:
                varnames = _enum_varnames(node["enum"])
                if varnames:
                    node["x-enum-varnames"] = varnames
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(doc)
    doc["components"]["schemas"] = dict(sorted(schemas.items()))


def _drop_unused(doc: dict[str, Any]) -> None:
    """Schemas nothing refers to (a model a documented body replaced) would only become
    dead classes in generated code."""
    schemas: dict[str, Any] = doc["components"]["schemas"]
    used: set[str] = set()
    pending: list[Any] = [doc["paths"]]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.removeprefix("#/components/schemas/")
                if name not in used and name in schemas:
                    used.add(name)
                    pending.append(schemas[name])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    for name in set(schemas) - used:
        del schemas[name]


def api_routes(routes: list[Any]) -> Iterator[Any]:
    """Every API route as served, included routers unfolded (their prefixes and
    router-level dependencies applied)."""
    for context in iter_route_contexts(routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def complete(doc: dict[str, Any], routes: list[Any], *, rate_limited: set[int]) -> None:
    """Rewrite FastAPI's document in place (see the module docstring)."""
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for model in (FieldError, Problem, ValidationProblem):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schema.pop("$defs", None)
        schemas[model.__name__] = schema
    components["securitySchemes"] = SECURITY_SCHEMES
    for route in api_routes(routes):
        if not route.include_in_schema:
            continue
        for method in route.methods:
            operation = doc["paths"].get(route.path_format, {}).get(method.lower())
            if operation is not None:
                for name, schema in operation.pop("x-components", {}).items():
                    schemas.setdefault(name, schema)
                _complete_operation(route, method, operation, rate_limited)
    _rename_schemas(doc)
    _drop_unused(doc)


def install(app: FastAPI) -> None:
    """Serve the completed document at the app's `openapi_url`."""
    build = app.openapi
    completed: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        doc = build()
        if not completed or completed[0] is not doc:
            complete(doc, app.routes, rate_limited={429})
            completed[:] = [doc]
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
