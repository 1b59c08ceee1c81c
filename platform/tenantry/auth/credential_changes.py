"""Hearing PostgreSQL announce that a credential row changed, whoever changed it.

Kept credential checks and `/users/me` bodies (`auth.principal_cache`) stand while the
generations in Redis hold, and the API's unit of work bumps those after its own writes.
A write past the API (SQL by hand, a script, a restore) bumps nothing. So triggers on
`users`, `auth_sessions`, `memberships` and `tenants` (migration 0012) send
`u:<user id>` or `t:<tenant id>` on `CHANNEL` when such a change commits, and each API
process listens on a connection of its own and bumps the generations named, as a unit
of work would have: every process sees the change on its next call. The API's own
writes are announced too; a bump of theirs that Redis refused is retried here until
Redis takes it.

A process trusts its hearing only while it can prove it: every `PING_SECONDS` it
announces a ping of its own through the pool (through any PgBouncer in between, which
carries no notifications; sending may take up to `PING_SEND_SECONDS`) and must hear it
on the listening connection within `PING_TIMEOUT_SECONDS` of sending it. While it
hears, kept answers stand for `principal_cache.HEARD_TTL_SECONDS`; from the moment it
does not (the connection lost, PostgreSQL hung, no triggers as on Citus) for
`principal_cache.TTL_SECONDS`, and an answer checked before then stays on that shorter
time once it hears again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
from redis.asyncio import Redis

from tenantry import cache
from tenantry.auth import principal_cache
from tenantry.citus import CREDENTIAL_TRIGGER_TABLES
from tenantry.db import Database
from tenantry.observability.metrics import CREDENTIAL_CHANGES_HEARD

CHANNEL = "tenantry_credentials"
PING_SECONDS = 5.0
PING_TIMEOUT_SECONDS = 2.0
PING_SEND_SECONDS = 10.0
RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 60.0
BUMP_BATCH = 500  # keys per script call: a bulk UPDATE announces one per row

_KEYS: dict[str, Callable[[uuid.UUID], str]] = {
    "u": principal_cache.user_generation_key,
    "t": principal_cache.tenant_generation_key,
}
# Whether every table of migration 0012 announces (enabled, not dropped as on Citus).
_TRIGGERS = """
    SELECT count(*) = cardinality($1::text[]) FROM pg_trigger
     WHERE tgname = 'credentials_changed' AND tgenabled <> 'D' AND NOT tgisinternal
       AND tgrelid::regclass::text = ANY($1::text[])
"""
_NOTIFY = "SELECT pg_notify($1, $2)"

logger = logging.getLogger("tenantry.credentials")


class CredentialChanges:
    """One API process's listener; `run()` until cancelled."""

    def __init__(
        self,
        db: Database,
        redis: Redis,
        *,
        ping: Callable[[str], Awaitable[object]] | None = None,
    ) -> None:
        self._db = db
        self._redis = redis
        # How a ping is announced: through the pool, as any session of ours would.
        self._ping = ping or (lambda payload: db.fetch_one(_NOTIFY, CHANNEL, payload))
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self._pings: dict[str, asyncio.Future[None]] = {}
        self._heard_before: bool | None = None
        # Why it last found itself not hearing (None until it has tried once).
        self.deaf_because: str | None = None

    async def run(self) -> None:
        bumping = asyncio.create_task(self._bump_forever())
        pause = 0.0
        try:
            while True:
                # Listening again at once after a loss; ever more slowly where nothing
                # has been heard (no triggers, a pooler in between).
                heard = await self._listen()
                pause = (
                    RETRY_SECONDS
                    if heard
                    else min(max(pause * 2, RETRY_SECONDS), MAX_RETRY_SECONDS)
                )
                await asyncio.sleep(pause)
        finally:
            bumping.cancel()
            self._set_hearing(False)

    async def _listen(self) -> bool:
        """Listen while pings come back; whether one did."""
        connection: asyncpg.Connection | None = None
        heard = False
        try:
            connection = await self._db.connect()
            if not await connection.fetchval(_TRIGGERS, list(CREDENTIAL_TRIGGER_TABLES)):
                self._deaf("no credentials_changed triggers (Citus, or not migrated)")
                return False
            await connection.add_listener(CHANNEL, self._heard)
            while await self._pinged():
                heard = True
                self._set_hearing(True)
                await asyncio.sleep(PING_SECONDS)
            self._deaf("a ping was not heard back")
        except Exception as exc:  # the listener outlives any failure
            self._deaf(f"{type(exc).__name__}: {exc}")
        finally:
            self._set_hearing(False)
            if connection is not None:
                connection.terminate()
        return heard

    async def _pinged(self) -> bool:
        payload = f"ping:{uuid.uuid4().hex}"
        heard = self._pings[payload] = asyncio.get_running_loop().create_future()
        try:
            # Sending waits for a pooled connection, which a busy process may take a
            # while to give (not deafness); what is timed closely is hearing it back.
            async with asyncio.timeout(PING_SEND_SECONDS):
                await self._ping(payload)
            async with asyncio.timeout(PING_TIMEOUT_SECONDS):
                await heard
            return True
        except TimeoutError:
            return False
        finally:
            del self._pings[payload]

    def _heard(self, connection: object, pid: int, channel: str, payload: str) -> None:
        kind, _, value = payload.partition(":")
        if kind == "ping":
            ping = self._pings.get(payload)
            if ping is not None and not ping.done():
                ping.set_result(None)
            return
        key = _KEYS.get(kind)
        try:
            ident = uuid.UUID(value)
        except ValueError:
            key = None
        if key is None:
            logger.warning("ignored an announcement on %s: %r", CHANNEL, payload[:80])
            return
        self._pending.add(key(ident))
        self._wake.set()

    async def _bump_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                keys = [self._pending.pop() for _ in range(min(BUMP_BATCH, len(self._pending)))]
                try:
                    bumped = await cache.invalidate(self._redis, set(), keys)
                except Exception:  # never lose a bump to a surprise: log, keep, retry
                    logger.exception("bumping credential generations failed; retrying")
                    bumped = False
                if not bumped:
                    self._pending.update(keys)
                    await asyncio.sleep(RETRY_SECONDS)

    def _set_hearing(self, heard: bool) -> None:
        principal_cache.hear(heard)
        CREDENTIAL_CHANGES_HEARD.set(1 if heard else 0)
        if heard:
            self._log_once(True, "")

    def _deaf(self, why: str) -> None:
        self.deaf_because = why
        self._log_once(False, why)

    def _log_once(self, heard: bool, why: str) -> None:
        """One line per change of state, not one per retry; a warning only when a
        process that heard stops hearing."""
        before, self._heard_before = self._heard_before, heard
        if heard == before:
            return
        if heard:
            logger.info(
                "hearing credential changes: kept checks stand %.0f s",
                principal_cache.HEARD_TTL_SECONDS,
            )
            return
        logger.log(
            logging.WARNING if before else logging.INFO,
            "not hearing credential changes (%s): kept checks stand %.0f s",
            why,
            principal_cache.TTL_SECONDS,
        )
