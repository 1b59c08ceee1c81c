"""Fixtures of the fault suite: an embedded PostgreSQL of its own (module scope)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.cluster import Cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    own = Cluster(tmp_path_factory.mktemp("cluster"))
    own.start()
    try:
        own.prepare()
        yield own
    finally:
        own.cleanup()
