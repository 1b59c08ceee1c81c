"""`Idempotency-Key` on every POST, as one pure ASGI middleware for the whole API.

A POST that carries the header is claimed in Redis before the app sees it:

- first time: an in-flight marker is written atomically (`SET NX` in a Lua script),
  the app runs, and its answer (status, `Content-Type`/`Location`/`ETag`/
  `Cache-Control`, body) is kept for 24 h with a hash of the method, path, query and
  body. 2xx and deterministic 4xx answers are kept; 5xx, 401, 403, 408, 425 and 429
  (which a retry may well change) release the key so the client can retry;
- same key, same request, answer kept: the answer is replayed with
  `Idempotent-Replayed: true` and the app does not run (nothing is created twice);
- same key, another request: 422;
- same key while the first is still running: 409 with `Retry-After`.

Keys are scoped to who sends them, so one client can never replay another's answer:
`t:{tenant}:idem:u:{user}:…` for a user's access token (under the tenant prefix, so a
tenant purge deletes them), `idem:u:{user}:…` for a token without a tenant,
`idem:k:{hash of the key}:…` for an API key (a key is bound to one tenant), and
`idem:ip:{client ip}:…` for anonymous POSTs (sign-up, login, password reset), where the
body hash (it contains the credentials) keeps strangers behind one NAT apart. A bad or
expired token gets no idempotency at all: the app answers 401 anyway.

If Redis is unavailable the request runs without idempotency (fail open, logged and
counted as `cache="idempotency", result="bypass"`): a retry during an outage may
repeat a create, which is the lesser harm than refusing every write.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
from typing import Any

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis import exceptions as redis_exc
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantry.auth import tokens
from tenantry.auth.api_key import API_KEY_PREFIX
from tenantry.config import Settings
from tenantry.errors import problem
from tenantry.kit.http import IDEMPOTENCY_KEY_PATTERN
from tenantry.observability.metrics import CACHE_REQUESTS

logger = logging.getLogger("tenantry.idempotency")

HEADER = b"idempotency-key"
TTL_SECONDS = 24 * 3600
# Long enough for any request to finish (the statement timeout is 15 s); a process that
# dies mid-request frees the key when this runs out.
IN_FLIGHT_TTL_SECONDS = 60
MAX_KEY_LENGTH = 255
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
_KEPT_HEADERS = {b"content-type", b"location", b"etag", b"cache-control"}
_NOT_KEPT = {401, 403, 408, 425, 429}

# KEYS[1] = record key. Claim it with ARGV[1] for ARGV[2] seconds, or return what is there.
_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
"""


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def key_scope(scope: Scope, settings: Settings) -> str | None:
    """Whose key space this request's key lives in; None when the credential is bad."""
    authorization = _header(scope, b"authorization")
    credential = None
    if authorization:
        kind, _, value = authorization.partition(" ")
        if kind.lower() != "bearer" or not value.strip():
            return None
        credential = value.strip()
    else:
        credential = _header(scope, b"x-api-key")
    if credential is None:
        client = scope.get("client")
        return f"idem:ip:{client[0] if client else 'unknown'}:"
    if credential.startswith(API_KEY_PREFIX):
        return f"idem:k:{tokens.hash_secret(settings, credential)[:32]}:"
    try:
        claims = tokens.decode_access_token(settings, credential)
    except tokens.InvalidToken:
        return None
    if claims.tenant_id is not None:
        return f"t:{claims.tenant_id}:idem:u:{claims.user_id}:"
    return f"idem:u:{claims.user_id}:"


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        key = _header(scope, HEADER)
        if key is None:
            await self.app(scope, receive, send)
            return
        if len(key) > MAX_KEY_LENGTH or not _KEY.fullmatch(key):
            response = problem(
                400,
                f"Idempotency-Key must be 1–{MAX_KEY_LENGTH} visible ASCII characters",
                code="bad-request",
            )
            await response(scope, receive, send)
            return
        state = scope["app"].state
        owner = key_scope(scope, state.settings)
        if owner is None:
            await self.app(scope, receive, send)
            return
        sealer = _Sealer(state.settings, key)
        await self._idempotent(scope, receive, send, state.redis, owner + _digest(key), sealer)

    async def _idempotent(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        redis: Any,
        record_key: str,
        sealer: _Sealer,
    ) -> None:
        body, disconnected = await _read_body(receive)
        if disconnected:
            return
        fingerprint = _fingerprint(scope, body)
        marker = orjson.dumps({"state": "in_flight", "fingerprint": fingerprint})
        try:
            existing = await redis.eval(_CLAIM, 1, record_key, marker, str(IN_FLIGHT_TTL_SECONDS))
        except (redis_exc.RedisError, OSError) as exc:
            # Debug: the Redis client's breaker logs the outage once, then a count.
            logger.debug("idempotency bypassed, Redis unavailable: %s", type(exc).__name__)
            CACHE_REQUESTS.labels("idempotency", "bypass").inc()
            await self.app(scope, _replay_body(body), send)
            return
        if existing is not None:
            await _answer_existing(scope, send, orjson.loads(existing), fingerprint, sealer)
            return
        CACHE_REQUESTS.labels("idempotency", "miss").inc()
        await self._run_and_keep(scope, body, send, redis, record_key, fingerprint, sealer)

    async def _run_and_keep(
        self,
        scope: Scope,
        body: bytes,
        send: Send,
        redis: Any,
        record_key: str,
        fingerprint: str,
        sealer: _Sealer,
    ) -> None:
        status = 500
        headers: list[list[str]] = []
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers.extend(
                    [k.decode("latin-1"), v.decode("latin-1")]
                    for k, v in message.get("headers", [])
                    if k.lower() in _KEPT_HEADERS
                )
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, _replay_body(body), capture)
        finally:
            keep = status < 500 and status not in _NOT_KEPT
            try:
                if keep:
                    record = {
                        "state": "done",
                        "fingerprint": fingerprint,
                        "status": status,
                        "headers": headers,
                        "body": sealer.seal(b"".join(chunks)),
                    }
                    await redis.set(record_key, orjson.dumps(record), ex=TTL_SECONDS)
                else:
                    await redis.delete(record_key)
            except (redis_exc.RedisError, OSError) as exc:
                # The in-flight marker expires on its own; the answer is already sent.
                logger.debug("idempotency record not saved: %s", type(exc).__name__)


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    # The HTTP shell outside us caps the size (413), so buffering here is bounded.
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", True
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts), False


