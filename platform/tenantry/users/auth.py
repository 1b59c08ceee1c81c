"""Who may call the users endpoints: any signed-in user, with or without a tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from tenantry.auth.dependencies import Authorize
from tenantry.auth.principal import Principal

# Account endpoints are a person's own: API keys (a tenant's machines) cannot use them.
CurrentUser = Annotated[Principal, Depends(Authorize(tenant=False, api_keys=False))]
