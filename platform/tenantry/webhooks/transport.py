"""The wire under webhook delivery: one httpx client per process, and a capped POST.

A module of its own so that httpx is imported by the first send and not by every
process that imports `webhooks.delivery` (the API does, for its statements): httpx
imports its command line (click, rich, pygments) with itself, a third of a second of
CPU at every API and worker start, most of which never send a webhook.
"""

from __future__ import annotations

import httpx

HTTPError = httpx.HTTPError

_client: httpx.AsyncClient | None = None


def client() -> httpx.AsyncClient:
    """One client per process. No redirects, no proxy from the environment, and no
    keep-alive: connections go to a pinned address with the name only in Host and SNI,
    and a kept connection could otherwise be reused for another name on that address."""
    global _client
    if _client is None:
        _client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )
    return _client


async def close_client() -> None:
    global _client
    if _client is not None:
        await _client.aclose()
        _client = None


async def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout_seconds: float,
    sni_hostname: str | None,
    limit: int,
) -> tuple[int, bytes]:
    """POST `body`; the status and at most `limit` bytes of the answer (the rest unread).
    Raises `HTTPError` or `OSError` when no answer comes."""
    request = client().build_request(
        "POST",
        url,
        content=body,
        headers=headers,
        timeout=timeout_seconds,
        extensions={"sni_hostname": sni_hostname} if sni_hostname else {},
    )
    response = await client().send(request, stream=True)
    try:
        kept = bytearray()
        async for chunk in response.aiter_raw():
            kept += chunk
            if len(kept) >= limit:
                break
    finally:
        await response.aclose()
    return response.status_code, bytes(kept[:limit])
