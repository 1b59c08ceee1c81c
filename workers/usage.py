"""Move API-call counters from Redis into `api_usage_daily`."""

from __future__ import annotations

from typing import Any

from tenantry.usage import flush


async def flush_usage(ctx: dict[str, Any]) -> int:
    return await flush(ctx["app_redis"], ctx["db"])
