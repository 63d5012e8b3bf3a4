"""Elementwise nonlinearities with closed-form NNGP and NTK maps, one family per module.

==================================================  ===========================
nonlinearities                                      module
==================================================  ===========================
Relu, ABRelu, LeakyRelu, Abs                        :mod:`.arccos`
Erf, Sigmoid_like                                   :mod:`.erf`
Gelu                                                :mod:`.gelu`
Sin, Cos, Rbf                                       :mod:`.trig`
Exp, Gaussian, ExpNormalized, Gabor                 :mod:`.exponential`
Sign, RectifiedMonomial                             :mod:`.rectified`
Monomial, Polynomial, Hermite                       :mod:`.polynomial`
Elementwise, ElementwiseNumerical                   :mod:`.custom`
==================================================  ===========================
"""

from infinet.stax.activations.arccos import ABRelu, Abs, LeakyRelu, Relu
from infinet.stax.activations.custom import Elementwise, ElementwiseNumerical
from infinet.stax.activations.erf import Erf, Sigmoid_like
from infinet.stax.activations.exponential import Exp, ExpNormalized, Gabor, Gaussian
from infinet.stax.activations.gelu import Gelu
from infinet.stax.activations.polynomial import Hermite, Monomial, Polynomial
from infinet.stax.activations.rectified import RectifiedMonomial, Sign
from infinet.stax.activations.trig import Cos, Rbf, Sin

__all__ = [
    "ABRelu",
    "Abs",
    "Cos",
    "Elementwise",
    "ElementwiseNumerical",
    "Erf",
    "Exp",
    "ExpNormalized",
    "Gabor",
    "Gaussian",
    "Gelu",
    "Hermite",
    "LeakyRelu",
    "Monomial",
    "Polynomial",
    "Rbf",
    "RectifiedMonomial",
    "Relu",
    "Sigmoid_like",
    "Sign",
    "Sin",
]
