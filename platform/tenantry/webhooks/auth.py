"""Webhooks are managed by a tenant's admins and owners, signed in as themselves: an API
key gets 403 (a key that could add an endpoint could copy every event out)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from tenantry.auth.dependencies import Authorize
from tenantry.auth.principal import Principal
from tenantry.models import Role

WebhooksManage = Annotated[Principal, Depends(Authorize(min_role=Role.ADMIN))]
