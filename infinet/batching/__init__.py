"""Batching: big kernels block by block, over devices or a Dask cluster, with durable tiles."""

from infinet.batching.blocks import batch
from infinet.batching.tiles import TileStore, TileWarning

__all__ = ["TileStore", "TileWarning", "batch"]
