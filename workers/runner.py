"""The worker process's main loop: ARQ's, made to ride out a Redis outage of any length.

ARQ 0.28's `Worker.main` lets a Redis error out of its poll loop: the main task ends,
the process exits 1, and emails, reports, purges and crons stop until something
restarts it. `ResilientWorker` keeps ARQ's job handling and replaces only the loop
around it:

- connecting: the first connection is retried with capped exponential back-off,
  however long Redis takes to come up;
- polling: a Redis error in a poll iteration (reading the queue, starting a job,
  the health key, the cron ticks) is logged once, and the loop waits, pinging Redis
  with back-off (0.5 s doubling to 10 s), then resumes polling. Meanwhile the worker's
  `/health` answers 503 (its Redis check fails), so it reports itself not ready
  without being restarted;
- starting a job: a Redis error between taking a slot and starting the job gives the
  slot back (ARQ's own `start_jobs` would leak it, and after enough outages the
  worker would stop picking jobs at all);
- finishing a job: recording the result (or the failure) is retried with back-off
  until Redis answers, for at most `FINISH_PATIENCE_SECONDS`; a job whose result
  cannot be recorded keeps its in-progress key, and ARQ runs it again once the key
  expires.

No work is lost: a job stays in ARQ's queue until its finish is recorded, and every
job whose loss would matter also has a durable row that a relay cron re-enqueues (an
outbox email, a report, a purge). None is done twice by this loop: a job picked
before the outage is either finished and recorded, or re-run, and each of our jobs is
idempotent on its row (an email is claimed and marked sent in PostgreSQL; the
duplicate window is the one named in `tenantry.notifications.delivery`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from arq.connections import create_pool, log_redis_info
from arq.constants import in_progress_key_prefix
from arq.utils import poll, timestamp_ms
from arq.worker import Worker
from redis import exceptions as redis_exc
from redis.exceptions import ResponseError, WatchError

logger = logging.getLogger("tenantry.worker")

REDIS_ERRORS: tuple[type[BaseException], ...] = (
    redis_exc.ConnectionError,
    redis_exc.TimeoutError,
    OSError,
    TimeoutError,
)
BACKOFF_START_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 10.0
FINISH_PATIENCE_SECONDS = 300.0


def _backoff(attempt: int) -> float:
    return float(min(BACKOFF_MAX_SECONDS, BACKOFF_START_SECONDS * 2 ** min(attempt, 10)))


class ResilientWorker(Worker):
    """An ARQ worker whose main loop survives Redis going away (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.redis_outages = 0
        self.redis_available = False

    async def main(self) -> None:
        await self._connect()
        logger.info(
            "Starting worker for %d functions: %s", len(self.functions), ", ".join(self.functions)
        )
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        while True:
            try:
                async for _ in poll(self.poll_delay_s):
                    await self._poll_iteration()
                    if self.burst and await self._burst_done():
                        return
            except REDIS_ERRORS as exc:
                await self._ride_out(exc)

    async def _burst_done(self) -> bool:
        if 0 <= self.max_burst_jobs <= self._jobs_started():
            await asyncio.gather(*self.tasks.values())
            return True
        if await self.pool.zcard(self.queue_name) == 0:
            await asyncio.gather(*self.tasks.values())
            return True
        return False

    async def _connect(self) -> None:
        attempt = 0
        while self._pool is None:
            try:
                pool = await create_pool(
                    self.redis_settings,
                    job_deserializer=self.job_deserializer,
                    job_serializer=self.job_serializer,
                    default_queue_name=self.queue_name,
                    expires_extra_ms=self.expires_extra_ms,
                    # Start at the last try: the back-off is ours, not ARQ's five.
                    retry=self.redis_settings.conn_retries if self.redis_settings else 0,
                )
                await log_redis_info(pool, logger.info)
            except REDIS_ERRORS as exc:
                delay = _backoff(attempt)
                if attempt == 0:
                    logger.warning(
                        "worker cannot reach Redis (%s); retrying with back-off",
                        type(exc).__name__,
                    )
                attempt += 1
                await asyncio.sleep(delay)
                continue
            self._pool = pool
        self.redis_available = True

    async def _ride_out(self, exc: BaseException) -> None:
        """Wait, pinging with back-off, until Redis answers again."""
        self.redis_available = False
        self.redis_outages += 1
        started = time.monotonic()
        logger.warning(
            "worker lost Redis (%s: %s); %d job(s) running; pausing until it answers",
            type(exc).__name__,
            exc,
            sum(not t.done() for t in self.tasks.values()),
        )
        self._reap_finished()
        attempt = 0
        while True:
            await asyncio.sleep(_backoff(attempt))
            attempt += 1
            try:
                await self.pool.ping()
            except REDIS_ERRORS:
                continue
            break
        self.redis_available = True
        logger.warning(
            "worker reached Redis again after %.1f s; resuming", time.monotonic() - started
        )

    def _reap_finished(self) -> None:
        """Drop finished job tasks; one that died of the outage is logged, not raised
        (ARQ's loop re-raises it, which would end this loop again)."""
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                if not task.cancelled() and task.exception() is not None:
                    logger.warning(
                        "job %s ended by a Redis error: %s", job_id, type(task.exception()).__name__
                    )

    async def _poll_iteration(self) -> None:
        self._reap_finished()
        await super()._poll_iteration()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """ARQ's `start_jobs`, giving the slot back when Redis fails mid-way."""
        for job_id_b in job_ids:
            await self.sem.acquire()
            if self.job_counter >= self.max_jobs:
                self.sem.release()
                return
            self.job_counter += 1
            started = False
            try:
                started = await self._start_one(job_id_b.decode())
            finally:
                if not started:
                    self.job_counter -= 1
                    self.sem.release()

    async def _start_one(self, job_id: str) -> bool:
        in_progress_key = in_progress_key_prefix + job_id
        async with self.pool.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(in_progress_key)
                ongoing_exists = await pipe.exists(in_progress_key)
                score = await pipe.zscore(self.queue_name, job_id)
            except WatchError as exc:
                # redis-py reports a connection lost while watching as a WatchError;
                # here it is an outage to ride out, not a race lost to another worker.
                raise redis_exc.ConnectionError(str(exc)) from exc
            if ongoing_exists or not score or score > timestamp_ms():
                return False  # running elsewhere, finished, or deferred again
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.psetex(in_progress_key, int(self.in_progress_timeout_s * 1000), b"1")
            try:
                await pipe.execute()
            except (ResponseError, WatchError):
                return False  # another worker took it since
        task = self.loop.create_task(self.run_job(job_id, int(score)))
        task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
        self.tasks[job_id] = task
        return True

    async def close(self) -> None:
        """ARQ's close, which deletes the health key first: with Redis down at shutdown
        that is not worth a traceback and an exit status 1."""
        try:
            await super().close()
        except REDIS_ERRORS as exc:
            logger.warning("worker closed without Redis (%s)", type(exc).__name__)

    async def finish_job(self, *args: Any, **kwargs: Any) -> None:
        await self._patiently(super().finish_job, *args, **kwargs)

    async def finish_failed_job(self, *args: Any, **kwargs: Any) -> None:
        await self._patiently(super().finish_failed_job, *args, **kwargs)

    async def _patiently(self, record: Any, *args: Any, **kwargs: Any) -> None:
        """Record a job's end, retrying through a Redis outage (bounded)."""
        deadline = time.monotonic() + FINISH_PATIENCE_SECONDS
        attempt = 0
        while True:
            try:
                await record(*args, **kwargs)
                return
            except REDIS_ERRORS:
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(_backoff(attempt))
                attempt += 1


def create(settings_cls: Any, **overrides: Any) -> ResilientWorker:
    """A ResilientWorker from ARQ's settings class, as `arq.worker.create_worker` would.

    `create_worker` is called first and its worker dropped: it is the hook through which
    Sentry's ARQ integration (when enabled) wraps each job and cron coroutine, which it
    does on the settings class itself, so the worker built next runs the wrapped ones.
    """
    import arq.worker

    arq.worker.create_worker(settings_cls, **{**overrides, "handle_signals": False})
    return ResilientWorker(**{**arq.worker.get_kwargs(settings_cls), **overrides})


def run(settings_cls: Any, **overrides: Any) -> None:
    """`tenantry worker`: ARQ's settings class, our loop."""
    create(settings_cls, **overrides).run()
