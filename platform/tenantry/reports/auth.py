from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from tenantry.auth.dependencies import Authorize
from tenantry.auth.principal import Principal, Scope

# A report is a view of data the caller can already read, so viewers and read keys
# may request one (as GitHub lets read-only tokens start an export).
ReportsRead = Annotated[Principal, Depends(Authorize(Scope.READ))]
