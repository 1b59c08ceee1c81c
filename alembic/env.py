"""Async Alembic environment: runs as the owner role, then grants the app role.

The URL comes from `DATABASE_OWNER_URL` (or `DATABASE_URL`), or from
`config.attributes["url"]` when tests and the CLI drive Alembic in-process.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import context
from tenantry.citus import distribute
from tenantry.config import get_settings
from tenantry.migrations import grant_app_role
from tenantry.models import metadata

config = context.config
if config.config_file_name is not None and not config.attributes.get("skip_logging"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = metadata


def _url() -> str:
    url = config.attributes.get("url")
    return str(url) if url else get_settings().owner_url


def _app_role() -> str:
    role = config.attributes.get("app_role")
    return str(role) if role else get_settings().app_role


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        # Never queue behind a long transaction holding a lock the DDL needs: fail fast
        # and let the operator retry, instead of stalling every query behind us.
        connection.exec_driver_sql("SET lock_timeout = '5s'")
        context.run_migrations()
        grant_app_role(connection, _app_role())
        # On a Citus coordinator: distribute what the migrations created (else a no-op).
        for change in distribute(connection, target_metadata):
            print(f"citus: {change}")


async def run_migrations_online() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
