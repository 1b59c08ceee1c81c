"""Structured logs: one JSON object per line in production, readable lines in development.

Every record passes `RedactingFilter` on its way to our handler, so a password, token,
API key or secret that a careless `logger.info("%s", body)` lets through is masked in
the message, the arguments, the traceback and any `extra` field.

`logging_config()` is a `dictConfig` dict so uvicorn can apply it in every worker
process it spawns (`tenantry serve --workers N`); `configure_logging()` applies it here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import logging.config
import re
import time
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from tenantry.config import Settings
from tenantry.context import job_id_var, request_id_var, tenant_id_var, user_id_var

REDACTED = "[REDACTED]"
ACCESS_LINES_HELD_SECONDS = 0.05
ACCESS_LINES_HELD = 256

# Keys whose values are secrets wherever they appear (JSON bodies, forms, query strings,
# dict reprs, `extra` fields). Matched case-insensitively as a whole key name.
SENSITIVE_KEYS = (
    "password",
    "new_password",
    "current_password",
    "passwd",
    "secret",
    "client_secret",
    "secret_key",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "apikey",
    "x-api-key",
    "x_api_key",
    "key",
    "authorization",
    "cookie",
    "set-cookie",
    "session",
    "smtp_password",
)
_KEYS = "|".join(re.escape(k) for k in sorted(SENSITIVE_KEYS, key=len, reverse=True))
_SENSITIVE_KEY = re.compile(rf"^(?:{_KEYS})$", re.IGNORECASE)

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # "password": "…" in JSON and 'password': '…' in Python reprs.
    (
        re.compile(rf"""(["'])({_KEYS})\1(\s*:\s*)(["'])(?:\\.|(?!\4).)*\4""", re.IGNORECASE),
        rf"\1\2\1\3\4{REDACTED}\4",
    ),
    # Header lines: `Authorization: Bearer x`, `X-API-Key: tnt_…`, `Cookie: a=b; c=d`.
    (
        re.compile(r"\b(authorization|x-api-key|cookie|set-cookie)(\s*[:=]\s*)[^\r\n]+", re.I),
        rf"\1\2{REDACTED}",
    ),
    # Query strings and forms: ?token=…&password=….
    (re.compile(rf"(?<![\w-])({_KEYS})=([^&\s\"'<>]+)", re.IGNORECASE), rf"\1={REDACTED}"),
    # Credentials by their shape, wherever they appear.
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE), rf"\1 {REDACTED}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"\btnt_[A-Za-z0-9_-]+"), f"tnt_{REDACTED}"),
    # Passwords inside URLs: scheme://user:password@host.
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@", re.IGNORECASE), rf"\1{REDACTED}@"),
]


# Every pattern above needs one of these literally (a key name, a scheme, a token
# prefix, `://`), so text without any of them is returned as is. Substring tests on the
# lower-cased text: a case-insensitive regex alternation of them cost 12 µs on a URL
# path, run three times on every access-log line.
_ALL_TRIGGERS = {*(key.lower() for key in SENSITIVE_KEYS), "bearer", "basic", "eyj", "tnt_", "://"}
# "key" already finds "api_key" and "token" finds "access_token": test only the shortest.
_TRIGGERS = tuple(
    sorted(t for t in _ALL_TRIGGERS if not any(o != t and o in t for o in _ALL_TRIGGERS))
)


def redact(text: str) -> str:
    """Mask every secret we can recognise by its key or its shape."""
    lowered = text.lower()
    if not any(trigger in lowered for trigger in _TRIGGERS):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(key: str, value: Any) -> Any:
    if _SENSITIVE_KEY.match(key):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value("", v) for v in value]
    return value


# Attributes every LogRecord has; anything else came in through `extra=`.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime"}
)


