"""Sketched kernels: random-feature maps of a ``stax`` network's NNGP and NTK.

``infinet.features(layer, n_features=F, key=key, get='ntk')`` returns a feature
map φ with φ(x)·φ(x') ≈ kernel_fn(x, x', get), in time linear in the number of
examples (and of pixels), from the same layer description as ``kernel_fn``
(Zandieh et al. 2021, arXiv 2106.07880; Han et al. 2022, arXiv 2209.04121).
:func:`ridge_solve` turns features into ``predict``'s infinite-time mean at
O(N F²). See ``docs/sketches.md``.

Modules: :mod:`~infinet.sketch.state` (features and random projections),
:mod:`~infinet.sketch.linear` (Dense, Conv), :mod:`~infinet.sketch.arccos`
(random features, ReLU family), :mod:`~infinet.sketch.hermite` (general φ),
:mod:`~infinet.sketch.pooling` (pools, Flatten), :mod:`~infinet.sketch.compose`
(dispatch, combinators), :mod:`~infinet.sketch.entry` (:func:`features`),
:mod:`~infinet.sketch.solve` (:func:`ridge_solve`).
"""

from __future__ import annotations

from infinet.sketch.entry import FeatureFn, features
from infinet.sketch.solve import ridge_solve

__all__ = ["FeatureFn", "features", "ridge_solve"]
