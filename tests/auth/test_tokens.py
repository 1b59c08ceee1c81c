"""Access tokens from the attacker's side: every forgery is a 401, never a 500."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from pydantic import SecretStr

from tenantry.auth import tokens
from tenantry.config import Settings


def _claims(settings: Settings, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": "2b1d4f0e-8a43-4f6c-9d51-0c6d1b2e9a10",
        "tid": None,
        "role": None,
        "sid": "7f3e2a1b-5c4d-4e6f-8a9b-0c1d2e3f4a5b",
        "jti": "x",
        "iat": now,
        "exp": now + 60,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "type": "access",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not ...}


def _sign(settings: Settings, claims: dict[str, object], key: str | None = None) -> str:
    return jwt.encode(claims, key or settings.secret_key.get_secret_value(), "HS256")


class TestDecodeAccessToken:
    def test_round_trip(self, settings: Settings) -> None:
        token = _sign(settings, _claims(settings))
        assert str(tokens.decode_access_token(settings, token).user_id).startswith("2b1d4f0e")

    @pytest.mark.parametrize(
        "overrides",
        [
            {"exp": int(time.time()) - 5},
            {"exp": ...},
            {"iat": ...},
            {"aud": "someone-else"},
            {"iss": "evil"},
            {"type": "reset"},
            {"type": ...},
            {"sub": "not-a-uuid"},
            {"sid": ...},
        ],
        ids=[
            "expired",
            "no-exp",
            "no-iat",
            "aud",
            "iss",
            "reset-type",
            "no-type",
            "bad-sub",
            "no-sid",
        ],
    )
    def test_rejects(self, settings: Settings, overrides: dict[str, object]) -> None:
        token = _sign(settings, _claims(settings, **overrides))
        with pytest.raises(tokens.InvalidToken):
            tokens.decode_access_token(settings, token)

    def test_rejects_wrong_key(self, settings: Settings) -> None:
        token = _sign(settings, _claims(settings), key="another-key-that-is-long-enough-000000")
        with pytest.raises(tokens.InvalidToken):
            tokens.decode_access_token(settings, token)

    def test_rejects_alg_none(self, settings: Settings) -> None:
        header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=")
        body = base64.urlsafe_b64encode(json.dumps(_claims(settings)).encode()).rstrip(b"=")
        with pytest.raises(tokens.InvalidToken):
            tokens.decode_access_token(settings, f"{header.decode()}.{body.decode()}.")

    def test_rejects_tampered_payload(self, settings: Settings) -> None:
        head, _, sig = _sign(settings, _claims(settings)).split(".")
        forged = base64.urlsafe_b64encode(
            json.dumps(_claims(settings, role="owner")).encode()
        ).rstrip(b"=")
        with pytest.raises(tokens.InvalidToken):
            tokens.decode_access_token(settings, f"{head}.{forged.decode()}.{sig}")


class TestVerifiedTokenCache:
    def test_remembered_token_still_expires(
        self, settings: Settings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        token = _sign(settings, _claims(settings, exp=int(time.time()) + 5))
        tokens.decode_access_token(settings, token)  # verified and remembered
        later = time.time() + 6
        monkeypatch.setattr(tokens.time, "time", lambda: later)
        with pytest.raises(tokens.InvalidToken):
            tokens.decode_access_token(settings, token)

    def test_remembered_token_is_refused_under_another_key(self, settings: Settings) -> None:
        token = _sign(settings, _claims(settings))
        tokens.decode_access_token(settings, token)
        rotated = settings.model_copy(update={"secret_key": SecretStr("y" * 40)})
        with pytest.raises(tokens.InvalidToken):
            tokens.decode_access_token(rotated, token)


def test_hash_secret_is_keyed(settings: Settings) -> None:
    other = settings.model_copy(update={"secret_key": SecretStr("x" * 40)})
    assert tokens.hash_secret(settings, "abc") != tokens.hash_secret(other, "abc")
    assert tokens.hash_secret(settings, "abc") == tokens.hash_secret(settings, "abc")


class TestClaimTypes:
    """Signed with the real key, but a claim of the wrong JSON type: 401, not a 500
    (issue #15, item 6: `tid` an int and `sid` a list raised AttributeError)."""

    @pytest.mark.parametrize(
        "overrides",
        [
            {"tid": 5},
            {"tid": ["x"]},
            {"tid": {"a": 1}},
            {"sid": ["7f3e2a1b-5c4d-4e6f-8a9b-0c1d2e3f4a5b"]},
            {"sid": 7},
            {"sub": 12},
            {"sub": None},
            {"role": ["owner"]},
            {"jti": {"x": 1}},
            {"tid": True},
        ],
    )
    def test_refused(self, settings: Settings, overrides: dict[str, object]) -> None:
        token = _sign(settings, _claims(settings, **overrides))
        with pytest.raises(tokens.InvalidToken):
            tokens.decode_access_token(settings, token)

    async def test_401_over_http(self, client: object, settings: Settings) -> None:
        import httpx

        assert isinstance(client, httpx.AsyncClient)
        for overrides in ({"tid": 5}, {"sid": ["a"]}):
            token = _sign(settings, _claims(settings, **overrides))
            response = await client.get(
                "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 401
            # The idempotency layer decodes the token too, before the app.
            response = await client.post(
                "/api/v1/projects",
                json={"name": "x"},
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k1"},
            )
            assert response.status_code == 401
