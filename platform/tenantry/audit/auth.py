from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from tenantry.auth.dependencies import Authorize
from tenantry.auth.principal import Principal
from tenantry.models import Role

AuditRead = Annotated[Principal, Depends(Authorize(min_role=Role.ADMIN))]
