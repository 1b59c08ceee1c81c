"""Credentials in and out: the login form, token pairs, reset and verification bodies."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, EmailStr, Field, field_validator

from tenantry.auth.passwords import check_password
from tenantry.kit.schemas import Schema


class LoginForm(BaseModel):
    """The OAuth2 password form (RFC 6749 §4.3) plus an optional `tenant` slug or id.

    `grant_type`, `scope`, `client_id` and `client_secret` are accepted so stock OAuth2
    clients (and the docs' Authorize button) work; they change nothing.
    """

    username: str = Field(min_length=1, max_length=320, description="Username or email")
    password: str = Field(min_length=1, max_length=1024)
    tenant: str | None = Field(None, max_length=100, description="Tenant slug or id")
    grant_type: str | None = Field(None, pattern="^password$")
    scope: str = Field("", max_length=200)
    client_id: str | None = Field(None, max_length=200)
    client_secret: str | None = Field(None, max_length=200)


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
    email: EmailStr = Field(max_length=320)


class PasswordResetConfirm(Schema):
    token: str = Field(min_length=1, max_length=4096)
    new_password: str

    _new_password = field_validator("new_password")(check_password)


class VerifyEmailRequest(Schema):
    token: str = Field(min_length=1, max_length=4096)


class Accepted(BaseModel):
    detail: str
