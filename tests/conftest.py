"""Shared fixtures."""

import pytest


@pytest.fixture(scope="module")
def client():
    """A real Dask ``LocalCluster``, two worker processes of one thread each, started
    for a test module and stopped after it (``pip install "infinet[distributed]"``)."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()
