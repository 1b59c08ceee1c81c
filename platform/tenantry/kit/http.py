"""Where things live: the API's prefix, `Location` headers and links in emails."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request

from tenantry.config import Settings

API_PREFIX = "/api/v1"
# The longest URL a client may hand us to call later (a webhook's target): checked by
# the schema at the edge and again before each send.
MAX_URL_LENGTH = 2048
# An `Idempotency-Key`: visible ASCII, spaces only inside (checked by the middleware,
# stated in the OpenAPI document).
IDEMPOTENCY_KEY_PATTERN = r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?"


def api_path(*segments: object) -> str:
    """`/api/v1/<segments…>`, the path of an API resource."""
    return "/".join([API_PREFIX, *map(str, segments)])


def location(request: Request, *segments: object) -> str:
    """A `Location` header for an API resource, behind the app's root path if any."""
    root: str = request.scope.get("root_path", "")
    return root + api_path(*segments)


def public_link(settings: Settings, path: str, **query: str) -> str:
    """A link for people (emails), on `PUBLIC_URL` whether or not it ends in `/`."""
    url = settings.public_url.rstrip("/") + path
    return f"{url}?{urlencode(query)}" if query else url
