"""The one place a request's credential becomes a `Principal`.

Domains name their access as aliases built from `Authorize`, e.g.
`ProjectsWrite = Annotated[Principal, Depends(Authorize(Scope.WRITE))]`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry import admission
from tenantry.auth import tokens
from tenantry.auth.api_key import API_KEY_PREFIX, resolve_api_key
from tenantry.auth.principal import Principal, Scope
from tenantry.auth.principal_cache import hearing_epoch, principals
from tenantry.config import Settings
from tenantry.context import tenant_id_var, user_id_var
from tenantry.db import Database, set_tenant_context
from tenantry.deps import SessionDep
from tenantry.errors import AppError, Forbidden, TooManyRequests, Unauthorized
from tenantry.kit.clients import client_ip
from tenantry.kit.openapi import API_KEY, BEARER
from tenantry.models import Plan, Role, TenantStatus

# Session, user, membership and tenant in one statement (migration 0005): the role is
# the membership's role *now*, so a demotion or removal applies on the next request,
# not at token expiry.
_SESSION_PRINCIPAL = "SELECT * FROM session_principal($1, $2, $3)"


def read_credential(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        raise Unauthorized("Unsupported authorization scheme")
    api_key = request.headers.get("x-api-key")
    return api_key.strip() if api_key else None


async def resolve_user(
    session: AsyncSession,
    db: Database,
    settings: Settings,
    token: str,
    request: Request,
    *,
    need_tenant: bool = True,
) -> Principal:
    """The principal of a live session.

    A token bound to a tenant that is gone, suspended or no longer the user's is refused
    only where the route needs that tenant; elsewhere (the account, the tenant list,
    switch-tenant, logout) the person acts without one, so they can still get out.
    """
    try:
        claims = tokens.decode_access_token(settings, token)
    except tokens.InvalidToken:
        raise Unauthorized("Invalid or expired token") from None
    row = await _principal_row(db, claims, request)
    now = datetime.now(UTC)
    if (
        row is None
        or row["revoked_at"] is not None
        or row["expires_at"] <= now
        or not row["is_active"]
    ):
        raise Unauthorized("Session is no longer valid")
    tenant_id = claims.tenant_id
    role = None
    plan = None
    if tenant_id is not None:
        refusal = _tenant_refusal(row)
        if refusal is not None and need_tenant:
            raise refusal
        if refusal is None:
            role = Role(row["role"])
            plan = Plan(row["tenant_plan"])
        else:
            tenant_id = None
    await set_tenant_context(session, tenant_id, user_id=claims.user_id)
    return Principal(
        user_id=claims.user_id,
        tenant_id=tenant_id,
        role=role,
        session_id=claims.session_id,
        is_superuser=bool(row["is_superuser"]),
        plan=plan,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
    )


async def _principal_row(
    db: Database, claims: tokens.AccessClaims, request: Request
) -> dict[str, Any] | None:
    """`session_principal()`'s row, or the one kept while its generations still hold
    (`auth.principal_cache`: only tenant calls, whose admission reads them anyway)."""
    key = (claims.session_id, claims.user_id, claims.tenant_id)
    tenant_id = claims.tenant_id
    epoch = hearing_epoch()
    kept = principals.get(key) if tenant_id is not None else None
    generations = None
    refused: TooManyRequests | None = None
    if kept is not None and tenant_id is not None:
        kept_row, kept_under = kept
        kept_plan = Plan(kept_row["tenant_plan"])
        try:
            generations = await admission.admit(request, tenant_id, kept_plan, claims.user_id)
        except TooManyRequests as exc:
            refused = exc
            generations = admission.generations_read(request)
        if generations is not None and generations == kept_under:
            if refused is not None:
                raise refused
            return kept_row
    row = await db.fetch_one(
        _SESSION_PRINCIPAL, claims.session_id, claims.user_id, claims.tenant_id
    )
    if not _usable(row) or tenant_id is None:
        principals.drop(key)  # nothing kept may outlive the answer that replaced it
        return row  # resolve_user says why (401/403) before any 429
    assert row is not None
    if kept is not None:
        if Plan(row["tenant_plan"]) != kept_plan:
            # Admitted under the kept plan, which has changed since: decide again.
            await admission.readmit(request, tenant_id, Plan(row["tenant_plan"]))
        elif refused is not None:
            raise refused
    # Under the generations read before this check; unconfirmed (None) if none were.
    principals.put(key, (row, generations), epoch)
    return row


def _usable(row: dict[str, Any] | None) -> bool:
    return (
        row is not None
        and row["revoked_at"] is None
        and row["expires_at"] > datetime.now(UTC)
        and bool(row["is_active"])
        and _tenant_refusal(row) is None
    )


def _tenant_refusal(row: dict[str, Any]) -> AppError | None:
    """Why the token's tenant cannot be used now, if it cannot."""
    if row["tenant_status"] is None or row["tenant_deleted_at"] is not None:
        return Unauthorized("Tenant no longer exists")
    if row["role"] is None:
        return Forbidden("You are no longer a member of this tenant")
    if row["tenant_status"] == TenantStatus.SUSPENDED:
        return Forbidden("This tenant is suspended")
    return None


