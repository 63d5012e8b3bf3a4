"""Elementwise nonlinearities with closed-form NNGP and NTK maps, one family per module."""

from infinet.stax.activations.arccos import ABRelu, Abs, LeakyRelu, Relu
from infinet.stax.activations.erf import Erf, Sigmoid_like

__all__ = ["ABRelu", "Abs", "Erf", "LeakyRelu", "Relu", "Sigmoid_like"]
