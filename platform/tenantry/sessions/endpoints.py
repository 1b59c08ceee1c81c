"""Credentials: login, refresh, logout, switch-tenant, password reset, email verification.

Rate limits (login, password reset) attach as route dependencies; handlers stay as is.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, status

from tenantry.deps import SessionDep, SettingsDep, UnitOfWorkRoute
from tenantry.errors import BadRequest, NotFound, Unauthorized
from tenantry.kit.clients import client_ip
from tenantry.kit.openapi import raises
from tenantry.ratelimit import LoginRateLimit, PasswordResetRateLimit
from tenantry.sessions.auth import SignedIn, no_store
from tenantry.sessions.schemas import (
    Accepted,
    LoginForm,
    PasswordResetConfirm,
    PasswordResetRequest,
    RefreshRequest,
    SwitchTenantRequest,
    TokenPair,
    VerifyEmailRequest,
)
from tenantry.sessions.service import auth as auth_service

router = APIRouter(
    prefix="/auth", tags=["auth"], dependencies=[Depends(no_store)], route_class=UnitOfWorkRoute
)


@router.post(
    "/login",
    response_model=TokenPair,
    dependencies=[LoginRateLimit],
    responses=raises(Unauthorized),
)
async def login(
    form: Annotated[LoginForm, Form()],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> TokenPair:
    """Sign in with a username or email and password (OAuth2 password form)."""
    return await auth_service.login(
        session,
        settings,
        form,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
    )


@router.post("/refresh", response_model=TokenPair, responses=raises(Unauthorized))
async def refresh(data: RefreshRequest, session: SessionDep, settings: SettingsDep) -> TokenPair:
    """Trade a refresh token for a new pair (the old refresh token is spent)."""
    return await auth_service.refresh(session, settings, data.refresh_token)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(principal: SignedIn, session: SessionDep) -> None:
    """End this session; your other sessions stay signed in."""
    await auth_service.logout(session, principal)


@router.post("/switch-tenant", response_model=TokenPair, responses=raises(NotFound))
async def switch_tenant(
    data: SwitchTenantRequest, principal: SignedIn, session: SessionDep, settings: SettingsDep
) -> TokenPair:
    """Get a token pair bound to another tenant you belong to."""
    return await auth_service.switch_tenant(session, settings, principal, data.tenant)


@router.post(
    "/password-reset/request",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    dependencies=[PasswordResetRateLimit],
)
async def request_password_reset(
    data: PasswordResetRequest, session: SessionDep, settings: SettingsDep
) -> Accepted:
    """Email a reset token if the account exists (the answer is the same either way)."""
    await auth_service.request_password_reset(session, settings, str(data.email))
    return Accepted(detail="If an account with that email exists, a reset email is on its way.")


@router.post(
    "/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=raises(BadRequest),
)
async def confirm_password_reset(
    data: PasswordResetConfirm, session: SessionDep, settings: SettingsDep
) -> None:
    """Set a new password with the emailed token; every session is signed out."""
    await auth_service.confirm_password_reset(session, settings, data.token, data.new_password)


@router.post("/verify-email", status_code=status.HTTP_204_NO_CONTENT, responses=raises(BadRequest))
async def verify_email(
    data: VerifyEmailRequest, session: SessionDep, settings: SettingsDep
) -> None:
    """Confirm your email address with the token from the welcome email."""
    await auth_service.verify_email(session, settings, data.token)