class Authorize:
    """A dependency that resolves the principal and checks what the route needs.

    `tenant=True` (the default) demands a tenant-bound credential; `scope` is checked
    against API key scopes or, for users, the role (viewers only read); `min_role`
    keeps a route to admins or owners and closes it to API keys; `superuser` keeps it
    to platform operators.
    """

    def __init__(
        self,
        scope: Scope | None = None,
        *,
        min_role: Role | None = None,
        tenant: bool = True,
        superuser: bool = False,
        api_keys: bool = True,
    ) -> None:
        self.scope = scope
        self.min_role = min_role
        self.tenant = tenant
        self.superuser = superuser
        self.api_keys = api_keys and not superuser and min_role in (None, Role.VIEWER)

    # Read by tenantry.kit.openapi: what every route behind this dependency can answer
    # (403: a role, scope or suspended tenant; 429: the tenant's rate limit) and the
    # credentials it reads. A key sent as a bearer token to a user-only route is 403.
    openapi_statuses = (401, 403, 429)

    @property
    def openapi_security(self) -> list[dict[str, list[str]]]:
        if self.api_keys:
            return [{BEARER: []}, {API_KEY: []}]
        return [{BEARER: []}]

    async def __call__(self, request: Request, session: SessionDep) -> Principal:
        settings: Settings = request.app.state.settings
        credential = read_credential(request)
        if credential is None:
            raise Unauthorized()
        if credential.startswith(API_KEY_PREFIX):
            if not self.api_keys:
                # A valid key is still checked first, so a bad key answers 401, not 403.
                await resolve_api_key(session, settings, credential, request)
                raise Forbidden("API keys cannot use this endpoint")
            principal = await resolve_api_key(session, settings, credential, request)
        else:
            principal = await resolve_user(
                session,
                request.app.state.db,
                settings,
                credential,
                request,
                need_tenant=self.tenant,
            )
        request.state.principal = principal
        tenant_id_var.set(str(principal.tenant_id) if principal.tenant_id else None)
        user_id_var.set(str(principal.user_id) if principal.user_id else None)
        if principal.tenant_id is not None:
            # Before the role checks: a refused call costs us work too, and counts. (A
            # kept credential check has admitted the call already: this returns at once.)
            await admission.admit(request, principal.tenant_id, principal.plan)
        self._check(principal)
        return principal

    def _check(self, principal: Principal) -> None:
        if self.superuser and not principal.is_superuser:
            raise Forbidden("Platform operators only")
        if self.tenant and principal.tenant_id is None:
            raise Forbidden("This endpoint needs a tenant; create one or switch to one")
        if self.scope is not None and self.tenant and not principal.can(self.scope):
            raise Forbidden(f"This credential lacks the '{self.scope.value}' permission")
        if self.min_role is not None and (
            principal.role is None or not principal.role.at_least(self.min_role)
        ):
            raise Forbidden(f"Requires the {self.min_role.value} role or higher")
