"""`tenantry seed` / `tenantry dev --seed`: a demo operator, a tenant with an owner, an
admin and a member, two projects with tasks, and a note on how to log in.

Accounts are written straight to the database (verified, no welcome mail), as
`create-superuser` does; everything else goes through the running API, so the demo
exercises what a client would do, invitations accepted with the token from dev mail
included. Running it again changes nothing that already exists.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenantry.devtools.mail import find_token
from tenantry.kit.http import API_PREFIX

PASSWORD = "Demo-password-1"  # noqa: S105  (demo accounts in development only)
TENANT_NAME, TENANT_SLUG = "Acme Demo", "acme-demo"
OPERATOR = ("operator@example.com", "operator", "Olga Operator")
OWNER = ("owner@example.com", "owner", "Oscar Owner")
MEMBERS = (
    ("alice@example.com", "alice", "Alice Admin", "admin"),
    ("bob@example.com", "bob", "Bob Member", "member"),
)
PROJECTS = {
    "Website relaunch": [
        ("Write the copy", "doing", 2),
        ("Pick a colour scheme", "todo", 3),
        ("Ship it", "todo", 1),
    ],
    "Onboarding": [
        ("Welcome email", "done", 2),
        ("First-run checklist", "todo", 2),
    ],
}


class SeedError(RuntimeError):
    """The API refused a step, or a mail never came; the message says which."""


@dataclass
class SeedResult:
    api_url: str
    tenant_id: str

    def how_to_log_in(self) -> str:
        people = ", ".join(f"{u} ({r})" for _, u, _, r in MEMBERS)
        return "\n".join(
            [
                f"demo accounts, all with the password {PASSWORD}:",
                f"              operator (platform operator), owner (owner of {TENANT_SLUG}), "
                f"{people}",
                f"            curl -s -X POST {self.api_url}{API_PREFIX}/auth/login "
                f"-d username=owner -d password={PASSWORD} -d tenant={TENANT_SLUG}",
            ]
        )


class _Api:
    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/") + API_PREFIX

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: dict[str, Any] | None = None,
        form: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200, 201, 204),
    ) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        data = None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(  # noqa: S310  (our own http URL)
            self.base + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                status, raw = int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise SeedError(f"{method} {self.base}{path}: {exc}") from None
        payload = json.loads(raw) if raw else None
        if status not in ok:
            detail = payload.get("detail") if isinstance(payload, dict) else raw[:200]
            raise SeedError(f"{method} {path} answered {status}: {detail}")
        return status, payload

    def login(self, username: str, tenant: str | None = None) -> str:
        form = {"username": username, "password": PASSWORD}
        if tenant:
            form["tenant"] = tenant
        _, pair = self.call("POST", "/auth/login", form=form)
        return str(pair["access_token"])


async def _ensure_users() -> None:
    from tenantry.config import get_settings
    from tenantry.db import Database
    from tenantry.errors import Conflict
    from tenantry.users.schemas import UserCreate
    from tenantry.users.service import user as user_service

    settings = get_settings()
    db = Database.from_settings(settings)
    people = [(*OPERATOR, True), (*OWNER, False)] + [(e, u, n, False) for e, u, n, _ in MEMBERS]
    try:
        for email, username, name, superuser in people:
            data = UserCreate(email=email, username=username, password=PASSWORD, full_name=name)
            try:
                async with db.session_scope() as session:
                    await user_service.create(
                        session,
                        settings,
                        data,
                        is_superuser=superuser,
                        verified=True,
                        welcome=False,
                    )
            except Conflict:
                pass  # seeded before
    finally:
        await db.dispose()


def seed(*, api_url: str | None, mail_dir: Path | None) -> SeedResult:
    from tenantry.config import get_settings

    settings = get_settings()
    api_url = api_url or settings.public_url
    mail_dir = mail_dir or (Path(settings.mail_sink_dir) if settings.mail_sink_dir else None)
    asyncio.run(_ensure_users())
    api = _Api(api_url)

    owner = api.login(OWNER[1])
    status, created = api.call(
        "POST",
        "/tenants",
        token=owner,
        ok=(201, 409),
        body={"name": TENANT_NAME, "slug": TENANT_SLUG},
    )
    if status == 409:
        owner = api.login(OWNER[1], TENANT_SLUG)
        _, tenant = api.call("GET", "/tenant", token=owner)
        tenant_id = str(tenant["id"])
    else:
        tenant_id = str(created["id"])
        owner = api.login(OWNER[1], TENANT_SLUG)

    for email, username, _, role in MEMBERS:
        status, _ = api.call(
            "POST", "/invitations", token=owner, ok=(201, 409), body={"email": email, "role": role}
        )
        if status == 409:
            continue  # a member already (or invited by an earlier, interrupted seed)
        if mail_dir is None:
            raise SeedError("invitations need the dev mail sink (MAIL_SINK_DIR) to be read")
        found = find_token(mail_dir, email, subject="invited", wait=60)
        if found is None:
            raise SeedError(f"no invitation email for {email} arrived in {mail_dir} within 60 s")
        api.call("POST", "/invitations/accept", token=api.login(username), body={"token": found[0]})

    _, members = api.call("GET", "/members?limit=100", token=owner)
    ids = [str(m["user_id"]) for m in members["items"]]
    _, existing = api.call("GET", "/projects?limit=100", token=owner)
    names = {p["name"] for p in existing["items"]}
    for number, (name, tasks) in enumerate(PROJECTS.items()):
        if name in names:
            continue
        _, project = api.call(
            "POST",
            "/projects",
            token=owner,
            body={"name": name, "description": f"Demo project {number + 1}"},
        )
        for index, (title, status_, priority) in enumerate(tasks):
            api.call(
                "POST",
                f"/projects/{project['id']}/tasks",
                token=owner,
                body={
                    "title": title,
                    "status": status_,
                    "priority": priority,
                    "assignee_id": ids[index % len(ids)] if ids else None,
                },
            )
    return SeedResult(api_url=api_url, tenant_id=tenant_id)
