"""Layers: each returns a :class:`Layer` ``(init_fn, apply_fn, kernel_fn)``.

Where to find each layer's math:

==========================  ============================================
layer                       module
==========================  ============================================
serial, parallel, repeat    :mod:`infinet.stax.combinators`
FanOut, FanIn*              :mod:`infinet.stax.branching`
Dense                       :mod:`infinet.stax.dense`
LayerNorm, Dropout          :mod:`infinet.stax.normalization`
Aggregate                   :mod:`infinet.stax.graph`
GlobalSelfAttention         :mod:`infinet.stax.attention`
Conv, ConvTranspose,        :mod:`infinet.stax.conv`
ConvLocal
Avg/SumPool, Global*Pool,   :mod:`infinet.stax.pooling`
Flatten
NT-style custom layers      :mod:`infinet.stax.compat`
Identity, DotGeneral,       :mod:`infinet.stax.reshape`
ImageResize, Index, Slice
nonlinearities              :mod:`infinet.stax.activations` (one family per file)
==========================  ============================================
"""

from infinet.stax.activations import (
    ABRelu,
    Abs,
    Cos,
    Elementwise,
    ElementwiseNumerical,
    Erf,
    Exp,
    ExpNormalized,
    Gabor,
    Gaussian,
    Gelu,
    Hermite,
    LeakyRelu,
    Monomial,
    Polynomial,
    Rbf,
    RectifiedMonomial,
    Relu,
    Sigmoid_like,
    Sign,
    Sin,
)
from infinet.stax.attention import GlobalSelfAttention
from infinet.stax.base import KernelFn, Layer
from infinet.stax.branching import FanInConcat, FanInProd, FanInSum, FanOut
from infinet.stax.combinators import parallel, repeat, serial
from infinet.stax.compat import (
    AggregateImplementation,
    AttentionMechanism,
    Bool,
    Diagonal,
    MaskedArray,
    Padding,
    PositionalEmbedding,
    layer,
    requires,
    supports_masking,
    unmask_fn,
)
from infinet.stax.conv import Conv, ConvLocal, ConvTranspose
from infinet.stax.dense import Dense
from infinet.stax.graph import Aggregate
from infinet.stax.normalization import Dropout, LayerNorm
from infinet.stax.pooling import AvgPool, Flatten, GlobalAvgPool, GlobalSumPool, SumPool
from infinet.stax.reshape import DotGeneral, Identity, ImageResize, Index, Slice
from infinet.stax.spec import LayerSpec

__all__ = [
    "ABRelu",
    "Abs",
    "Aggregate",
    "AggregateImplementation",
    "AttentionMechanism",
    "AvgPool",
    "Bool",
    "Conv",
    "ConvLocal",
    "ConvTranspose",
    "Cos",
    "Dense",
    "Diagonal",
    "DotGeneral",
    "Dropout",
    "Elementwise",
    "ElementwiseNumerical",
    "Erf",
    "Exp",
    "ExpNormalized",
    "FanInConcat",
    "FanInProd",
    "FanInSum",
    "FanOut",
    "Flatten",
    "Gabor",
    "Gaussian",
    "Gelu",
    "GlobalAvgPool",
    "GlobalSelfAttention",
    "GlobalSumPool",
    "Hermite",
    "Identity",
    "ImageResize",
    "Index",
    "KernelFn",
    "Layer",
    "LayerNorm",
    "LayerSpec",
    "LeakyRelu",
    "MaskedArray",
    "Monomial",
    "Padding",
    "Polynomial",
    "PositionalEmbedding",
    "Rbf",
    "RectifiedMonomial",
    "Relu",
    "Sigmoid_like",
    "Sign",
    "Sin",
    "Slice",
    "SumPool",
    "layer",
    "parallel",
    "repeat",
    "requires",
    "serial",
    "supports_masking",
    "unmask_fn",
]
