"""Access to tenants: any signed-in user creates and lists their own; the current tenant
is readable by members and keys, editable by admins, deletable by owners."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from tenantry.auth.dependencies import Authorize
from tenantry.auth.principal import Principal, Scope
from tenantry.models import Role

# A person, with or without a current tenant; keys belong to a tenant and cannot make one.
TenantsUser = Annotated[Principal, Depends(Authorize(tenant=False, api_keys=False))]
CurrentTenantRead = Annotated[Principal, Depends(Authorize(Scope.READ))]
CurrentTenantAdmin = Annotated[Principal, Depends(Authorize(min_role=Role.ADMIN))]
CurrentTenantOwner = Annotated[Principal, Depends(Authorize(min_role=Role.OWNER))]
