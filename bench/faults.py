"""The fault table: statuses per phase, recovery times, throughput while Redis hangs.

Runs the fault scenario of tests/faults/test_faults.py (its own embedded PostgreSQL,
Valkey and SMTP server, a real `tenantry serve` and `tenantry worker`, four clients)
and prints the table docs/operations/faults.md quotes. Here the throughput goal is
asserted as the issue states it (≥ 80 % of baseline while Redis is frozen); the test
in CI asserts only ≥ 50 %, since a shared 2-core box is too noisy for the goal.

    uv run python bench/faults.py [--outage 30] [--phase 4] [--min-ratio 0.8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outage", type=float, default=30.0, help="Redis outage, seconds")
    parser.add_argument("--phase", type=float, default=4.0, help="seconds per load phase")
    parser.add_argument("--min-ratio", type=float, default=0.8, help="frozen/baseline goal")
    args = parser.parse_args()
    env = dict(
        os.environ,
        FAULTS_REDIS_OUTAGE_SECONDS=str(args.outage),
        FAULTS_PHASE_SECONDS=str(args.phase),
        FAULTS_MIN_HANG_RATIO=str(args.min_ratio),
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-n0",
        "-q",
        "-s",
        "tests/faults/test_faults.py",
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("FAULT TABLE"):
            print(line)
    print(done.stdout.splitlines()[-1] if done.stdout else done.stderr[-2000:])
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
