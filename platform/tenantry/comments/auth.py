"""Who may touch comments: the tenant reads (read keys too); members write as
themselves, so writes are closed to API keys (a comment has a person as author)."""

from typing import Annotated

from fastapi import Depends

from tenantry.auth.dependencies import Authorize
from tenantry.auth.principal import Principal, Scope

CommentsRead = Annotated[Principal, Depends(Authorize(Scope.READ))]
CommentsWrite = Annotated[Principal, Depends(Authorize(Scope.WRITE, api_keys=False))]
