"""Password hashing: Argon2id via pwdlib, bcrypt kept for verifying old hashes.

Why not passlib: passlib 1.7.4 (its last release, 2020) reads `bcrypt.__about__`, which
bcrypt 4.1 removed, and its bcrypt backend self-test hashes a password over 72 bytes,
which bcrypt 5 rejects with ValueError — so every hash raises. pwdlib is maintained,
typed, and what FastAPI's own docs and template moved to.

Argon2 is deliberately expensive (about 0.1 s of CPU and 64 MiB a hash at the default
cost), so hashing runs in worker threads behind a `CapacityLimiter`: at most
`PASSWORD_HASH_CONCURRENCY` hashes at once, callers beyond that wait (cheaply) on the
event loop, and past `PASSWORD_HASH_QUEUE_LIMIT` waiters the answer is 503. argon2-cffi
and bcrypt release the GIL, so the threads really run in parallel and the loop keeps
serving other requests.
"""

from __future__ import annotations

import re
import secrets
from functools import lru_cache
from typing import Annotated, Any

import anyio
import anyio.to_thread
from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher
from pydantic import AfterValidator, WithJsonSchema

from tenantry.config import Settings
from tenantry.errors import ServiceUnavailable

MIN_LENGTH = 8
MAX_LENGTH = 128
_UPPER = re.compile(r"[A-Z]")
_DIGIT = re.compile(r"[0-9]")
_SPECIAL = re.compile(r"[^A-Za-z0-9]")
# The same rules for the OpenAPI document, so clients can check before sending.
PASSWORD_SCHEMA: dict[str, Any] = {
    "minLength": MIN_LENGTH,
    "maxLength": MAX_LENGTH,
    "pattern": r"^(?=[\s\S]*[A-Z])(?=[\s\S]*[0-9])(?=[\s\S]*[^A-Za-z0-9])[\s\S]*$",
    "description": f"{MIN_LENGTH}–{MAX_LENGTH} characters with an upper-case letter (A–Z), "
    "a digit (0–9) and a character that is neither",
}


def password_problem(password: str) -> str | None:
    """The first password rule the password breaks, phrased for a 422, or None."""
    if len(password) < MIN_LENGTH:
        return f"Password must be at least {MIN_LENGTH} characters long"
    if len(password) > MAX_LENGTH:
        return f"Password must be at most {MAX_LENGTH} characters long"
    if not _UPPER.search(password):
        return "Password must contain an upper-case letter (A–Z)"
    if not _DIGIT.search(password):
        return "Password must contain a digit (0–9)"
    if not _SPECIAL.search(password):
        return "Password must contain a special character"
    return None


def check_password(password: str) -> str:
    """A pydantic validator body: raise the rule the password breaks."""
    problem = password_problem(password)
    if problem:
        raise ValueError(problem)
    return password


# A new password, checked with the rule's own message and documented as PASSWORD_SCHEMA.
Password = Annotated[
    str, AfterValidator(check_password), WithJsonSchema({"type": "string", **PASSWORD_SCHEMA})
]


class _Bcrypt(BcryptHasher):
    """Verify-only in practice; bcrypt 5 raises on inputs over 72 bytes instead of
    truncating, and a long guess against an old hash is simply wrong, not an error."""

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:
        try:
            return super().verify(password, hash)
        except ValueError:
            return False


@lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHash:
    # The first hasher hashes; the others only verify and flag a rehash on login.
    return PasswordHash(
        (
            Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism),
            _Bcrypt(),
        )
    )


def hasher_for(settings: Settings) -> PasswordHash:
    return _hasher(
        settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
    )


class Passwords:
    """Hash and verify off the event loop, with bounded concurrency."""

    def __init__(self) -> None:
        self._limiter: anyio.CapacityLimiter | None = None
        self._dummy: dict[PasswordHash, str] = {}

    def _limiter_for(self, settings: Settings) -> anyio.CapacityLimiter:
        limiter = self._limiter
        if limiter is None or limiter.total_tokens != settings.password_hash_concurrency:
            limiter = self._limiter = anyio.CapacityLimiter(settings.password_hash_concurrency)
        stats = limiter.statistics()
        if stats.borrowed_tokens >= limiter.total_tokens and (
            stats.tasks_waiting >= settings.password_hash_queue_limit
        ):
            raise ServiceUnavailable("Too many sign-ins at once; try again shortly")
        return limiter

    async def hash(self, settings: Settings, password: str) -> str:
        hasher = hasher_for(settings)
        return await anyio.to_thread.run_sync(
            hasher.hash, password, limiter=self._limiter_for(settings)
        )

    async def verify(
        self, settings: Settings, password: str, password_hash: str | None
    ) -> tuple[bool, str | None]:
        """(matches, new hash if the stored one should be upgraded).

        With no stored hash (unknown user) the password is checked against a dummy hash
        of the current cost, so both failures take the same time.
        """
        hasher = hasher_for(settings)
        if password_hash is None:
            await anyio.to_thread.run_sync(
                hasher.verify,
                password,
                await self._dummy_hash(settings, hasher),
                limiter=self._limiter_for(settings),
            )
            return False, None
        try:
            return await anyio.to_thread.run_sync(
                hasher.verify_and_update,
                password,
                password_hash,
                limiter=self._limiter_for(settings),
            )
        except UnknownHashError:
            # An unusable marker ("!…") or a foreign format: never a match, same cost.
            return await self.verify(settings, password, None)

    async def _dummy_hash(self, settings: Settings, hasher: PasswordHash) -> str:
        dummy = self._dummy.get(hasher)
        if dummy is None:
            dummy = self._dummy[hasher] = await anyio.to_thread.run_sync(
                hasher.hash, secrets.token_urlsafe(16), limiter=self._limiter_for(settings)
            )
        return dummy


passwords = Passwords()
