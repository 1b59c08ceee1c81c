"""Endpoint secrets: made here, shown once, sealed at rest, used only to sign.

A secret is `whsec_` + base64 of 32 random bytes, the Standard Webhooks format, so any
of its libraries verifies our signatures. The API must be able to sign with it later
but never show it again, so it is stored sealed: AES-GCM under a key derived from
SECRET_KEY (as `idempotency` derives its keys), with the endpoint's id as associated
data, so a sealed value copied onto another endpoint's row does not open. A database
dump alone reveals no secret; changing SECRET_KEY makes every endpoint need a rotation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import uuid
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from standardwebhooks import Webhook

from tenantry.config import Settings

PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


class SealedSecretError(Exception):
    """A sealed secret that does not open (SECRET_KEY changed, or the row was tampered)."""


class Sealer:
    def __init__(self, settings: Settings) -> None:
        key = settings.secret_key.get_secret_value().encode()
        self._aead = AESGCM(hmac.new(key, b"webhook-endpoint-secret", hashlib.sha256).digest())

    def seal(self, endpoint_id: uuid.UUID, secret: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), endpoint_id.bytes)
        return base64.b64encode(nonce + sealed).decode()

    def open(self, endpoint_id: uuid.UUID, sealed: str) -> str:
        raw = base64.b64decode(sealed)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], endpoint_id.bytes).decode()
        except InvalidTag:
            raise SealedSecretError(f"endpoint {endpoint_id}: secret does not open") from None


def signature_header(secrets_: list[str], msg_id: str, timestamp: datetime, body: str) -> str:
    """`v1,<sig>` per secret, space-separated (two while a rotated-out secret still signs)."""
    at = timestamp.astimezone(UTC)
    return " ".join(Webhook(secret).sign(msg_id, at, body) for secret in secrets_)
