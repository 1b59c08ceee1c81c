"""Where finished report files live. PostgreSQL chunks today: the API and the workers
reach the database in every deployment, while separate pods share no disk. An object
store can replace it behind the same small interface."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, AsyncIterator
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tenantry.db import Database
from tenantry.models import Report, ReportChunk

CHUNK_BYTES = 256 * 1024


class ReportStorage(Protocol):
    async def write(
        self, session: AsyncSession, report: Report, body: AsyncIterable[bytes]
    ) -> int: ...

    def read(self, db: Database, report: Report) -> AsyncIterator[bytes]: ...


class PostgresChunkStorage:
    """Writes in the caller's transaction (so a crash leaves no half file: the chunks
    commit with the `succeeded` status or not at all) and reads one chunk at a time."""

    async def write(self, session: AsyncSession, report: Report, body: AsyncIterable[bytes]) -> int:
        await session.execute(
            sa.delete(ReportChunk).where(
                col(ReportChunk.tenant_id) == report.tenant_id,
                col(ReportChunk.report_id) == report.id,
            )
        )
        buffer = bytearray()
        seq = 0
        size = 0
        async for piece in body:
            buffer += piece
            while len(buffer) >= CHUNK_BYTES:
                await self._insert(session, report, seq, bytes(buffer[:CHUNK_BYTES]))
                del buffer[:CHUNK_BYTES]
                seq += 1
                size += CHUNK_BYTES
        if buffer or seq == 0:
            await self._insert(session, report, seq, bytes(buffer))
            size += len(buffer)
        return size

    async def _insert(self, session: AsyncSession, report: Report, seq: int, data: bytes) -> None:
        # Core insert: no ORM object per chunk stays in the identity map.
        await session.execute(
            sa.insert(ReportChunk).values(
                tenant_id=report.tenant_id, report_id=report.id, seq=seq, data=data
            )
        )

    async def read(self, db: Database, report: Report) -> AsyncIterator[bytes]:
        seq = 0
        while True:
            data = await self._chunk(db, report.tenant_id, report.id, seq)
            if data is None:
                return
            yield data
            seq += 1

    async def _chunk(
        self, db: Database, tenant_id: uuid.UUID, report_id: uuid.UUID, seq: int
    ) -> bytes | None:
        # A short transaction per chunk: a slow client never holds a connection open.
        async with db.session_scope(tenant_id) as session:
            result = await session.execute(
                sa.select(col(ReportChunk.data)).where(
                    col(ReportChunk.tenant_id) == tenant_id,
                    col(ReportChunk.report_id) == report_id,
                    col(ReportChunk.seq) == seq,
                )
            )
            return result.scalar_one_or_none()


storage: ReportStorage = PostgresChunkStorage()
