"""API keys are managed by a tenant's admins, signed in as themselves (never by a key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from tenantry.auth.dependencies import Authorize
from tenantry.auth.principal import Principal
from tenantry.models import Role

ApiKeysManage = Annotated[Principal, Depends(Authorize(min_role=Role.ADMIN))]
