"""Sign-up and the caller's own account."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from tenantry import admission
from tenantry.deps import SessionDep, SettingsDep, UnitOfWorkRoute, redis_of
from tenantry.errors import Conflict
from tenantry.kit.http import location
from tenantry.kit.openapi import raises
from tenantry.kit.responses import json_bytes
from tenantry.models import User
from tenantry.ratelimit import SignupRateLimit
from tenantry.users import me_cache
from tenantry.users.auth import CurrentUser
from tenantry.users.schemas import UserCreate, UserMe, UserRead, UserUpdate
from tenantry.users.service import user as user_service

router = APIRouter(prefix="/users", tags=["users"], route_class=UnitOfWorkRoute)


# Both spellings answer directly: a 307 to the slashed path would make clients re-POST.
@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    include_in_schema=False,
    dependencies=[SignupRateLimit],
    responses=raises(Conflict),
)
@router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    dependencies=[SignupRateLimit],
    responses=raises(Conflict),
)
async def create(
    data: UserCreate,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> User:
    """Sign up; a welcome email with a verification token follows."""
    user = await user_service.create(session, settings, data)
    # The account, as its owner reads it once signed in.
    response.headers["Location"] = location(request, "users", "me")
    return user


@router.get("/me", response_model=UserMe)
async def get_me(principal: CurrentUser, session: SessionDep, request: Request) -> Response:
    """The signed-in user and their tenants."""

    async def load() -> tuple[bytes, tuple[uuid.UUID, ...]]:
        # Serialised once, here: a model returned to `response_model` is validated again.
        me = await user_service.get_me(session, principal)
        return me.model_dump_json().encode(), tuple(m.tenant_id for m in me.memberships)

    assert principal.user_id is not None  # no API keys here
    known = admission.generations_by_key(request, principal.user_id, principal.tenant_id)
    return json_bytes(await me_cache.read(redis_of(request), principal.user_id, load, known))


@router.patch("/me", response_model=UserMe)
async def update_me(
    data: UserUpdate, principal: CurrentUser, session: SessionDep, settings: SettingsDep
) -> UserMe:
    """Change your name or password (a new password signs out your other sessions)."""
    return await user_service.update_me(session, settings, principal, data)
