"""Benchmark the API against a minimal reference app doing the same work, in the same run.

For each tenant count: seed N tenants × M tasks (`bench/seed.py`; `--no-seed` reuses
the databases), start `tenantry serve` and `bench/reference_app.py` (uvicorn each) on a
throwaway Valkey, warm up, then drive each endpoint with wrk (a random tenant per
request), interleaving ours and the reference over several rounds, and keep medians.
Server output goes to log files in a temporary directory (printed at the start).

Phases (`--only`, comma-separated; all by default):

- `reads`: the task list's first page (cached on our side), its page 2 (a cursor: never
  cached), and one task by id (cached on our side);
- `me`: `GET /users/me` (kept per process on our side, so warmed like the cached reads);
- `writes`: `POST /projects/{id}/tasks` and `PATCH /tasks/{id}` (no If-Match), JSON
  bodies varied by `bench/writes.lua`, into each tenant's second project so the first
  project's pages stay as seeded. The seeded tenants have no webhook endpoints: both
  sides run the outbox fan-out statement and it inserts nothing. Writes bump the
  tenant's cache generation, so they run after the cached reads;
- `concurrency`: the first page and page 2 under `-c64` and `-c256`, with 1 and 2
  uvicorn workers per app (server CPU summed over the worker processes);
- `startup`: CPU and wall time of importing `tenantry.main` and `workers.settings` in a
  fresh interpreter, best of 5.

It ends with one table: every goal of issue #19 at each tenant count, the medians, the
ratio to the reference, the per-round spread of that ratio, and PASS/FAIL.

    uv run python bench/run.py --tenants 10,10000 --tasks 60 --duration 5 --rounds 3

Needs `wrk` (Debian: apt-get install wrk) and the local PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import psutil
from seed import owner_url  # bench/seed.py, beside this file

from tenantry import embedded
from tenantry.cli import run_migrations

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-key-0123456789abcdef0123456789"
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432"
PHASES = ("reads", "me", "writes", "concurrency", "startup")


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
        """CPU time of the server and its worker processes: a measure that outside load
        cannot inflate."""
        total = 0.0
        try:
            parent = psutil.Process(self.pid)
            processes = [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return total
        for proc in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = proc.cpu_times()
                total += times.user + times.system
        return total


@contextlib.contextmanager
def process(
    args: list[str], env: dict[str, str], port: int, log: Path, workers: int = 1
) -> Iterator[Server]:
    with log.open("ab") as out:
        proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError(f"{args[2]} exited with {proc.returncode}; see {log}")
            try:
                httpx.get(base + "/", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        server = Server(base, proc.pid)
        settle(server, workers)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        with log.open(errors="replace") as lines:
            died = sum('"Child process [' in line and "died" in line for line in lines)
        if died:
            print(f"  note: {died} worker(s) of {args[2]} died and were restarted; see {log}")


def settle(server: Server, workers: int, timeout: float = 90) -> None:
    """Wait until every worker has started and the processes are idle: the first
    worker may answer while the others still import (seconds, on a loaded machine)."""
    deadline = time.monotonic() + timeout
    quiet = 0
    before = server.cpu_seconds()
    while time.monotonic() < deadline and quiet < 2:
        time.sleep(0.5)
        children = len(psutil.Process(server.pid).children(recursive=True))
        now = server.cpu_seconds()
        started = workers == 1 or children >= workers
        quiet = quiet + 1 if started and now - before < 0.1 else 0
        before = now


def drain(server: Server, timeout: float = 10) -> None:
    """Wait for the server to finish what wrk left in flight when it stopped (requests
    whose clients are gone still run), so it does not eat into the next run."""
    deadline = time.monotonic() + timeout
    before = server.cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = server.cpu_seconds()
        if now - before < 0.02:
            return
        before = now


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    requests: int
    cpu_ms_per_request: float
    socket_errors: dict[str, int] = field(default_factory=dict)
    connections: int = 0

    @property
    def timeouts(self) -> int:
        return self.socket_errors.get("timeout", 0)

    @property
    def stalled(self) -> bool:
        """A request timed out (`--wrk-timeout`), or not even one answer per connection."""
        return self.timeouts > 0 or self.requests < self.connections

    @property
    def connection_errors(self) -> int:
        return sum(v for k, v in self.socket_errors.items() if k != "timeout")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{text}")
    return match.group(1)


@dataclass
class Load:
    """One side of a comparison: which server, which targets, which wrk script."""

    name: str
    side: str  # "ours" | "ref"
    lines: list[str]
    script: str = "targets.lua"
    # A cached read: every target is visited again before a run when the last visit is
    # older than --rewarm seconds (entries live 300 s; see `visit_all`).
    cached: bool = False
    warmed_at: float = float("-inf")


def wrk(
    load: Load, server: Server, args: argparse.Namespace, *, duration: int, connections: int
) -> Result:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("\n".join(load.lines) + "\n")
    env = {**os.environ, "TARGETS": handle.name}
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{connections}",
        f"-d{duration}s",
        f"--timeout={args.wrk_timeout}s",
        "--latency",
        "-s",
        str(ROOT / "bench" / load.script),
        server.base,
    ]
    cpu_before = server.cpu_seconds()
    try:
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(handle.name)
    cpu = server.cpu_seconds() - cpu_before
    drain(server)
    if args.wrk_log is not None:
        with args.wrk_log.open("a") as log:
            log.write(f"## {load.side} {load.name} -c{connections} -d{duration}s\n{out}\n")
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", out))
    # Anchored: "99%" also ends the latency line's "+/- Stdev" column (e.g. "68.99%").
    p50 = _ms(_find(r"(?m)^\s+50%\s+(\S+)", out))
    p99 = _ms(_find(r"(?m)^\s+99%\s+(\S+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    errors = {}
    if socket_errors:
        errors = {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", socket_errors[1])}
    requests = int(_find(r"(\d+) requests in", out))
    return Result(
        load.name,
        rps,
        p50,
        p99,
        int(non2xx.group(1)) if non2xx else 0,
        requests,
        cpu * 1000 / max(requests, 1),
        errors,
        connections,
    )


def visit_all(base: str, lines: list[str], concurrency: int = 16) -> None:
    """GET every target twice: the caches' steady state, where every tenant's hot page
    is read again within the entry TTL (300 s) and its token calls more than once (a
    kept credential check is trusted from its second call: `auth.principal_cache`),
    rather than the cold start of a new process or entries expired mid-run (a 5 s wrk
    run reaches only a few hundred of 10,000 tenants; on a slow machine the rounds
    outlast the TTL)."""

    failures: dict[int, int] = {}

    async def run() -> None:
        queue = list(lines) * 2
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:

            async def worker() -> None:
                while queue:
                    path, token = queue.pop().split()
                    headers = {"Authorization": f"Bearer {token}"}
                    status = (await client.get(path, headers=headers)).status_code
                    if status >= 400:
                        failures[status] = failures.get(status, 0) + 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    asyncio.run(run())
    if failures:
        # Reported, not fatal: a 503 in a long run (the shared PostgreSQL or Redis
        # briefly refusing) should not lose the rounds already measured.
        print(f"  warm-up of {len(lines)} targets answered {failures} (status: count)")
        if sum(failures.values()) > len(lines) // 2:
            raise RuntimeError(f"warm-up failed: {failures}; see the server log")


@dataclass(frozen=True)
class Target:
    tenant: str
    project: str
    task: str
    token: str
    write_project: str
    write_task: str


def targets(path: Path) -> list[Target]:
    return [Target(*line.split()) for line in path.read_text().splitlines() if line]


@dataclass
class Comparison:
    """ours against the reference, one Result per round each."""

    goal: str
    tenants: int
    ours: list[Result]
    ref: list[Result]
    target: float  # the ratio to reach (req/s and CPU), or the p99 ceiling (concurrency)
    kind: str = "throughput"  # "throughput" | "concurrency"
    workers: int = 1
    connections: int = 0


def median(results: list[Result]) -> Result:
    ordered = sorted(results, key=lambda r: r.rps)
    return ordered[len(ordered) // 2]


def base_env(database: str, redis_url: str, pycache: Path | None = None) -> dict[str, str]:
    """The servers' environment. With `pycache`, they keep bytecode there, as the image
    does (it installs with UV_COMPILE_BYTECODE=1): where PYTHONDONTWRITEBYTECODE=1 leaves
    none, every uvicorn worker compiles the app and its dependencies from source, which
    on a loaded 2-core machine outlasts uvicorn's 5 s worker ping, and `--workers 2`
    then kills and restarts its workers over and over (`--no-bytecode-cache` shows it)."""
    app_url = f"postgresql+asyncpg://{embedded.APP_ROLE}@127.0.0.1:5432/{database}"
    env = dict(os.environ)
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return {
        **env,
        "ENVIRONMENT": "production",
        "SECRET_KEY": SECRET,
        "DATABASE_URL": app_url,
        "DATABASE_OWNER_URL": app_url,
        "REDIS_URL": redis_url,
        "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
        # The limiter runs (its Redis call is part of every request) but never refuses:
        # the bench measures the data path, not plan quotas.
        "RATE_LIMIT_ENABLED": os.environ.get("RATE_LIMIT_ENABLED", "true"),
        "RATE_LIMIT_ENTERPRISE": os.environ.get("RATE_LIMIT_ENTERPRISE", "1000000000"),
    }


@contextlib.contextmanager
def servers(
    env: dict[str, str], workers: int, log_dir: Path, label: str
) -> Iterator[tuple[Server, Server]]:
    """Ours and the reference, each with `workers` uvicorn workers. With 2 workers each
    process gets half our default pool (and the reference keeps 10 per process), so the
    pair never holds more PostgreSQL connections than with one (the server is shared)."""
    ours_env, ref_env = dict(env), dict(env)
    if workers > 1:
        ours_env["DB_POOL_SIZE"] = str(max(20 // workers, 5))
    ours_port, ref_port = free_port(), free_port()
    ours_cmd = [sys.executable, "-m", "tenantry.cli", "serve", "--port", str(ours_port)]
    ours_cmd += ["--workers", str(workers)]
    ref_cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.reference_app:app",
        "--port",
        str(ref_port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    with (
        process(ours_cmd, ours_env, ours_port, log_dir / f"{label}-tenantry.log", workers) as ours,
        process(ref_cmd, ref_env, ref_port, log_dir / f"{label}-reference.log", workers) as ref,
    ):
        yield ours, ref


def page_two_lines(base: str, rows: list[Target], sample: int) -> list[str]:
    """Page-2 cursors (never cached), fetched once through the API itself."""
    lines = []
    with httpx.Client(base_url=base, timeout=10) as client:
        for row in rows[:sample]:
            response = client.get(
                f"/api/v1/projects/{row.project}/tasks",
                params={"limit": 20},
                headers={"Authorization": f"Bearer {row.token}"},
            )
            response.raise_for_status()
            cursor = response.json()["next_cursor"]
            lines.append(
                f"/api/v1/projects/{row.project}/tasks?limit=20&cursor={cursor} {row.token}"
            )
    return lines


def measure(
    pairs: list[tuple[str, Load, Load]],
    ours: Server,
    ref: Server,
    args: argparse.Namespace,
    tenants: int,
    *,
    connections: int,
) -> dict[str, tuple[list[Result], list[Result]]]:
    """Warm every load, then run them interleaved over `args.rounds` rounds (the
    machine is shared: a burst of outside load should not land on one side only)."""
    servers_by_side = {"ours": ours, "ref": ref}
    loads = [load for _, a, b in pairs for load in (a, b)]
    for load in loads:
        if load.cached and time.monotonic() - load.warmed_at > args.rewarm:
            visit_all(servers_by_side[load.side].base, load.lines)
            load.warmed_at = time.monotonic()
        wrk(load, servers_by_side[load.side], args, duration=args.warmup, connections=connections)
    results: dict[str, list[Result]] = {load.name + load.side: [] for load in loads}
    for _ in range(args.rounds):
        for load in loads:
            if load.cached and time.monotonic() - load.warmed_at > args.rewarm:
                visit_all(servers_by_side[load.side].base, load.lines)
                load.warmed_at = time.monotonic()
            result = wrk(
                load,
                servers_by_side[load.side],
                args,
                duration=args.duration,
                connections=connections,
            )
            results[load.name + load.side].append(result)
            errors = ""
            if result.stalled:
                errors += "  STALLED"
            if result.non2xx:
                errors += f"  NON-2XX {result.non2xx}"
            if result.socket_errors and any(result.socket_errors.values()):
                errors += f"  socket errors {result.socket_errors}"
            side = "tenantry " if load.side == "ours" else "reference"
            print(
                f"  [{tenants:>6} tenants, c{connections}] {side} {load.name:<34} "
                f"{result.rps:>7.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
                f"p99 {result.p99_ms:7.2f} ms  CPU {result.cpu_ms_per_request:.2f} ms/req" + errors,
                flush=True,
            )
    return {goal: (results[a.name + a.side], results[b.name + b.side]) for goal, a, b in pairs}


async def clear_writes(database: str) -> None:
    """Drop what earlier write runs added, so a reused database starts as seeded."""
    conn = await asyncpg.connect(f"{ADMIN_DSN}/{database}")
    try:
        await conn.execute("DELETE FROM tasks WHERE title LIKE 'bench write %'")
        await conn.execute("DELETE FROM audit_events WHERE action LIKE 'task.%'")
        await conn.execute("VACUUM ANALYZE tasks, audit_events")
    finally:
        await conn.close()


def run_one(
    tenants: int, args: argparse.Namespace, redis_url: str, log_dir: Path
) -> list[Comparison]:
    database = f"{args.db_prefix}_{tenants}"
    out = ROOT / "bench" / f".targets-{database}.txt"
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
    else:
        # A reused database is brought to this code's schema first, as a deploy would.
        run_migrations(owner_url(f"{ADMIN_DSN}/postgres", database), embedded.APP_ROLE)
    rows = targets(out)
    asyncio.run(clear_writes(database))
    env = base_env(database, redis_url, None if args.no_bytecode_cache else log_dir / "pycache")
    only = args.only
    list_lines = [f"/api/v1/projects/{r.project}/tasks?limit=20 {r.token}" for r in rows]
    task_lines = [f"/api/v1/tasks/{r.task} {r.token}" for r in rows]
    me_lines = [f"/api/v1/users/me {r.token}" for r in rows]
    comparisons: list[Comparison] = []

    def compare(
        found: dict[str, tuple[list[Result], list[Result]]], targets: dict[str, float]
    ) -> None:
        for goal, (ours_runs, ref_runs) in found.items():
            comparisons.append(Comparison(goal, tenants, ours_runs, ref_runs, targets[goal]))

    page_two: list[str] = []
    if {"reads", "me", "writes"} & only:
        with servers(env, 1, log_dir, f"{tenants}-w1") as (ours, ref):
            page_two = page_two_lines(ours.base, rows, args.cursor_sample)
            if "reads" in only or "me" in only:
                pairs = []
                goals = {}
                if "reads" in only:
                    pairs += [
                        (
                            "list, first page (cached) ≥ 1.0",
                            Load("tasks?limit=20 (first page)", "ours", list_lines, cached=True),
                            Load("tasks?limit=20 (first page)", "ref", list_lines),
                        ),
                        (
                            "list, page 2 (cursor, uncached) ≥ 0.60",
                            Load("tasks?limit=20&cursor (page 2)", "ours", page_two),
                            Load("tasks?limit=20&cursor (page 2)", "ref", page_two),
                        ),
                        (
                            "task by id (cached) ≥ 1.0",
                            Load("tasks/{id}", "ours", task_lines, cached=True),
                            Load("tasks/{id}", "ref", task_lines),
                        ),
                    ]
                    goals.update(
                        {
                            "list, first page (cached) ≥ 1.0": 1.0,
                            "list, page 2 (cursor, uncached) ≥ 0.60": 0.6,
                            "task by id (cached) ≥ 1.0": 1.0,
                        }
                    )
                if "me" in only:
                    pairs.append(
                        (
                            "GET /users/me ≥ 0.60",
                            # Kept per process like the cached reads (`users.me_cache`):
                            # warmed, as for any client that calls more than once.
                            Load("users/me", "ours", me_lines, cached=True),
                            Load("users/me", "ref", me_lines),
                        )
                    )
                    goals["GET /users/me ≥ 0.60"] = 0.6
                compare(
                    measure(pairs, ours, ref, args, tenants, connections=args.connections), goals
                )
            if "writes" in only:
                post = [f"POST /api/v1/projects/{r.write_project}/tasks {r.token}" for r in rows]
                patch = [f"PATCH /api/v1/tasks/{r.write_task} {r.token}" for r in rows]
                pairs = [
                    (
                        "POST /projects/{id}/tasks ≥ 0.50",
                        Load("POST tasks", "ours", post, "writes.lua"),
                        Load("POST tasks", "ref", post, "writes.lua"),
                    ),
                    (
                        "PATCH /tasks/{id} ≥ 0.50",
                        Load("PATCH tasks/{id}", "ours", patch, "writes.lua"),
                        Load("PATCH tasks/{id}", "ref", patch, "writes.lua"),
                    ),
                ]
                found = measure(pairs, ours, ref, args, tenants, connections=args.connections)
                compare(found, {goal: 0.5 for goal, *_ in pairs})
    if "concurrency" in only:
        for workers in args.workers:
            with servers(env, workers, log_dir, f"{tenants}-w{workers}-c") as (ours, ref):
                page_two = page_two or page_two_lines(ours.base, rows, args.cursor_sample)
                first_page = Load("tasks?limit=20 (first page)", "ours", list_lines, cached=True)
                for connections in args.concurrency:
                    pairs = [
                        (
                            f"first page, c{connections}, {workers} worker(s)",
                            first_page,
                            Load("tasks?limit=20 (first page)", "ref", list_lines),
                        ),
                        (
                            f"page 2, c{connections}, {workers} worker(s)",
                            Load("tasks?limit=20&cursor (page 2)", "ours", page_two),
                            Load("tasks?limit=20&cursor (page 2)", "ref", page_two),
                        ),
                    ]
                    found = measure(pairs, ours, ref, args, tenants, connections=connections)
                    for goal, (ours_runs, ref_runs) in found.items():
                        comparisons.append(
                            Comparison(
                                goal,
                                tenants,
                                ours_runs,
                                ref_runs,
                                3.0,
                                "concurrency",
                                workers,
                                connections,
                            )
                        )
    return comparisons


@dataclass
class Startup:
    module: str
    label: str
    wall: list[float]
    cpu: list[float]
    top: list[tuple[int, str]]
    judged: bool


def _timed_imports(module: str, env: dict[str, str], times: int) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    for _ in range(times):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], env=env, cwd=ROOT, check=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return walls, cpus


def time_imports(module: str, env: dict[str, str], times: int = 5) -> list[Startup]:
    """Fresh interpreters importing `module`: wall and CPU (user + system) of each, and
    the slowest imports under it by `-X importtime` (cumulative µs).

    Judged with bytecode caches, as the image runs (it installs with
    UV_COMPILE_BYTECODE=1): a private `PYTHONPYCACHEPREFIX`, primed by one import, so
    nothing is written into the tree. Also shown as this environment runs it, where
    `PYTHONDONTWRITEBYTECODE=1` may leave the project and its dependencies without any
    bytecode, so every process compiles them from source.
    """
    results = []
    with tempfile.TemporaryDirectory(prefix="tenantry-pycache-") as prefix:
        cached = {**env, "PYTHONPYCACHEPREFIX": prefix}
        cached.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run([sys.executable, "-c", f"import {module}"], env=cached, cwd=ROOT, check=True)
        walls, cpus = _timed_imports(module, cached, times)
        trace = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            env=cached,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stderr
    top = []
    for line in trace.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if match and match[3] != module and len(match[2]) <= 3:
            top.append((int(match[1]), match[3]))
    top.sort(reverse=True)
    results.append(Startup(module, "bytecode cached", walls, cpus, top[:8], judged=True))
    if env.get("PYTHONDONTWRITEBYTECODE"):
        walls, cpus = _timed_imports(module, env, 3)
        label = "as run here: PYTHONDONTWRITEBYTECODE=1"
        results.append(Startup(module, label, walls, cpus, [], judged=False))
    return results


def _rps(results: list[Result]) -> str:
    values = sorted(r.rps for r in results)
    return f"{median(results).rps:,.0f} req/s ({values[0]:,.0f}–{values[-1]:,.0f})"


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "**FAIL**"


def summary(comparisons: list[Comparison], startups: list[Startup], limit: float) -> None:
    print("\nsummary: tenantry against the reference (same run; median of rounds)\n")
    print("| goal | tenants | tenantry | reference | ratio | ratio per round | result |")
    print("| --- | ---: | --- | --- | ---: | --- | --- |")
    for c in comparisons:
        ours, ref = median(c.ours), median(c.ref)
        if c.kind == "throughput":
            rps_rounds = sorted(o.rps / r.rps for o, r in zip(c.ours, c.ref, strict=True))
            cpu_rounds = sorted(
                r.cpu_ms_per_request / o.cpu_ms_per_request
                for o, r in zip(c.ours, c.ref, strict=True)
            )
            rps_ratio = ours.rps / ref.rps
            cpu_ratio = statistics.median(r.cpu_ms_per_request for r in c.ref) / (
                statistics.median(o.cpu_ms_per_request for o in c.ours)
            )
            errors = "" if not (ours.non2xx or ref.non2xx) else f" non-2xx {ours.non2xx}"
            print(
                f"| {c.goal}: req/s | {c.tenants:,} | {_rps(c.ours)}{errors} | {_rps(c.ref)} "
                f"| {rps_ratio:.2f} | {rps_rounds[0]:.2f}–{rps_rounds[-1]:.2f} "
                f"| {_verdict(rps_ratio >= c.target and not ours.non2xx)} |"
            )
            ours_cpu = statistics.median(o.cpu_ms_per_request for o in c.ours)
            ref_cpu = statistics.median(r.cpu_ms_per_request for r in c.ref)
            print(
                f"| {c.goal}: CPU/req | {c.tenants:,} | {ours_cpu:.2f} ms "
                f"| {ref_cpu:.2f} ms | {cpu_ratio:.2f} "
                f"| {cpu_rounds[0]:.2f}–{cpu_rounds[-1]:.2f} | {_verdict(cpu_ratio >= c.target)} |"
            )
        else:
            p99_rounds = sorted(o.p99_ms / r.p99_ms for o, r in zip(c.ours, c.ref, strict=True))
            ours_p99 = statistics.median(o.p99_ms for o in c.ours)
            ref_p99 = statistics.median(r.p99_ms for r in c.ref)
            ratio = ours_p99 / ref_p99

            def faults(runs: list[Result]) -> tuple[int, int, int, int]:
                return (
                    sum(r.stalled for r in runs),
                    sum(r.timeouts for r in runs),
                    sum(r.connection_errors for r in runs),
                    sum(r.non2xx for r in runs),
                )

            ours_faults, ref_faults = faults(c.ours), faults(c.ref)
            passed = ratio <= c.target and not any(ours_faults)
            print(
                f"| {c.goal}: p99 ≤ 3× ref, no stall/socket error/non-2xx | {c.tenants:,} "
                f"| p99 {ours_p99:.0f} ms, {_rps(c.ours)}, "
                f"stalled runs/timeouts/socket errors/non-2xx {'/'.join(map(str, ours_faults))} "
                f"| p99 {ref_p99:.0f} ms, {_rps(c.ref)}, "
                f"{'/'.join(map(str, ref_faults))} "
                f"| {ratio:.2f} | {p99_rounds[0]:.2f}–{p99_rounds[-1]:.2f} | {_verdict(passed)} |"
            )
    for s in startups:
        best_wall, best_cpu = min(s.wall), min(s.cpu)
        verdict = _verdict(best_wall < limit and best_cpu < limit) if s.judged else "(info)"
        print(
            f"| `import {s.module}` < {limit:g} s, {s.label} (best of {len(s.wall)}) | – "
            f"| wall {best_wall:.2f} s, CPU {best_cpu:.2f} s | – | – "
            f"| wall {min(s.wall):.2f}–{max(s.wall):.2f} s | {verdict} |"
        )
    for s in startups:
        if not s.top:
            continue
        slowest = ", ".join(f"{name} {us / 1e6:.2f} s" for us, name in s.top)
        print(f"\nslowest imports under {s.module} (cumulative): {slowest}")


def _phases(value: str) -> set[str]:
    chosen = {name.strip() for name in value.split(",") if name.strip()}
    unknown = chosen - set(PHASES)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown phase(s): {', '.join(sorted(unknown))}")
    return chosen


def _ints(value: str) -> list[int]:
    return [int(n) for n in value.split(",") if n.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=_ints, default=[10, 10000], help="e.g. 10,10000")
    parser.add_argument(
        "--tasks",
        type=int,
        default=60,
        help="tasks per tenant (over 2 projects; > 40 for a page 2)",
    )
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk per load first")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cursor-sample", type=int, default=500)
    parser.add_argument(
        "--rewarm",
        type=float,
        default=120,
        help="seconds after which a cached load's targets are all read again before its"
        " next run: cache entries live 300 s, and at 10,000 tenants a 5 s run reaches only"
        " a few hundred tenants, so without it later rounds measure expired entries",
    )
    parser.add_argument(
        "--wrk-timeout",
        type=int,
        default=10,
        help="seconds before wrk counts a request as timed out (a stall). Not wrk's 2 s:"
        " at -c256 a server doing 100 req/s answers in 2.5 s on average by queueing alone,"
        " and wrk leaves timed-out requests out of its percentiles",
    )
    parser.add_argument(
        "--only",
        type=_phases,
        default=set(PHASES),
        help=f"comma-separated phases: {','.join(PHASES)} (default: all)",
    )
    parser.add_argument(
        "--concurrency", type=_ints, default=[64, 256], help="wrk -c values (concurrency phase)"
    )
    parser.add_argument(
        "--workers", type=_ints, default=[1, 2], help="uvicorn workers (concurrency phase)"
    )
    parser.add_argument(
        "--db-prefix",
        default="tenantry_bh",
        help="databases are <prefix>_<tenants> (bench/.targets-<database>.txt beside)",
    )
    parser.add_argument("--startup-limit", type=float, default=1.0, help="seconds")
    parser.add_argument("--no-seed", action="store_true", help="reuse seeded databases")
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="servers inherit PYTHONDONTWRITEBYTECODE (see base_env)",
    )
    args = parser.parse_args()

    log_dir = Path(tempfile.mkdtemp(prefix="tenantry-bench-"))
    args.wrk_log = log_dir / "wrk.log"
    print(f"server logs: {log_dir}", flush=True)
    comparisons: list[Comparison] = []
    startups: list[Startup] = []
    if args.only - {"startup"}:
        with tempfile.TemporaryDirectory() as tmp:
            redis = embedded.start_valkey(Path(tmp) / "valkey", persist=False)
            try:
                for count in args.tenants:
                    comparisons += run_one(count, args, f"{redis.connection_url}/0", log_dir)
            finally:
                redis.stop()
    if "startup" in args.only:
        env = base_env(f"{args.db_prefix}_startup", "redis://127.0.0.1:1/0")
        for module in ("tenantry.main", "workers.settings"):
            startups += time_imports(module, env)
    summary(comparisons, startups, args.startup_limit)


if __name__ == "__main__":
    main()
