"""Who may call the session endpoints, and the headers every credential answer carries."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Response

from tenantry.auth.dependencies import Authorize
from tenantry.auth.principal import Principal

# Logout and switch-tenant act on the caller's own session: user tokens only.
SignedIn = Annotated[Principal, Depends(Authorize(tenant=False, api_keys=False))]


async def no_store(response: Response) -> None:  # async: no thread-pool hop
    """Tokens must never land in a shared or browser cache (RFC 6749 §5.1)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
