"""Schema building blocks shared by the domains."""

from __future__ import annotations

from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError


class Schema(BaseModel):
    """Reads from ORM objects and rows; unknown input fields are rejected, not ignored,
    so a client that sends `is_superuser` or `tenant_id` learns it has no effect."""

    model_config = ConfigDict(from_attributes=True, extra="forbid")


class ReadSchema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def not_null(schema: dict[str, Any]) -> None:
    """`json_schema_extra` for an optional field that may be left out but not sent as
    null (the model refuses null): the document then says exactly that."""
    branches = schema.pop("anyOf", None)
    if branches is not None:
        kept = [branch for branch in branches if branch.get("type") != "null"]
        if len(kept) == 1:
            schema.update(kept[0])
        else:
            schema["anyOf"] = kept
    if schema.get("default", 0) is None:
        del schema["default"]


def NotNull(default: Any = None) -> Any:  # noqa: N802  (used like pydantic's Field)
    """A field that may be omitted, never null: `name: Name | None = NotNull()`."""
    return Field(default, json_schema_extra=not_null)


def trimmed(max_length: int) -> WithJsonSchema:
    """The document's view of a `strip_whitespace` string of 1..max_length characters:
    blank is refused, so the schema asks for a character that is not a space."""
    return WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": r"\S"}
    )


def check_email(value: str) -> str:
    """An address judged by its syntax, normalised as email-validator does (the domain
    in lower case, an IDNA domain in Unicode).

    pydantic's `EmailStr` refused every special-use domain, `.test` among them, the one
    that documentation, test suites and fuzzers use for addresses (schemathesis draws
    one domain in eight from it): a client reading `format: email` in the document sent
    `ada@example.test` and got a 422 the document did not announce. Mail to such an
    address fails in the outbox like any other undeliverable one.
    """
    try:
        # `test_environment` admits `.test` (and checks no DNS); the other special-use
        # names (`.localhost`, `.invalid`, …) stay refused, as the document can say no
        # more than `format: email` either way.
        checked = validate_email(value.strip(), check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        raise PydanticCustomError(
            "value_error", "value is not a valid email address: {reason}", {"reason": str(exc)}
        ) from None
    return checked.normalized


Email = Annotated[str, AfterValidator(check_email), Field(json_schema_extra={"format": "email"})]
