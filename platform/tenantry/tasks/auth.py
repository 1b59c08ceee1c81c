"""Who may touch tasks (and export them): members read, `write` changes."""

from typing import Annotated

from fastapi import Depends

from tenantry.auth.dependencies import Authorize
from tenantry.auth.principal import Principal, Scope

TasksRead = Annotated[Principal, Depends(Authorize(Scope.READ))]
TasksWrite = Annotated[Principal, Depends(Authorize(Scope.WRITE))]
