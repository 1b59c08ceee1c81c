"""The pages email links open outside production: `/verify-email`, `/invitations/accept`
and `/reset-password`, each a small form that POSTs the token to the API.

In production PUBLIC_URL is the product's own front end, which serves these paths; in
development nothing did, so every link in a welcome or invitation mail was a 404. These
are plain Starlette routes: no session, no unit of work, not in the OpenAPI document.
"""

from __future__ import annotations

import html
import json

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}"
    "input,button{font-size:1rem;padding:.4rem;margin:.2rem 0;width:100%}"
    "code{word-break:break-all}#out{white-space:pre-wrap;background:#f4f4f4;padding:.6rem}"
)

# Shared by the three pages: POST JSON, show the status and the body (problem+json too).
_SCRIPT = """
async function call(path, body, token) {
  const headers = {"Content-Type": "application/json"};
  if (token) headers["Authorization"] = "Bearer " + token;
  const r = await fetch("/api/v1" + path, {method: "POST", headers, body: JSON.stringify(body)});
  const text = await r.text();
  document.getElementById("out").textContent = r.status + " " + r.statusText + "\\n" + text;
  return r.ok && text ? JSON.parse(text) : null;
}
async function login(username, password) {
  const r = await fetch("/api/v1/auth/login", {method: "POST",
    body: new URLSearchParams({username, password})});
  const body = await r.json();
  if (!r.ok) { document.getElementById("out").textContent = r.status + "\\n"
    + JSON.stringify(body, null, 2); return null; }
  return body.access_token;
}
"""


def _js_string(value: str) -> str:
    """A JS string literal that cannot close the <script> element it sits in."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _page(title: str, token: str, api_call: str, form: str, action: str) -> HTMLResponse:
    safe_token = html.escape(token)
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>{_STYLE}</style></head><body>
<h1>{title}</h1>
<p>Development page of Tenantry: it sends the token from your email to
<code>{api_call}</code>. The same call by hand is in the
<a href="/api/docs">API docs</a>.</p>
<p>Token: <code>{safe_token}</code></p>
<form id="f">{form}<button>{title}</button></form>
<pre id="out"></pre>
<script>const TOKEN = {_js_string(token)};{_SCRIPT}
document.getElementById("f").addEventListener("submit", async (e) => {{
  e.preventDefault(); const v = (n) => e.target.elements[n].value; {action}
}});</script></body></html>"""
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})


async def verify_email(request: Request) -> HTMLResponse:
    return _page(
        "Verify your email",
        request.query_params.get("token", ""),
        "POST /api/v1/auth/verify-email",
        "",
        'await call("/auth/verify-email", {token: TOKEN});',
    )


async def accept_invitation(request: Request) -> HTMLResponse:
    return _page(
        "Accept the invitation",
        request.query_params.get("token", ""),
        "POST /api/v1/invitations/accept",
        "<p>Log in as the invited user (sign up first if you have no account):</p>"
        '<input name="username" placeholder="username or email" autocomplete="username">'
        '<input name="password" type="password" placeholder="password"'
        ' autocomplete="current-password">',
        'const t = await login(v("username"), v("password"));'
        ' if (t) await call("/invitations/accept", {token: TOKEN}, t);',
    )


async def reset_password(request: Request) -> HTMLResponse:
    return _page(
        "Reset your password",
        request.query_params.get("token", ""),
        "POST /api/v1/auth/password-reset/confirm",
        '<input name="password" type="password" placeholder="new password"'
        ' autocomplete="new-password">',
        'await call("/auth/password-reset/confirm", {token: TOKEN, new_password: v("password")});',
    )


routes = [
    Route("/verify-email", verify_email, methods=["GET"], include_in_schema=False),
    Route("/invitations/accept", accept_invitation, methods=["GET"], include_in_schema=False),
    Route("/reset-password", reset_password, methods=["GET"], include_in_schema=False),
]
