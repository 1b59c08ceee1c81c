"""Retries for every job: exponential backoff with full jitter on transient errors only.

A transient error (database or Redis unreachable, a timeout) is retried by ARQ after a
growing, randomised delay; anything else is a bug or bad data and retrying would only
repeat it, so the job records its terminal state instead.
"""

from __future__ import annotations

import random

from arq import Retry

from tenantry.errors import is_unavailable


def backoff(job_try: int, *, base: float = 1.0, cap: float = 60.0) -> float:
    return random.uniform(0, min(cap, base * 2 ** max(0, job_try - 1)))  # noqa: S311


def is_transient(exc: BaseException) -> bool:
    return is_unavailable(exc)


def retry_later(job_try: int) -> Retry:
    return Retry(defer=backoff(job_try))
