"""Arbitrary text in every string field and query parameter: 2xx or 4xx, never a 5xx.

The targets come from the app's own OpenAPI document, so a route added tomorrow is
covered without touching this file: every path and query parameter, and every string
property of every JSON or form body, gets text drawn from all of Unicode, control
characters and lone surrogates included (sent as a JSON `\\udXXX` escape, or as the
invalid UTF-8 a client could percent-encode). The other required fields get plausible
values, so the hostile one reaches as deep as validation lets it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.factories import Actor

pytestmark = pytest.mark.faults

# Everything Unicode has, surrogates (category Cs) and controls (Cc) included.
HOSTILE = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=40),
    st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfff", "\x1b[31m", "\u202e", "%00"]),
)
# Calls that would end the actor's session or tenant for the examples after them.
SKIP = {("POST", "/api/v1/auth/logout"), ("DELETE", "/api/v1/tenant")}


@dataclass(frozen=True)
class Target:
    method: str
    path: str
    where: str  # "path", "query", "json", "form"
    name: str


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _is_string(doc: dict[str, Any], schema: dict[str, Any]) -> bool:
    schema = _resolve(doc, schema)
    if schema.get("type") == "string":
        return True
    return any(_is_string(doc, s) for s in schema.get("anyOf", []))


def _plausible(doc: dict[str, Any], schema: dict[str, Any]) -> Any:
    schema = _resolve(doc, schema)
    for option in schema.get("anyOf", []):
        if _resolve(doc, option).get("type") != "null":
            return _plausible(doc, option)
    if "enum" in schema:
        return schema["enum"][0]
    kind, fmt = schema.get("type"), schema.get("format")
    if kind == "string":
        if fmt == "uuid":
            return str(uuid.uuid4())
        if fmt == "email":
            return "someone@example.com"
        if fmt == "date":
            return "2026-01-01"
        if fmt == "date-time":
            return "2026-01-01T00:00:00Z"
        return "Valid-name1#"[: max(schema.get("minLength", 1), 1) + 11]
    if kind == "integer":
        return max(schema.get("minimum", 1), 1)
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    if kind == "object":
        required = schema.get("required", [])
        props = schema.get("properties", {})
        return {name: _plausible(doc, props[name]) for name in required if name in props}
    return "x"


def _body(doc: dict[str, Any], operation: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    content = operation.get("requestBody", {}).get("content", {})
    for media, where in (
        ("application/json", "json"),
        ("application/x-www-form-urlencoded", "form"),
    ):
        if media in content:
            return where, _resolve(doc, content[media]["schema"])
    return None


def targets(app: FastAPI) -> list[Target]:
    doc = app.openapi()
    found = []
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if (method.upper(), path) in SKIP:
                continue
            for param in operation.get("parameters", []):
                if param["in"] in ("path", "query") and _is_string(doc, param.get("schema", {})):
                    found.append(Target(method.upper(), path, param["in"], param["name"]))
            body = _body(doc, operation)
            if body is not None:
                where, schema = body
                for name, prop in schema.get("properties", {}).items():
                    if _is_string(doc, prop):
                        found.append(Target(method.upper(), path, where, name))
    return found


def _request(doc: dict[str, Any], target: Target, text: str) -> dict[str, Any]:
    """The request for `target` with `text` in its field and plausible values elsewhere."""
    operation = doc["paths"][target.path][target.method.lower()]
    raw = text.encode("utf-8", "surrogatepass")
    path = target.path
    query: list[str] = []
    for param in operation.get("parameters", []):
        if param["in"] == "path":
            value = (
                raw
                if param["name"] == target.name and target.where == "path"
                else str(_plausible(doc, param.get("schema", {}))).encode()
            )
            path = path.replace("{" + param["name"] + "}", quote(value, safe=""))
        elif param["in"] == "query" and param["name"] == target.name:
            query.append(f"{quote(param['name'])}={quote(raw, safe='')}")
    url = path + ("?" + "&".join(query) if query else "")
    request: dict[str, Any] = {"method": target.method, "url": url}
    body = _body(doc, operation)
    if body is not None:
        where, schema = body
        values = _plausible(doc, schema)
        if target.where in ("json", "form"):
            values[target.name] = text
        if where == "json":
            # ensure_ascii writes a lone surrogate as its \\udXXX escape, as a client could.
            request["content"] = json.dumps(values).encode()
            request["headers"] = {"content-type": "application/json"}
        else:
            pairs = [
                f"{quote(str(k))}={quote(str(v).encode('utf-8', 'surrogatepass'), safe='')}"
                for k, v in values.items()
            ]
            request["content"] = "&".join(pairs).encode()
            request["headers"] = {"content-type": "application/x-www-form-urlencoded"}
    return request


def test_every_string_input_is_covered(app: FastAPI) -> None:
    """The walk finds the inputs the issue named, so the property below sees them."""
    found = {(t.method, t.path, t.where, t.name) for t in targets(app)}
    for expected in [
        ("POST", "/api/v1/auth/login", "form", "username"),
        ("POST", "/api/v1/auth/login", "form", "tenant"),
        ("GET", "/api/v1/projects", "query", "q"),
        ("POST", "/api/v1/projects", "json", "name"),
        ("POST", "/api/v1/users/", "json", "full_name"),
        ("POST", "/api/v1/auth/switch-tenant", "json", "tenant"),
        ("POST", "/api/v1/api-keys", "json", "name"),
    ]:
        assert expected in found, expected
    assert len(found) >= 40


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(data=st.data())
async def test_no_input_is_a_5xx(
    data: st.DataObject, app: FastAPI, client: httpx.AsyncClient, owner: Actor
) -> None:
    doc = app.openapi()
    target = data.draw(st.sampled_from(targets(app)), label="target")
    text = data.draw(HOSTILE, label="text")
    request = _request(doc, target, text)
    request["headers"] = {**request.get("headers", {}), **owner.headers}
    response = await client.request(**request)
    assert response.status_code < 500, (target, text, response.status_code, response.text)
