"""The queue gauges: depth, oldest waiting age and deferred jobs of ARQ's queue.

The API observes them on every scrape of its /metrics, not the workers: when every
worker is gone the backlog must still be reported, so that it alerts.
"""

from __future__ import annotations

from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from redis.asyncio import Redis

from tenantry.observability.metrics import QUEUE_DEFERRED, QUEUE_DEPTH, QUEUE_OLDEST_AGE

# How many of the oldest due jobs to look at when telling running jobs from waiting ones.
_HEAD = 200


async def observe_queue(redis: Redis, queue_name: str) -> None:
    """Depth, oldest waiting age and deferred count of ARQ's queue (a sorted set scored
    by the time each job becomes due, in ms). Jobs being run stay in the set until they
    finish, so the oldest due jobs are checked for an in-progress key."""
    # ARQ scores a job with its enqueue time in whole (rounded) ms, so "now" must be read
    # the same way: a raw time.time() * 1000 can sit up to 0.5 ms below the score of a
    # job enqueued a moment ago and count it as deferred.
    now_ms = timestamp_ms()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(queue_name)
        pipe.zcount(queue_name, "-inf", now_ms)
        pipe.zrangebyscore(queue_name, "-inf", now_ms, start=0, num=_HEAD, withscores=True)
        total, due, head = await pipe.execute()
    running: list[bool] = []
    if head:
        async with redis.pipeline(transaction=False) as pipe:
            for job_id, _ in head:
                key = job_id.decode() if isinstance(job_id, bytes) else str(job_id)
                pipe.exists(in_progress_key_prefix + key)
            running = [bool(x) for x in await pipe.execute()]
    waiting_scores = [score for (_, score), busy in zip(head, running, strict=True) if not busy]
    QUEUE_DEPTH.set(max(int(due) - sum(running), 0))
    QUEUE_DEFERRED.set(max(int(total) - int(due), 0))
    QUEUE_OLDEST_AGE.set(max((now_ms - waiting_scores[0]) / 1000, 0) if waiting_scores else 0)
