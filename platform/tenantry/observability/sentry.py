"""Sentry error reporting, on when SENTRY_DSN is set, without PII or secrets.

`send_default_pii=False` keeps user IPs, cookies and request bodies out; local variables
are not sent (a `password` argument would be); and `before_send` walks the whole event
and masks whatever still looks like a credential or an email address: query-string
tokens, Authorization / X-API-Key / Cookie headers, password fields, JWTs, `tnt_` keys.
Each event is tagged with the tenant (never a label in metrics, fine as a tag here), the
request id that appears in the logs, and the component (api or worker).
"""

from __future__ import annotations

import logging
import re
import sys
import warnings
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

if TYPE_CHECKING:
    from sentry_sdk.transport import Transport

from tenantry import __version__
from tenantry.config import Settings
from tenantry.context import job_id_var, request_id_var, tenant_id_var
from tenantry.observability.logging import REDACTED, SENSITIVE_KEYS, redact

FILTERED = "[Filtered]"
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_SENSITIVE = frozenset(k.lower().replace("-", "_") for k in SENSITIVE_KEYS) | {
    "email",
    "to_email",
    "x_forwarded_for",
    "proxy_authorization",
}


def _is_sensitive(key: str) -> bool:
    return key.lower().replace("-", "_") in _SENSITIVE


def scrub_text(text: str) -> str:
    return _EMAIL.sub("[email]", redact(text))


def _scrub(value: Any, key: str = "") -> Any:
    if key and _is_sensitive(key):
        return FILTERED
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {k: _scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        # Headers and query strings arrive as [name, value] pairs.
        if len(value) == 2 and isinstance(value[0], str) and _is_sensitive(value[0]):
            return [value[0], FILTERED]
        return [_scrub(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_scrub(list(value)))
    return value


def _scrub_query_string(query: Any) -> Any:
    if isinstance(query, str):
        pairs = parse_qsl(query, keep_blank_values=True)
        return urlencode(
            [(k, FILTERED if _is_sensitive(k) else scrub_text(v)) for k, v in pairs], safe="[]"
        )
    return _scrub(query)


def _tag_context(event: dict[str, Any]) -> None:
    tags = event.setdefault("tags", {})
    for name, var in (
        ("tenant_id", tenant_id_var),
        ("request_id", request_id_var),
        ("job_id", job_id_var),
    ):
        value = var.get()
        if value and name not in tags:
            tags[name] = value


def before_send(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Tag the tenant and request, then mask secrets and emails anywhere in the event."""
    _tag_context(event)
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("cookies", None)
        request.pop("data", None)
        if "query_string" in request:
            request["query_string"] = _scrub_query_string(request["query_string"])
        if isinstance(request.get("url"), str):
            request["url"] = request["url"].split("?", 1)[0]
    event.pop("user", None)
    scrubbed: dict[str, Any] = _scrub(event)
    # Tags we set ourselves are ids, not secrets; keep them readable.
    scrubbed["tags"] = {
        k: (v if k in {"tenant_id", "request_id", "job_id"} else _scrub(v, str(k)))
        for k, v in (event.get("tags") or {}).items()
    }
    return scrubbed


def before_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    return dict(_scrub(crumb))


def init_sentry(settings: Settings, *, component: str, transport: Transport | None = None) -> bool:
    """Initialise once per process; a no-op without SENTRY_DSN or when already active."""
    if not settings.sentry_dsn:
        return False
    # Imported only when reporting is on: sentry_sdk and its integrations are a tenth of
    # the API's import time, for nothing without a DSN.
    import sentry_sdk

    if sentry_sdk.get_client().is_active() and transport is None:
        return True
    with warnings.catch_warnings():
        # sentry-sdk 2.7x deprecates send_default_pii for `data_collection`; False is
        # also what the new option resolves to, and it stays readable in the options.
        warnings.filterwarnings("ignore", "The send_default_pii option", DeprecationWarning)
        _init(settings, transport)
    sentry_sdk.get_global_scope().set_tag("component", component)
    return True


def _init(settings: Settings, transport: Transport | None) -> None:
    import sentry_sdk
    from sentry_sdk.integrations.arq import ArqIntegration
    from sentry_sdk.integrations.fastapi import FastApiIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration
    from sentry_sdk.integrations.redis import RedisIntegration
    from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration
    from sentry_sdk.integrations.starlette import StarletteIntegration
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.environment.value,
        release=settings.release or f"tenantry@{__version__}",
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
        traces_sample_rate=settings.sentry_traces_sample_rate,
        integrations=[
            StarletteIntegration(),
            FastApiIntegration(),
            SqlalchemyIntegration(),
            RedisIntegration(),
            ArqIntegration(),
            LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
        ],
        event_scrubber=EventScrubber(
            denylist=[*DEFAULT_DENYLIST, *SENSITIVE_KEYS, "email"], recursive=True
        ),
        before_send=before_send,  # type: ignore[arg-type]
        before_send_transaction=before_send,  # type: ignore[arg-type]
        before_breadcrumb=before_breadcrumb,
        transport=transport,
    )


def capture_exception(exc: BaseException) -> None:
    """Report an exception we answered ourselves (no-op when Sentry is off)."""
    sentry_sdk = sys.modules.get("sentry_sdk")  # never imported: never initialised
    if sentry_sdk is not None and sentry_sdk.get_client().is_active():
        sentry_sdk.capture_exception(exc)


__all__ = ["REDACTED", "before_send", "capture_exception", "init_sentry", "scrub_text"]
