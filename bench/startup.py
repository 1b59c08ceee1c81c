"""What starting a process costs: the API module, the app, the worker's settings, the probe.

`uv run python bench/startup.py [--runs 7] [--floor] [--bytecode compiled|none|both]`

Each target runs in a fresh interpreter (`sys.executable`, the project's environment),
the targets interleaved round by round so a burst of load elsewhere hits them alike.
Prints the best and the median of the runs: CPU seconds (user + system of the child,
which load elsewhere inflates least) and wall seconds. `tenantry worker --check` finds
no worker here and exits 1; what it costs to say so is what a probe pays every period.

Twice by default, because bytecode decides half of it: `compiled` reads `.pyc` files
written by a first, unmeasured run (as the image ships them, `UV_COMPILE_BYTECODE`);
`none` compiles every module from source in every process, which is what happens
wherever `PYTHONDONTWRITEBYTECODE=1` is set and nothing compiled the environment. Both
use a private `PYTHONPYCACHEPREFIX`, so the virtualenv's own caches play no part.

`--floor` adds the libraries the API and the worker cannot start without, imported
alone: what is left above that line is ours to cut. `python -X importtime -c "import
tenantry.main"` shows where the rest goes.

`--serve` adds the whole start of the API: `tenantry serve` (production settings, one
uvicorn worker) from exec to its first 200 on `/health`, which is the imports,
`create_app()`, uvicorn and the lifespan (PostgreSQL and Redis connected, the collector's
freeze); its CPU is read from `/proc` at that moment. It needs PostgreSQL and Redis:
`DATABASE_URL` (default: the local superuser's `postgres` database, only connected to,
so the role check is off) and `REDIS_URL` as the settings read them.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("tenantry"))

TARGETS: dict[str, list[str]] = {
    "import tenantry.main": [sys.executable, "-c", "import tenantry.main"],
    "create_app()": [
        sys.executable,
        "-c",
        "from tenantry.main import create_app; create_app()",
    ],
    "import workers.settings": [sys.executable, "-c", "import workers.settings"],
    "tenantry worker --check": [CLI, "worker", "--check"],
}
# The libraries alone, loaded as the entry points load them: with the garbage collector
# paused (tenantry.kit.startup), so that what stands above a floor is ours.
_PAUSED = "import gc; gc.disable(); import "
FLOOR: dict[str, list[str]] = {
    "floor: python -c pass": [sys.executable, "-c", "pass"],
    "floor: fastapi+pydantic+SQLA": [
        sys.executable,
        "-c",
        _PAUSED + "fastapi, pydantic, sqlalchemy.ext.asyncio",
    ],
    "floor: worker libraries": [
        sys.executable,
        "-c",
        _PAUSED + "arq, asyncpg, orjson, prometheus_client, pydantic_settings, redis.asyncio,"
        " sqlalchemy.ext.asyncio, sqlmodel",
    ],
    "floor: API libraries": [
        sys.executable,
        "-c",
        _PAUSED + "arq, asyncpg, fastapi, jwt, orjson, prometheus_client, pydantic_settings,"
        " redis.asyncio, sqlalchemy.ext.asyncio, sqlmodel",
    ],
}


def environment(bytecode: str, cache: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(cache)}
    # A port nothing listens on: the probe's answer is a refused connection, at once.
    env.setdefault("WORKER_METRICS_PORT", "9")
    if bytecode == "compiled":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(CPU, wall) seconds of one fresh process, measured by the parent."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime, wall


def serve_once(env: dict[str, str]) -> tuple[float, float]:
    """(CPU, wall) seconds from exec of `tenantry serve` to its first 200 on /health."""
    env = {
        **env,
        "ENVIRONMENT": "production",
        "SECRET_KEY": "bench-startup-secret-0123456789abcdef0123456789",
        "DATABASE_URL": env.get(
            "DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
        ),
        "CHECK_DB_ROLE": "false",
    }
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.perf_counter()
    proc = subprocess.Popen(
        [CLI, "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None:
                    raise SystemExit("tenantry serve exited before answering /health") from None
                time.sleep(0.005)
        wall = time.perf_counter() - started
        # utime and stime, fields 14 and 15 of /proc/PID/stat, in clock ticks
        ticks = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13]
        cpu = sum(map(int, ticks)) / os.sysconf("SC_CLK_TCK")
    finally:
        proc.terminate()
        proc.wait()
    return cpu, wall


Target = Callable[[dict[str, str]], tuple[float, float]]


def measure(
    targets: dict[str, Target], env: dict[str, str], runs: int
) -> dict[str, list[tuple[float, float]]]:
    for (
        target
    ) in targets.values():  # once unmeasured: bytecode written (if it may be), files cached
        target(env)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
    for _ in range(runs):
        for name, target in targets.items():
            results[name].append(target(env))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per target")
    parser.add_argument("--floor", action="store_true", help="also time the bare libraries")
    parser.add_argument("--serve", action="store_true", help="also time `tenantry serve`")
    parser.add_argument("--bytecode", choices=["compiled", "none", "both"], default="both")
    args = parser.parse_args()

    commands = {**TARGETS, **(FLOOR if args.floor else {})}
    targets: dict[str, Target] = {name: partial(run_once, argv) for name, argv in commands.items()}
    if args.serve:
        targets["tenantry serve → /health"] = serve_once
    modes = ["compiled", "none"] if args.bytecode == "both" else [args.bytecode]
    print(f"{args.runs} fresh processes per target; seconds")
    for mode in modes:
        with tempfile.TemporaryDirectory(prefix="startup-pyc-") as cache:
            results = measure(targets, environment(mode, Path(cache)), args.runs)
        print(f"\nbytecode {mode}   (load average {os.getloadavg()[0]:.2f})")
        print(f"{'':28} {'CPU best':>9} {'median':>7} {'wall best':>10} {'median':>7}")
        for name, timings in results.items():
            cpu = [c for c, _ in timings]
            wall = [w for _, w in timings]
            print(
                f"{name:28} {min(cpu):9.3f} {statistics.median(cpu):7.3f}"
                f" {min(wall):10.3f} {statistics.median(wall):7.3f}"
            )


if __name__ == "__main__":
    main()
