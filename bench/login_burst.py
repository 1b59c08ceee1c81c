"""Login throughput, and /users/me latency while a burst of logins runs.

Against a running API (`tenantry serve`, with the Argon2 cost you want to measure):

    uv run python bench/login_burst.py --url http://127.0.0.1:8000 --concurrency 32 --seconds 10

It signs up a few users, measures /users/me alone (baseline), then runs `--concurrency`
login loops for `--seconds` while `--probes` loops keep calling /users/me, and prints
logins/s, login latency, and /users/me p50/p99 before and during the burst. Rate limits
(if enabled) will refuse most of the burst: run it against a server with them off.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections import Counter

import httpx

PASSWORD = "Bench!Passw0rd"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def sign_up(client: httpx.AsyncClient, n: int) -> list[str]:
    names = []
    run = uuid.uuid4().hex[:6]
    for i in range(n):
        name = f"bench_{run}_{i}"
        r = await client.post(
            "/api/v1/users/",
            json={"email": f"{name}@example.com", "username": name, "password": PASSWORD},
        )
        r.raise_for_status()
        names.append(name)
    return names


async def login(client: httpx.AsyncClient, username: str) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/login", data={"username": username, "password": PASSWORD}
    )


async def probe(
    client: httpx.AsyncClient, token: str, stop: asyncio.Event, out: list[float]
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    while not stop.is_set():
        started = time.perf_counter()
        try:
            r = await client.get("/api/v1/users/me", headers=headers)
        except httpx.TransportError:
            continue  # a keep-alive connection the server just closed; try again
        if r.status_code == 200:
            out.append(time.perf_counter() - started)
        await asyncio.sleep(0.01)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--probes", type=int, default=4)
    parser.add_argument("--users", type=int, default=8)
    args = parser.parse_args()

    limits = httpx.Limits(max_connections=args.concurrency + args.probes + 8)
    async with httpx.AsyncClient(base_url=args.url, timeout=60, limits=limits) as client:
        users = await sign_up(client, args.users)
        token = (await login(client, users[0])).json()["access_token"]

        baseline: list[float] = []
        stop = asyncio.Event()
        probes = [
            asyncio.create_task(probe(client, token, stop, baseline)) for _ in range(args.probes)
        ]
        await asyncio.sleep(3)
        stop.set()
        await asyncio.gather(*probes)

        during: list[float] = []
        login_times: list[float] = []
        statuses: Counter[int] = Counter()
        stop = asyncio.Event()
        deadline = time.perf_counter() + args.seconds

        async def login_loop(i: int) -> None:
            n = i
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    r = await login(client, users[n % len(users)])
                except httpx.TransportError:
                    statuses[0] += 1  # 0 = transport error
                    continue
                statuses[r.status_code] += 1
                if r.status_code == 200:
                    login_times.append(time.perf_counter() - started)
                n += 1

        probes = [
            asyncio.create_task(probe(client, token, stop, during)) for _ in range(args.probes)
        ]
        started = time.perf_counter()
        await asyncio.gather(*(login_loop(i) for i in range(args.concurrency)))
        elapsed = time.perf_counter() - started
        stop.set()
        await asyncio.gather(*probes)

    ok = statuses.get(200, 0)
    print(f"logins: {ok} ok in {elapsed:.1f} s = {ok / elapsed:.1f}/s  statuses={dict(statuses)}")
    print(
        f"login latency: p50 {pct(login_times, 0.5):.0f} ms  p99 {pct(login_times, 0.99):.0f} ms"
        f"  (concurrency {args.concurrency})"
    )
    print(
        f"/users/me alone:       n={len(baseline)}  p50 {pct(baseline, 0.5):.1f} ms"
        f"  p99 {pct(baseline, 0.99):.1f} ms"
        f"  mean {statistics.fmean(baseline) * 1000 if baseline else float('nan'):.1f} ms"
    )
    print(
        f"/users/me during burst: n={len(during)}  p50 {pct(during, 0.5):.1f} ms"
        f"  p99 {pct(during, 0.99):.1f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