class RedactingFilter(logging.Filter):
    """Formats the message and traceback once, masked, before any formatter sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                setattr(record, key, redact_value(key, value))
        record._redacted = True
        return True


_CONTEXT_VARS = {
    "request_id": request_id_var,
    "tenant_id": tenant_id_var,
    "user_id": user_id_var,
    "job_id": job_id_var,
}


class ContextFilter(logging.Filter):
    """Stamps the request, tenant, user and job of the current context on every record."""

    def __init__(self, component: str = "api") -> None:
        super().__init__()
        self.component = component

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _CONTEXT_VARS.items():
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        record.component = self.component
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v
        for k, v in vars(record).items()
        if k not in _RECORD_ATTRS and not k.startswith("_") and v is not None
    }


def _head(at: datetime, level: str, logger: str, message: str) -> dict[str, Any]:
    """What every JSON line starts with."""
    return {
        "ts": at.isoformat(timespec="milliseconds"),
        "level": level.lower(),
        "logger": logger,
        "message": message,
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what log shippers (Loki, CloudWatch, ELK) index.

    Kept over python-json-logger for its shape (UTC ISO `ts`, lower-case `level`,
    redacted exceptions) at no cost: `bench/log_formatter.py` (quiet machine) formats an
    access line in 4.3 µs here, 5.3 µs with python-json-logger's orjson formatter and
    9.0 µs with its json one.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry = _head(
            datetime.fromtimestamp(record.created, UTC),
            record.levelname,
            record.name,
            record.getMessage(),
        )
        entry.update(_extras(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return orjson.dumps(entry, default=str).decode()


class JsonLinesHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The JSON lines handler `logging_config` installs, which can also write an access
    line straight from its fields.

    A request's access line through `logging` costs a LogRecord, two filters, a scan
    of the record's attributes for extras and a formatter call: about 45 µs on the
    2-core bench machine, 4 % of a cached read (py-spy under load). Where this handler,
    with its context and redaction filters and the JSON formatter, is the only place
    the line goes, `write_access` writes the same JSON object (same keys, same order,
    tests/observability/test_logging.py compares them) in one step; anywhere else (a
    test's capture handler, an added filter, the development format) the line takes
    the ordinary path.

    Access lines are held back for up to `ACCESS_LINES_HELD_SECONDS`
    (`ACCESS_LINES_HELD` at most) and written together, as nginx's `access_log …
    buffer= flush=` does: a write and a flush per line were 6 % of a cached read's CPU
    (py-spy under `wrk -c32`). Any other record, a flush and the handler's close write
    them first, so lines keep their order and none is lost at shutdown; a process
    killed outright loses at most the last 50 ms of access lines.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._pending: list[str] = []

    def as_configured(self) -> bool:
        filters = self.filters
        return (
            type(self.formatter) is JsonFormatter
            and len(filters) == 2
            and type(filters[0]) is ContextFilter
            and type(filters[1]) is RedactingFilter
        )

    def write_access(self, level: int, message: str, fields: dict[str, Any]) -> None:
        context = self.filters[0]
        assert isinstance(context, ContextFilter)
        entry = _head(datetime.now(UTC), logging.getLevelName(level), access_logger.name, message)
        # What ContextFilter and _extras make of the same fields: a missing id taken
        # from the context, then everything that is still None left out.
        for name, value in fields.items():
            if value is None and name in _CONTEXT_VARS:
                value = _CONTEXT_VARS[name].get()
            if value is not None:
                entry[name] = value
        job_id = job_id_var.get()
        if job_id is not None:
            entry["job_id"] = job_id
        entry["component"] = context.component
        pending = self._pending
        pending.append(orjson.dumps(entry, default=str).decode() + self.terminator)
        if len(pending) >= ACCESS_LINES_HELD:
            self.write_pending()
        elif len(pending) == 1:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop to come back: write it now
                self.write_pending()
            else:
                loop.call_later(ACCESS_LINES_HELD_SECONDS, self.write_pending)

    def write_pending(self) -> None:
        """Write the access lines held back, in one write and one flush."""
        pending = self._pending
        if not pending:
            return
        text = "".join(pending)
        pending.clear()
        self.acquire()
        try:
            self.stream.write(text)
            super().flush()
        except Exception:
            self.handleError(logging.makeLogRecord({"msg": text}))
        finally:
            self.release()

    def emit(self, record: logging.LogRecord) -> None:
        self.write_pending()  # lines stay in the order they were logged
        super().emit(record)

    def flush(self) -> None:
        self.write_pending()
        super().flush()

    def close(self) -> None:
        self.write_pending()
        super().close()


class DevFormatter(logging.Formatter):
    """`12:00:01 INFO  tenantry.access  GET /api/v1/projects 200 3.1ms  rid=… tenant=…`."""

    _SHOWN = ("request_id", "tenant_id", "user_id", "job_id")

    def format(self, record: logging.LogRecord) -> str:
        clock = time.strftime("%H:%M:%S", time.localtime(record.created))
        context = " ".join(
            f"{name.removesuffix('_id')}={value}"
            for name in self._SHOWN
            if (value := getattr(record, name, None))
        )
        line = f"{clock} {record.levelname:<7} {record.name}  {record.getMessage()}"
        if context:
            line += f"  [{context}]"
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


# Loggers that are noisy at INFO or could print statement parameters when LOG_LEVEL=DEBUG.
_QUIET = {
    "uvicorn.access": "WARNING",  # replaced by tenantry.access (route templates, no query)
    "sqlalchemy.engine": "WARNING",
    "sqlalchemy.pool": "WARNING",
    "asyncio": "WARNING",
    "httpx": "WARNING",
    "httpcore": "WARNING",
    "aiosmtplib": "WARNING",
    "watchfiles": "WARNING",
}


def logging_config(
    settings: Settings, *, component: str = "api", json: bool | None = None
) -> dict[str, Any]:
    use_json = settings.json_logs if json is None else json
    formatter = JsonFormatter if use_json else DevFormatter
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": ContextFilter, "component": component},
            "redact": {"()": RedactingFilter},
        },
        "formatters": {"default": {"()": formatter}},
        "handlers": {
            "default": {
                "class": f"{__name__}.JsonLinesHandler" if use_json else "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["context", "redact"],
            }
        },
        "root": {"level": level, "handlers": ["default"]},
        "loggers": {
            # uvicorn's own loggers carry their own handlers unless told to propagate.
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            **{
                name: {"level": quiet, "handlers": [], "propagate": True}
                for name, quiet in _QUIET.items()
            },
        },
    }


def configure_logging(
    settings: Settings,
    *,
    component: str = "api",
    json: bool | None = None,
    stream: TextIO | None = None,
) -> None:
    """Install our one handler on the root logger (replacing any previous one)."""
    config = logging_config(settings, component=component, json=json)
    if stream is not None:
        config["handlers"]["default"]["stream"] = stream
    logging.config.dictConfig(config)
    logging.captureWarnings(True)


access_logger = logging.getLogger("tenantry.access")
# Probes and scrapes arrive every few seconds; they stay out of INFO logs.
_QUIET_ROUTES = frozenset({"/health", "/health/ready", "/metrics"})


def log_request(
    *,
    method: str,
    route: str,
    path: str,
    status: int,
    latency_ms: float,
    request_id: str | None,
    tenant_id: str | None,
    user_id: str | None,
) -> None:
    """The one line each request leaves: route template, never the raw query string."""
    level = logging.DEBUG if route in _QUIET_ROUTES else logging.INFO
    if status >= 500:
        level = logging.WARNING
    if not access_logger.isEnabledFor(level):
        return
    # Redacted here, field by field, instead of by `RedactingFilter` (which scans the
    # message and every extra): only the raw path, the client-chosen request id and the
    # route (the raw path when the router only redirects) can carry a secret; the method
    # is one of a fixed set, the ids UUIDs from a verified credential. A route template
    # recurs, so its answer is kept; letters and digits alone (our own request ids) match
    # no pattern of `redact`.
    route = _redact_route(route)
    if request_id and not request_id.isalnum():
        request_id = redact(request_id)
    fields = {
        "method": method,
        "route": route,
        "path": redact(path),
        "status": status,
        "latency_ms": round(latency_ms, 2),
        "request_id": request_id,
        "tenant_id": tenant_id,
        "user_id": user_id,
    }
    handler = _sole_json_handler(level)
    if handler is not None:
        handler.write_access(level, f"{method} {route} {status} {latency_ms:.1f}ms", fields)
        return
    # Made and handled directly: `Logger.log` would walk the stack for a caller (file,
    # line, function) that an access line never shows.
    access_logger.handle(
        access_logger.makeRecord(
            access_logger.name,
            level,
            __file__,
            0,
            "%s %s %d %.1fms",
            (method, route, status, latency_ms),
            None,
            extra={**fields, "_redacted": True},
        )
    )


def _sole_json_handler(level: int) -> JsonLinesHandler | None:
    """Our JSON handler, when it alone (as configured, no other filter on the way) is
    where an access line goes: then the line is written without a LogRecord."""
    if access_logger.filters:
        return None
    logger: logging.Logger | None = access_logger
    while logger is not None and logger is not logging.root:
        # A handler on the way (ours, or a parent's such as `tenantry`) must see it.
        if logger.handlers or not logger.propagate:
            return None
        logger = logger.parent
    handlers = logging.root.handlers
    if len(handlers) != 1:
        return None
    handler = handlers[0]
    if type(handler) is not JsonLinesHandler or not handler.as_configured():
        return None
    return handler if level >= handler.level else None


_redact_route = functools.lru_cache(maxsize=1024)(redact)
