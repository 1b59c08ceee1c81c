"""Query strings parsed in one validation.

FastAPI extracts and validates every declared query parameter on its own, with type
introspection on each request; on the cached list reads that was about a tenth of a
request's CPU. A `QueryModel` is validated by one pydantic call over the query string,
answers the same 422 (`query.<name>` in `errors`) and documents its fields as the
operation's query parameters, as FastAPI would (`openapi()`, passed as the route's
`openapi_extra`). Unknown parameters are ignored; a repeated one counts its last value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError

if TYPE_CHECKING:
    from starlette.requests import Request


class QueryModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    @classmethod
    def parse(cls, request: Request) -> Self:
        try:
            return cls.model_validate(dict(request.query_params))
        except ValidationError as exc:
            # Here, not at the top: workers import these schemas and must not load FastAPI.
            from fastapi.exceptions import RequestValidationError

            raise RequestValidationError(
                [{**error, "loc": ("query", *error["loc"])} for error in exc.errors()]
            ) from None

    @classmethod
    def openapi(cls) -> dict[str, Any]:
        """The fields as OpenAPI query parameters, enum schemas inlined."""
        schema = cls.model_json_schema()
        definitions = schema.get("$defs", {})
        required = set(schema.get("required", []))
        parameters = []
        for name, field in schema["properties"].items():
            parameter: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": _inline(field, definitions),
            }
            if "description" in field:
                parameter["description"] = field["description"]
            parameters.append(parameter)
        return {"parameters": parameters}


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return {**_inline(definitions[ref.removeprefix("#/$defs/")], definitions), **rest}
        return {key: _inline(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    return node
