"""Benchmark the tenant data API against a minimal reference app, in the same run.

For each tenant count: seed N tenants × M tasks, start `tenantry serve` and
`bench/reference_app.py` (one uvicorn process each) plus a throwaway Redis, warm up,
then drive each endpoint with wrk (random tenant per request) and print req/s, p50
and p99. Needs `wrk` (Debian: apt-get install wrk) and the local PostgreSQL.

    uv run python bench/run.py --tenants 10,10000 --tasks 100 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from tenantry import embedded

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-key-0123456789abcdef0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    base: str
    pid: int

    def cpu_seconds(self) -> float:
        """CPU time of the server process: a measure that outside load cannot inflate."""
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], port: int) -> Iterator[Server]:
    proc = subprocess.Popen(args, env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            if proc.poll() is not None:
                raise RuntimeError(f"{args[0]} exited with {proc.returncode}")
            try:
                httpx.get(base + "/", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield Server(base, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu_ms_per_request: float


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")


def wrk(name: str, server: Server, lines: list[str], args: argparse.Namespace) -> Result:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("\n".join(lines) + "\n")
    env = {**os.environ, "TARGETS": handle.name}
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--latency",
        "-s",
        str(ROOT / "bench" / "targets.lua"),
        server.base,
    ]
    cpu_before = server.cpu_seconds()
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    cpu = server.cpu_seconds() - cpu_before
    os.unlink(handle.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(_find(r"50%\s+(\S+)", out))
    p99 = _ms(_find(r"99%\s+(\S+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    if socket_errors:
        print(f"  {name}: socket errors {socket_errors.group(1)}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return Result(name, rps, p50, p99, errors, requests, cpu * 1000 / max(requests, 1))


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{text}")
    return match.group(1)


def visit_all(base: str, lines: list[str], concurrency: int = 16) -> None:
    """GET every target once: the cache's steady state, where every tenant's hot page
    is read again within the entry TTL, rather than the cold start of a new process
    (a short wrk warm-up reaches only a few hundred of 10,000 tenants)."""

    async def run() -> None:
        queue = list(lines)
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:

            async def worker() -> None:
                while queue:
                    path, token = queue.pop().split()
                    headers = {"Authorization": f"Bearer {token}"}
                    (await client.get(path, headers=headers)).raise_for_status()

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    asyncio.run(run())


def targets(path: Path) -> list[tuple[str, str, str, str]]:
    rows = []
    for line in path.read_text().splitlines():
        tenant, project, task, token = line.split()
        rows.append((tenant, project, task, token))
    return rows


def run_one(tenants: int, args: argparse.Namespace, redis_url: str) -> list[Result]:
    database = f"tenantry_bench_{tenants}"
    out = ROOT / "bench" / f".targets-{tenants}.txt"
    if not args.no_seed or not out.exists():
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench" / "seed.py"),
                "--database",
                database,
                "--tenants",
                str(tenants),
                "--tasks",
                str(args.tasks),
                "--secret",
                SECRET,
                "--out",
                str(out),
            ],
            check=True,
            cwd=ROOT,
        )
    rows = targets(out)
    app_url = f"postgresql+asyncpg://{embedded.APP_ROLE}@127.0.0.1:5432/{database}"
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "SECRET_KEY": SECRET,
        "DATABASE_URL": app_url,
        "DATABASE_OWNER_URL": app_url,
        "REDIS_URL": redis_url,
        "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
        # The bench measures the data path, not plan quotas (enterprise tenants anyway).
        "RATE_LIMIT_ENABLED": os.environ.get("RATE_LIMIT_ENABLED", "true"),
    }
    ours_port, ref_port = free_port(), free_port()
    ours_cmd = [sys.executable, "-m", "tenantry.cli", "serve", "--port", str(ours_port)]
    ref_cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.reference_app:app",
        "--port",
        str(ref_port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    list_lines = [f"/api/v1/projects/{p}/tasks?limit=20 {tok}" for _, p, _, tok in rows]
    with process(ours_cmd, env, ours_port) as ours, process(ref_cmd, env, ref_port) as ref:
        # Page-2 cursors (never cached), fetched once through the API itself.
        page_two = []
        with httpx.Client(base_url=ours.base, timeout=10) as client:
            for _, project, _, token in rows[: args.cursor_sample]:
                response = client.get(
                    f"/api/v1/projects/{project}/tasks",
                    params={"limit": 20},
                    headers={"Authorization": f"Bearer {token}"},
                )
                response.raise_for_status()
                cursor = response.json()["next_cursor"]
                page_two.append(
                    f"/api/v1/projects/{project}/tasks?limit=20&cursor={cursor} {token}"
                )
        suites = [
            ("reference  tasks?limit=20", ref, list_lines),
            ("tenantry   tasks?limit=20 (first page, cached)", ours, list_lines),
            ("tenantry   tasks?limit=20&cursor (page 2, uncached)", ours, page_two),
            (
                "tenantry   tasks/{id} (cached)",
                ours,
                [f"/api/v1/tasks/{task} {tok}" for _, _, task, tok in rows],
            ),
            (
                "tenantry   projects?limit=20 (cached)",
                ours,
                [f"/api/v1/projects {tok}" for *_, tok in rows],
            ),
        ]
        # Warm both apps (and our cache) with a short pass of each suite first.
        for _, server, lines in suites[1:]:
            if "cursor=" not in lines[0]:
                visit_all(server.base, lines)
        warm = argparse.Namespace(**{**vars(args), "duration": args.warmup})
        for name, base, lines in suites:
            wrk(name, base, lines, warm)
        # The machine is shared: interleave the suites over several rounds and keep the
        # median, so a burst of outside load does not land on one side only.
        rounds: list[list[Result]] = [[] for _ in suites]
        for _ in range(args.rounds):
            for index, (name, base, lines) in enumerate(suites):
                rounds[index].append(wrk(name, base, lines, args))
        results = []
        for runs in rounds:
            runs.sort(key=lambda r: r.rps)
            result = runs[len(runs) // 2]
            results.append(result)
            spread = f"{runs[0].rps:.0f}–{runs[-1].rps:.0f}"
            print(
                f"  [{tenants:>6} tenants] {result.name:<52} {result.rps:>7.0f} req/s "
                f"({spread})  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
                f"server CPU {result.cpu_ms_per_request:.2f} ms/req"
                + (f"  NON-2XX {result.errors}" if result.errors else "")
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenants", default="10,10000", help="comma-separated tenant counts")
    parser.add_argument(
        "--tasks",
        type=int,
        default=60,
        help="tasks per tenant (over 2 projects; > 40 for a page 2)",
    )
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cursor-sample", type=int, default=500)
    parser.add_argument("--no-seed", action="store_true", help="reuse seeded databases")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        redis = embedded.start_valkey(Path(tmp) / "valkey", persist=False)
        try:
            summary = {}
            for count in [int(n) for n in args.tenants.split(",")]:
                results = run_one(count, args, f"{redis.connection_url}/0")
                summary[count] = results
        finally:
            redis.stop()

    print("\nsummary (authenticated GET /api/v1/projects/{id}/tasks?limit=20)")
    for count, results in summary.items():
        ref, cached, uncached = results[0], results[1], results[2]
        print(
            f"  {count:>6} tenants: reference {ref.rps:.0f} req/s; tenantry cached "
            f"{cached.rps:.0f} req/s (ratio {cached.rps / ref.rps:.2f}), uncached page "
            f"{uncached.rps:.0f} req/s (ratio {uncached.rps / ref.rps:.2f}); "
            f"p50 {cached.p50_ms:.2f}/{uncached.p50_ms:.2f} ms vs {ref.p50_ms:.2f} ms"
        )
        print(
            f"          server CPU per request: reference {ref.cpu_ms_per_request:.2f} ms, "
            f"tenantry cached {cached.cpu_ms_per_request:.2f} ms "
            f"(ratio {ref.cpu_ms_per_request / cached.cpu_ms_per_request:.2f}), uncached "
            f"{uncached.cpu_ms_per_request:.2f} ms "
            f"(ratio {ref.cpu_ms_per_request / uncached.cpu_ms_per_request:.2f})"
        )


if __name__ == "__main__":
    main()
