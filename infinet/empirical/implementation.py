"""The choice of algorithm for the empirical NTK.

Example:
    >>> from infinet.empirical.implementation import NtkImplementation
    >>> NtkImplementation(3).name
    'STRUCTURED_DERIVATIVES'
"""

from __future__ import annotations

import enum


class NtkImplementation(enum.IntEnum):
    """Algorithm for the empirical NTK (Novak et al. 2022, arXiv 2206.08720).

    Attributes:
        AUTO: pick the cheapest of the three by the compiled computation's cost
            (see :mod:`infinet.empirical.auto`).
        JACOBIAN_CONTRACTION: materialise ``∂f/∂θ`` and contract it.
        NTK_VECTOR_PRODUCTS: one VJP and one JVP per output basis vector; never
            holds a Jacobian.
        STRUCTURED_DERIVATIVES: contract per-primitive structure (dense, conv,
            elementwise weights) in the cheapest order.
    """

    AUTO = 0
    JACOBIAN_CONTRACTION = 1
    NTK_VECTOR_PRODUCTS = 2
    STRUCTURED_DERIVATIVES = 3
