"""Schemathesis hooks for the live contract run (loaded through SCHEMATHESIS_HOOKS).

They teach the generator what a schema cannot carry, and nothing else. Emails come from
schemathesis' own `format: email` strategy, as an outside run's do (the server accepts
every address it draws, `.test` domains included: `kit.schemas.check_email`).

- values only the server can mint are not invented for schema-valid cases: a `cursor`
  is an opaque `next_cursor` a list returned, and an `Idempotency-Key` is fresh per
  request (a repeated key with another body is, by design, a 422);
- JSON Schema counts `4.0` as an integer; our integers are strict (`2.0` is a 422, as
  a generated client never sends it), so schema-valid cases send integers as integers.

NUL and unpaired surrogates are kept out of strings by `schemathesis.toml` (`[generation]`):
PostgreSQL text cannot hold them and the server refuses them with 422.
"""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis


def _integers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integers(item) for item in value]
    return value


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    if case.query and "cursor" in case.query:
        case.query = {k: v for k, v in case.query.items() if k != "cursor"}
    if isinstance(case.body, dict | list):
        case.body = _integers(case.body)
    if case.method.upper() == "POST":
        case.headers = {**(case.headers or {}), "Idempotency-Key": uuid.uuid4().hex}
