"""Who may touch projects: any member reads (viewers and `read` keys too); writes need
`write` (members and up, or a `write` key)."""

from typing import Annotated

from fastapi import Depends

from tenantry.auth.dependencies import Authorize
from tenantry.auth.principal import Principal, Scope

ProjectsRead = Annotated[Principal, Depends(Authorize(Scope.READ))]
ProjectsWrite = Annotated[Principal, Depends(Authorize(Scope.WRITE))]
