"""Admins invite and revoke; any signed-in person may accept what was sent to them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from tenantry.auth.dependencies import Authorize
from tenantry.auth.principal import Principal
from tenantry.models import Role

InvitationsManage = Annotated[Principal, Depends(Authorize(min_role=Role.ADMIN))]
# The invitee's token may be bound to another tenant, or to none yet.
InvitationsAccept = Annotated[Principal, Depends(Authorize(tenant=False, api_keys=False))]
