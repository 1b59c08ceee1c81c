"""Who may see and manage the members of a tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from tenantry.auth.dependencies import Authorize
from tenantry.auth.principal import Principal, Scope
from tenantry.models import Role

MembersRead = Annotated[Principal, Depends(Authorize(Scope.READ))]
MembersManage = Annotated[Principal, Depends(Authorize(min_role=Role.ADMIN))]
# Leaving is open to every member; removing someone else is checked by the service.
MembersRemove = Annotated[Principal, Depends(Authorize(Scope.READ, api_keys=False))]