def _replay_body(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _fingerprint(scope: Scope, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (scope["method"], scope["path"], scope.get("query_string", b"").decode()):
        digest.update(part.encode() + b"\0")
    digest.update(body)
    return digest.hexdigest()


async def _answer_existing(
    scope: Scope, send: Send, record: dict[str, Any], fingerprint: str, sealer: _Sealer
) -> None:
    if record.get("fingerprint") != fingerprint:
        CACHE_REQUESTS.labels("idempotency", "mismatch").inc()
        response = problem(
            422,
            "This Idempotency-Key was already used with a different request",
            code="idempotency-key-reused",
            errors=[{"field": "header.idempotency-key", "message": "used for another request"}],
        )
    elif record.get("state") != "done":
        CACHE_REQUESTS.labels("idempotency", "in_flight").inc()
        response = problem(
            409,
            "A request with this Idempotency-Key is still in progress",
            code="idempotency-in-progress",
            headers={"Retry-After": "1"},
        )
    else:
        CACHE_REQUESTS.labels("idempotency", "hit").inc()
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in record["headers"]]
        body = sealer.open(record["body"])
        headers.append((b"content-length", str(len(body)).encode()))
        headers.append((b"idempotent-replayed", b"true"))
        await send({"type": "http.response.start", "status": record["status"], "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return

    async def no_body() -> Message:
        return {"type": "http.disconnect"}

    await response(scope, no_body, send)


class _Sealer:
    """Encrypts kept answers (AES-GCM) under a key derived from SECRET_KEY and the
    client's own Idempotency-Key, which is stored only as a hash.

    A kept answer can carry a credential (a login's tokens, a new API key shown once),
    and credentials live only as hashes at rest: Redis alone, or SECRET_KEY alone, is
    not enough to read one back; only the client that holds the key can replay it.
    """

    def __init__(self, settings: Settings, idempotency_key: str) -> None:
        secret = settings.secret_key.get_secret_value().encode()
        material = hmac.new(secret, b"idempotency:" + idempotency_key.encode(), hashlib.sha256)
        self._aead = AESGCM(material.digest())

    def seal(self, body: bytes) -> str:
        nonce = os.urandom(12)
        return base64.b64encode(nonce + self._aead.encrypt(nonce, body, None)).decode()

    def open(self, sealed: str) -> bytes:
        raw = base64.b64decode(sealed)
        return self._aead.decrypt(raw[:12], raw[12:], None)
