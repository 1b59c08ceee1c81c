from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from tenantry.auth.dependencies import Authorize
from tenantry.auth.principal import Principal

# Platform operators act on every tenant, so they need no tenant of their own.
Operator = Annotated[Principal, Depends(Authorize(tenant=False, superuser=True))]
