"""The evaluation engine: how a kernel is computed, apart from what it is.

A layer (:mod:`infinet.stax`) is its covariance map plus static facts about it.
This package decides how the map is evaluated:

* :mod:`infinet.engine.plan`: the :class:`~infinet.engine.plan.Plan`, made once
  from static information (input Gram, layout, tiling, placement, store);
* :mod:`infinet.engine.gram`: the one input-kernel builder (host BLAS or XLA);
* :mod:`infinet.engine.tiles`: the one pair tiler (blocks of any N, symmetric
  jobs computing each unordered pair once, assembly);
* :mod:`infinet.engine.local`: the executor in this process, used by every
  ``kernel_fn`` for the plain call and under ``jit``/``grad``/``vmap``.

Example:
    >>> import numpy as np
    >>> from infinet import stax
    >>> _, _, kernel_fn = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(1))
    >>> kernel_fn.plan(np.ones((4, 3)), None, 'ntk').gram  # few channels: XLA's product
    'xla'
    >>> kernel_fn.plan(np.ones((4, 1024)), None, 'ntk').gram
    'host-syrk'
"""

from infinet.engine.local import Evaluator
from infinet.engine.plan import Plan, TilePlan, make_plan

__all__ = ["Evaluator", "Plan", "TilePlan", "make_plan"]
