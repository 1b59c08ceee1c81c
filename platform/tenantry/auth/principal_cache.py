"""The credential check's answer, kept per process while nothing it reads has changed.

Every authenticated request asks PostgreSQL `session_principal()`: is the session live,
the user active, their membership and role, the tenant's state and plan. That round
trip was a sixth of a cached read's server CPU (`bench/run.py`). Its answer changes
only when a row of `users`, `auth_sessions`, `memberships` or `tenants` does, so:

- the unit of work notes whose answers such a write changes (`note_writes` from the
  flush; `note_user` by hand where a bulk statement skips the flush) and, after its
  commit and before the response, bumps that user's or tenant's generation in Redis;
- the tenant's admission round trip, made on every tenant call anyway, reads both
  generations back (`tenantry.admission`), so checking them costs no extra trip;
- an answer is reused only while the generations are those read *before* the check
  that produced it; a first check's answer is kept unconfirmed, and the next request
  checks again after reading them. A revocation committed after a check therefore
  always moves a generation past the one its answer is kept under.

A write to those tables that bypasses the API's unit of work (a script, SQL by hand)
is announced by PostgreSQL itself (`auth.credential_changes`): the process that hears
it bumps the generations as the unit of work would have. An answer therefore stands
for `HEARD_TTL_SECONDS` only while this process hears those announcements, and was
checked while it did (`hear` moves the epoch each time that changes); otherwise, as on
Citus, where no trigger announces anything, for `TTL_SECONDS`: the bound on a change
made past the API. Without Redis nothing is reused (the admission round trip fails, so
there is no generation to trust). API keys are not kept here: their check is a lookup
of their own.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session

from tenantry.models import AuthSession, Membership, Tenant, User

TTL_SECONDS = 30.0
HEARD_TTL_SECONDS = 600.0
MAX_ENTRIES = 50_000

_USERS = "credentials_users_changed"
_TENANTS = "credentials_tenants_changed"

K = TypeVar("K")
V = TypeVar("V")
Key = tuple[uuid.UUID, uuid.UUID, uuid.UUID | None]
Generations = tuple[bytes | None, bytes | None]


def user_generation_key(user_id: uuid.UUID) -> str:
    return f"auth:gen:u:{user_id}"


def tenant_generation_key(tenant_id: uuid.UUID) -> str:
    return f"auth:gen:t:{tenant_id}"


class _Hearing:
    heard = False
    epoch = 0


_hearing = _Hearing()


def hear(heard: bool) -> None:
    """Whether this process hears credential changes now (`auth.credential_changes`)."""
    if heard != _hearing.heard:
        _hearing.heard = heard
        _hearing.epoch += 1


def hearing_epoch() -> int | None:
    """Read before a check: the hearing that will have covered it, if any."""
    return _hearing.epoch if _hearing.heard else None


class Kept(Generic[K, V]):
    """Answers kept per key, the least recently used out first past `max_entries`: the
    credential check's here, `GET /users/me`'s in `users.me_cache`.

    An answer stands for `heard_ttl_seconds` if it was put under the hearing epoch that
    still holds (every change since its check was heard), else for `ttl_seconds`."""

    def __init__(
        self,
        max_entries: int,
        ttl_seconds: float = TTL_SECONDS,
        heard_ttl_seconds: float = HEARD_TTL_SECONDS,
    ) -> None:
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self.heard_ttl_seconds = heard_ttl_seconds
        self._entries: OrderedDict[K, tuple[V, float, int | None]] = OrderedDict()

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, stored_at, epoch = entry
        heard = epoch is not None and _hearing.heard and epoch == _hearing.epoch
        if time.monotonic() - stored_at > (self.heard_ttl_seconds if heard else self.ttl_seconds):
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V, epoch: int | None = None) -> None:
        """`epoch`: `hearing_epoch()` as read before the check that produced `value`."""
        self._entries[key] = (value, time.monotonic(), epoch)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def drop(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()


# (session, user, tenant) → the credential check's row and the generations it is valid
# under (None: unconfirmed).
principals: Kept[Key, tuple[dict[str, Any], Generations | None]] = Kept(MAX_ENTRIES)


def note_writes(session: Session, objects: tuple[object, ...]) -> None:
    """Note the users and tenants whose answers a flush of `objects` changes. A new
    auth session changes none: no answer can be kept for a session before its row."""
    for obj in objects:
        if isinstance(obj, User):
            note_user(session, obj.id)
        elif isinstance(obj, Membership) or (
            isinstance(obj, AuthSession) and obj not in session.new
        ):
            note_user(session, obj.user_id)
        elif isinstance(obj, Tenant):
            session.info.setdefault(_TENANTS, set()).add(obj.id)


def note_user(session: Session, user_id: uuid.UUID) -> None:
    """For a bulk statement on `users`, `auth_sessions` or `memberships` (no flush)."""
    session.info.setdefault(_USERS, set()).add(user_id)


def take_changed(session: Session) -> list[str]:
    """The generation keys this unit of work must bump once committed."""
    users: set[uuid.UUID] = session.info.pop(_USERS, set())
    tenants: set[uuid.UUID] = session.info.pop(_TENANTS, set())
    return [user_generation_key(u) for u in users] + [tenant_generation_key(t) for t in tenants]
