"""What one JSON access-log line costs to format: ours against python-json-logger's.

`uv run python bench/log_formatter.py [--lines 50000] [--rounds 5]`

The same record (an access line with request id, tenant, user, route, status and
duration as extras) formatted by `tenantry.observability.logging.JsonFormatter` and by
python-json-logger's `JsonFormatter` and `OrjsonFormatter` with the same fields. Prints
the median of the rounds in µs per line.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

from pythonjsonlogger.json import JsonFormatter as LibraryJson
from pythonjsonlogger.orjson import OrjsonFormatter as LibraryOrjson

from tenantry.observability.logging import JsonFormatter


def record() -> logging.LogRecord:
    entry = logging.LogRecord(
        "tenantry.access",
        logging.INFO,
        __file__,
        1,
        "GET %s %s %.1fms",
        ("/api/v1/projects/{id}", 200, 3.14),
        None,
    )
    extras = {
        "request_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "tenant_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        "user_id": "16fd2706-8baf-433b-82eb-8c7fada847da",
        "method": "GET",
        "route": "/api/v1/projects/{id}",
        "status": 200,
        "duration_ms": 3.14,
    }
    entry.__dict__.update(extras)
    return entry


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=50000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    fields = "{asctime}{levelname}{name}{message}"
    formatters: dict[str, logging.Formatter] = {
        "ours (orjson)": JsonFormatter(),
        "python-json-logger (json)": LibraryJson(fields, style="{"),
        "python-json-logger (orjson)": LibraryOrjson(fields, style="{"),
    }
    line = record()
    samples: dict[str, list[float]] = {name: [] for name in formatters}
    for _ in range(args.rounds):  # interleaved, so drift hits every formatter alike
        for name, formatter in formatters.items():
            started = time.perf_counter()
            for _ in range(args.lines):
                formatter.format(line)
            samples[name].append((time.perf_counter() - started) / args.lines * 1e6)
    print("| formatter | µs per line |")
    print("| --- | --- |")
    for name, values in samples.items():
        print(f"| {name} | {statistics.median(values):.2f} |")


if __name__ == "__main__":
    main()
