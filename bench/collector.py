"""What the cyclic garbage collector costs a serving API process, with Python's own
thresholds and with the app's (`tenantry.kit.startup.serving`).

Starts `tenantry serve` on a database seeded by `bench/run.py` (reused, as with its
`--no-seed`), once per variant and round, interleaved; warms it as `bench/run.py` does,
drives the cached first page and page 2 by cursor with wrk, then reads every
collection's time from the server (`bench/collector_site`, loaded through PYTHONPATH,
times them with `gc.callbacks`). Prints per variant: collections by generation, the
collector's milliseconds per 1,000 requests, its longest pause, and the server's CPU
per request.

    uv run python bench/collector.py --tenants 10000   # a database bench/run.py seeded
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from tenantry import embedded

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # bench/run.py, beside this file

VARIANTS = {"as Python ships": "1", "tenantry": "0"}


def measure(
    variant: str, redis_url: str, args: argparse.Namespace, database: str, log_dir: Path
) -> dict[str, float]:
    rows = bench.targets(bench.ROOT / "bench" / f".targets-{database}.txt")
    stats = log_dir / f"stats-{variant}.json"
    env = bench.base_env(database, redis_url)
    env["PYTHONPATH"] = f"{bench.ROOT / 'bench' / 'collector_site'}:{env['PYTHONPATH']}"
    env["COLLECTOR_STATS"] = str(stats)
    env["COLLECTOR_AS_SHIPPED"] = VARIANTS[variant]
    port = bench.free_port()
    command = [sys.executable, "-m", "tenantry.cli", "serve", "--port", str(port), "--workers", "1"]
    log = log_dir / f"{variant}.log"
    with bench.process(command, env, port, log) as server:
        first = [f"/api/v1/projects/{r.project}/tasks?limit=20 {r.token}" for r in rows]
        bench.visit_all(server.base, first)
        lines = first + bench.page_two_lines(server.base, rows, args.cursor_sample)
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
            handle.write("\n".join(lines) + "\n")
        os.kill(server.pid, signal.SIGUSR1)  # the warm-up's collections, to subtract
        time.sleep(0.3)
        before = json.loads(stats.read_text())["totals"]
        cpu = server.cpu_seconds()
        out = subprocess.run(
            [
                "wrk",
                "-t2",
                "-c32",
                f"-d{args.duration}s",
                "-s",
                str(bench.ROOT / "bench" / "targets.lua"),
                server.base,
            ],
            env={**os.environ, "TARGETS": handle.name},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        cpu = server.cpu_seconds() - cpu
        os.unlink(handle.name)
        os.kill(server.pid, signal.SIGUSR1)
        time.sleep(0.3)
        after = json.loads(stats.read_text())
    requests = int(bench._find(r"(\d+) requests in", out))
    result = {"requests": requests, "cpu_ms": cpu * 1000 / requests}
    seconds = 0.0
    for generation in "012":
        result[f"gen{generation}"] = (
            after["totals"][generation]["collections"] - before[generation]["collections"]
        )
        seconds += after["totals"][generation]["seconds"] - before[generation]["seconds"]
    result["gc_ms_per_1000"] = seconds * 1000 / requests * 1000
    result["longest_ms"] = max(t["longest"] for t in after["totals"].values()) * 1000
    result["threshold"] = after["threshold"][0]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--db-prefix", default="tenantry_bh")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cursor-sample", type=int, default=500)
    args = parser.parse_args()
    database = f"{args.db_prefix}_{args.tenants}"
    log_dir = Path(tempfile.mkdtemp(prefix="tenantry-collector-"))
    with tempfile.TemporaryDirectory() as tmp:
        # The run's own throwaway Valkey, as bench/run.py starts it.
        valkey = embedded.start_valkey(Path(tmp) / "valkey", persist=False)
        url = f"{valkey.connection_url}/0"
        try:
            results: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
            for _ in range(args.rounds):
                for variant in VARIANTS:
                    with redis.Redis.from_url(url) as client:
                        client.flushall()
                    results[variant].append(measure(variant, url, args, database, log_dir))
                    r = results[variant][-1]
                    print(
                        f"  {variant:>16}: {r['requests']:.0f} requests, "
                        f"CPU {r['cpu_ms']:.3f} ms/req, "
                        f"collections {r['gen0']:.0f}/{r['gen1']:.0f}/{r['gen2']:.0f}, "
                        f"{r['gc_ms_per_1000']:.1f} ms per 1,000 requests, "
                        f"longest {r['longest_ms']:.1f} ms",
                        flush=True,
                    )
        finally:
            valkey.stop()
    print(
        f"\n{args.tenants} tenants, first page and page 2 mixed, wrk -c32 -d{args.duration}s, "
        f"medians of {args.rounds} rounds"
    )
    print(
        "| thresholds | young threshold | collections (gen 0/1/2) | collector, ms per 1,000 requests | longest pause (warm-up included) | server CPU per request |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for variant, runs in results.items():
        m = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"| {variant} | {m['threshold']:.0f} | {m['gen0']:.0f} / {m['gen1']:.0f} / {m['gen2']:.0f} | "
            f"{m['gc_ms_per_1000']:.1f} | {m['longest_ms']:.1f} ms | {m['cpu_ms']:.3f} ms |"
        )


if __name__ == "__main__":
    main()
