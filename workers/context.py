"""What every job receives in `ctx`: the process's database and settings."""

from __future__ import annotations

from typing import Any, TypedDict

from arq.connections import ArqRedis

from tenantry.config import Settings
from tenantry.db import Database


class JobContext(TypedDict, total=False):
    redis: ArqRedis
    settings: Settings
    db: Database
    job_id: str
    job_try: int


def ctx_db(ctx: dict[str, Any]) -> Database:
    db: Database = ctx["db"]
    return db


def ctx_settings(ctx: dict[str, Any]) -> Settings:
    settings: Settings = ctx["settings"]
    return settings
