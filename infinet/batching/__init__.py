"""Batching: big kernels block by block, over devices, with resumable tiles on disk."""

from infinet.batching.blocks import batch
from infinet.batching.tiles import TileStore

__all__ = ["TileStore", "batch"]
