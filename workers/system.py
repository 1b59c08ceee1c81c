"""Jobs that prove the pipeline end to end."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from workers.context import ctx_db


async def ping(ctx: dict[str, Any], message: str = "pong") -> dict[str, Any]:
    """Round-trips through Redis and PostgreSQL, so a green ping means both work."""
    async with ctx_db(ctx).session_scope() as session:
        now = (await session.execute(sa.text("SELECT now()"))).scalar_one()
    return {"message": message, "db_time": now.isoformat(), "try": ctx.get("job_try", 1)}
