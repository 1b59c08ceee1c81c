"""Fixtures of the fault suite: an embedded PostgreSQL of its own (module scope)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.cluster import Cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    base = Path(tempfile.mkdtemp(prefix="tenantry-faults-"))
    own = Cluster(base)
    try:
        own.start()
        own.prepare()
        yield own
    finally:
        own.cleanup()
        shutil.rmtree(base, ignore_errors=True)
