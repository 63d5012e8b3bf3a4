"""Layers: each returns a :class:`Layer` ``(init_fn, apply_fn, kernel_fn)``.

Where to find each layer's math:

==========================  ============================================
layer                       module
==========================  ============================================
serial, parallel, repeat    :mod:`infinet.stax.combinators`
FanOut, FanIn*              :mod:`infinet.stax.branching`
Dense                       :mod:`infinet.stax.dense`
Flatten                     :mod:`infinet.stax.pooling`
Identity                    :mod:`infinet.stax.reshape`
nonlinearities              :mod:`infinet.stax.activations` (one family per file)
==========================  ============================================
"""

from infinet.stax.activations import ABRelu, Abs, Erf, LeakyRelu, Relu, Sigmoid_like
from infinet.stax.base import KernelFn, Layer
from infinet.stax.branching import FanInConcat, FanInProd, FanInSum, FanOut
from infinet.stax.combinators import parallel, repeat, serial
from infinet.stax.dense import Dense
from infinet.stax.pooling import Flatten
from infinet.stax.reshape import Identity

__all__ = [
    "ABRelu",
    "Abs",
    "Dense",
    "Erf",
    "FanInConcat",
    "FanInProd",
    "FanInSum",
    "FanOut",
    "Flatten",
    "Identity",
    "KernelFn",
    "Layer",
    "LeakyRelu",
    "Relu",
    "Sigmoid_like",
    "parallel",
    "repeat",
    "serial",
]
