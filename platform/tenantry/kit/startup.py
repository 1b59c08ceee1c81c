"""A process's start-up imports, with the cyclic garbage collector out of the way.

Importing the API or the worker creates over 100,000 objects that live as long as the
process (modules, classes, functions, pydantic and SQLAlchemy structures) and almost no
garbage (a few hundred objects). With the collector on, every 700 net allocations start
a collection, and the older generations' ones walk everything loaded so far: about 280
collections that find nothing, a quarter of the CPU `import tenantry.main` costs
(`bench/startup.py`). Paused while the modules load and then frozen (`gc.freeze()`: what
exists now leaves the collector's sight for good, as Python's docs advise for objects
that live as long as the process), the modules cost the collector nothing now and
nothing later, where re-enabling it on a young generation that large would make the
first collections, on the first requests or jobs, walk all of it instead.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def startup_imports() -> Iterator[None]:
    """Run the block (an entry point's imports) with the collector paused, then freeze
    what it loaded. Nested, or where the process runs without the collector, it leaves
    the collector as it found it."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()
