"""Empirical (finite-width) kernels: NNGP, NTK, NTK-vector products, linearisation.

Three exact NTK algorithms (Novak, Sohl-Dickstein & Schoenholz 2022, "Fast
Finite Width Neural Tangent Kernel", arXiv 2206.08720) behind one API with
Neural Tangents 0.6.5's signatures:

* :mod:`~infinet.empirical.jacobian`: Jacobian contraction;
* :mod:`~infinet.empirical.ntk_vp`: NTK-vector products;
* :mod:`~infinet.empirical.structured`: structured derivatives;
* :mod:`~infinet.empirical.auto`: picks the cheapest by compiled cost.

Example:
    >>> import jax.numpy as jnp
    >>> from infinet import empirical_ntk_fn, NtkImplementation
    >>> f = lambda p, x: jnp.tanh(x @ p)
    >>> ntk_fn = empirical_ntk_fn(f, implementation=NtkImplementation.STRUCTURED_DERIVATIVES)
    >>> ntk_fn(jnp.ones((2, 3)), None, jnp.ones((3, 4))).shape
    (2, 2)
"""

from infinet.empirical.api import (
    DEFAULT_NTK_IMPLEMENTATION,
    NtkImplementation,
    empirical_kernel_fn,
    empirical_nngp_fn,
    empirical_ntk_fn,
)
from infinet.empirical.linearize import linearize, taylor_expand
from infinet.empirical.ntk_vp import empirical_ntk_vp_fn
from infinet.empirical.structured import StructuredDerivativesFallbackWarning

__all__ = [
    "DEFAULT_NTK_IMPLEMENTATION",
    "NtkImplementation",
    "StructuredDerivativesFallbackWarning",
    "empirical_kernel_fn",
    "empirical_nngp_fn",
    "empirical_ntk_fn",
    "empirical_ntk_vp_fn",
    "linearize",
    "taylor_expand",
]
