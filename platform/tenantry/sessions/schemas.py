"""Credentials in and out: the login form, token pairs, reset and verification bodies."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tenantry.auth.passwords import Password
from tenantry.kit.schemas import Email, Schema, not_null


class LoginForm(BaseModel):
    """The OAuth2 password form (RFC 6749 §4.3) plus an optional `tenant` slug or id.

    `grant_type`, `scope`, `client_id` and `client_secret` are accepted so stock OAuth2
    clients (and the docs' Authorize button) work; they change nothing.
    """

    username: str = Field(min_length=1, max_length=320, description="Username or email")
    password: str = Field(min_length=1, max_length=1024)
    # A form has no null: optional fields are left out (or sent empty), so the document
    # says "a string, if present".
    tenant: str | None = Field(
        None, max_length=100, description="Tenant slug or id", json_schema_extra=not_null
    )
    grant_type: str | None = Field(None, pattern="^password$", json_schema_extra=not_null)
    scope: str = Field("", max_length=200)
    client_id: str | None = Field(None, max_length=200, json_schema_extra=not_null)
    client_secret: str | None = Field(None, max_length=200, json_schema_extra=not_null)


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105  (the OAuth2 scheme name)
    expires_in: int
    refresh_token: str


class RefreshRequest(Schema):
    refresh_token: str = Field(min_length=1, max_length=512)


class SwitchTenantRequest(Schema):
    tenant: str = Field(min_length=1, max_length=100, description="Tenant slug or id")


class PasswordResetRequest(Schema):
    email: Email = Field(max_length=320)


class PasswordResetConfirm(Schema):
    token: str = Field(min_length=1, max_length=4096)
    new_password: Password


class VerifyEmailRequest(Schema):
    token: str = Field(min_length=1, max_length=4096)


class Accepted(BaseModel):
    detail: str
