"""Loaded by `bench/collector.py` into the server it starts (PYTHONPATH): times every
cyclic collection by generation, writes the totals to $COLLECTOR_STATS on SIGUSR1,
and with COLLECTOR_AS_SHIPPED=1 keeps Python's own thresholds (the app's
`gc.set_threshold` call does nothing)."""

import gc
import json
import os
import signal
import time

_started: dict[int, float] = {}
_totals = {g: {"collections": 0, "seconds": 0.0, "longest": 0.0} for g in range(3)}


def _timed(phase: str, info: dict[str, int]) -> None:
    generation = info["generation"]
    if phase == "start":
        _started[generation] = time.perf_counter()
        return
    took = time.perf_counter() - _started.pop(generation, time.perf_counter())
    total = _totals[generation]
    total["collections"] += 1
    total["seconds"] += took
    total["longest"] = max(total["longest"], took)


def _write(signum: int, frame: object) -> None:
    with open(os.environ["COLLECTOR_STATS"], "w") as out:
        json.dump({"totals": _totals, "threshold": gc.get_threshold()}, out)


if os.environ.get("COLLECTOR_STATS"):
    gc.callbacks.append(_timed)
    signal.signal(signal.SIGUSR1, _write)
    if os.environ.get("COLLECTOR_AS_SHIPPED") == "1":
        gc.set_threshold = lambda *args: None  # type: ignore[assignment]
