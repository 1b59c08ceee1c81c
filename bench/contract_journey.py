"""The main journey of the API contract against a running server: `python bench/contract_journey.py URL`.

Prints each step's status and the headers the contract names; exits non-zero on the
first deviation. Used once against `tenantry serve` on real PostgreSQL and Redis.
"""

from __future__ import annotations

import sys
import time
import uuid

import httpx

SECURITY = ("x-content-type-options", "x-frame-options", "referrer-policy", "x-request-id")


def check(response: httpx.Response, status: int, *headers: str) -> httpx.Response:
    missing = [h for h in (*SECURITY, *headers) if h not in response.headers]
    label = f"{response.request.method} {response.request.url.path}"
    print(f"{response.status_code} {label} {'missing ' + str(missing) if missing else ''}")
    if response.status_code != status or missing:
        print(response.headers, response.text[:500])
        sys.exit(1)
    return response


def main(base: str) -> None:
    c = httpx.Client(base_url=base, timeout=30)
    s = uuid.uuid4().hex[:8]
    pw = "Str0ng!Passw0rd"
    user = {"email": f"a-{s}@example.com", "username": f"a_{s}", "password": pw, "full_name": "A"}
    check(c.post("/api/v1/users/", json=user), 201)
    pair = check(
        c.post("/api/v1/auth/login", data={"username": user["email"], "password": pw}),
        200,
        "cache-control",
    ).json()
    h = {"Authorization": f"Bearer {pair['access_token']}"}
    check(c.post("/api/v1/tenants", json={"name": "Org", "slug": f"org-{s}"}, headers=h), 201)
    pair = check(
        c.post("/api/v1/auth/switch-tenant", json={"tenant": f"org-{s}"}, headers=h),
        200,
        "cache-control",
    ).json()
    h = {"Authorization": f"Bearer {pair['access_token']}"}
    project = check(
        c.post("/api/v1/projects", json={"name": "P"}, headers=h), 201, "x-ratelimit-limit"
    ).json()
    for i in range(3):
        check(
            c.post(f"/api/v1/projects/{project['id']}/tasks", json={"title": f"T{i}"}, headers=h),
            201,
        )
    page = check(c.get(f"/api/v1/projects/{project['id']}/tasks?limit=2", headers=h), 200).json()
    assert len(page["items"]) == 2, page
    assert page["next_cursor"], page
    rest = check(
        c.get(
            f"/api/v1/projects/{project['id']}/tasks",
            params={"limit": 2, "cursor": page["next_cursor"]},
            headers=h,
        ),
        200,
    ).json()
    assert len(rest["items"]) == 1, rest
    assert rest["next_cursor"] is None, rest
    task_id = page["items"][0]["id"]
    etag = check(c.get(f"/api/v1/tasks/{task_id}", headers=h), 200, "etag").headers["etag"]
    check(c.get(f"/api/v1/tasks/{task_id}", headers={**h, "If-None-Match": etag}), 304, "etag")
    check(c.patch(f"/api/v1/tasks/{task_id}", json={"status": "done"}, headers=h), 200)
    check(c.get(f"/api/v1/tasks/{task_id}", headers={**h, "If-None-Match": etag}), 200)
    check(
        c.post(
            "/api/v1/invitations", json={"email": f"b-{s}@example.com", "role": "member"}, headers=h
        ),
        201,
    )
    check(c.get("/api/v1/invitations", headers=h), 200)
    key = check(
        c.post("/api/v1/api-keys", json={"name": "ci", "scopes": ["read"]}, headers=h),
        201,
        "cache-control",
    ).json()["key"]
    check(c.get("/api/v1/projects", headers={"X-API-Key": key}), 200, "x-ratelimit-remaining")
    check(c.get("/api/v1/exports/tasks.csv", headers=h), 200)
    report = check(
        c.post("/api/v1/reports", json={"kind": "tasks", "format": "csv", "params": {}}, headers=h),
        202,
        "location",
    )
    print("  report", report.json(), report.headers["location"])
    check(c.get(report.headers["location"], headers=h), 200)
    check(c.get(report.headers["location"] + "/download", headers=h), 409)
    check(c.post("/api/v1/auth/logout", headers=h), 204)
    check(c.get("/api/v1/users/me", headers=h), 401, "www-authenticate")
    check(
        c.post(
            "/api/v1/users/",
            content=b"x" * (1024 * 1024 + 10),
            headers={"content-type": "application/json"},
        ),
        413,
    )
    started = time.perf_counter()
    for _ in range(12):
        last = c.post("/api/v1/auth/login", data={"username": user["username"], "password": "x"})
    check(last, 429, "retry-after", "x-ratelimit-limit")
    print(f"journey ok in {time.perf_counter() - started:.2f}s for the last step")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000")
