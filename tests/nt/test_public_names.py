"""Issue 16: NT 0.6.5's public names exist here, and layer functions carry NT's names.

The lists are facts about NT 0.6.5, recorded by running ``dir()`` on its modules (public
names only) and ``[f.__name__ for f in layer]`` on its layers.
"""

from __future__ import annotations

import jax.numpy as jnp
import pytest

import infinet
from infinet import predict, stax

NT_TOP_LEVEL = [
    "Kernel", "NtkImplementation", "batch", "empirical_kernel_fn", "empirical_nngp_fn",
    "empirical_ntk_fn", "empirical_ntk_vp_fn", "experimental", "linearize",
    "monte_carlo_kernel_fn", "predict", "stax", "taylor_expand",
]  # fmt: skip
NT_STAX = [
    "ABRelu", "Abs", "Aggregate", "AggregateImplementation", "AttentionMechanism", "AvgPool",
    "Bool", "Conv", "ConvLocal", "ConvTranspose", "Cos", "Dense", "Diagonal", "DotGeneral",
    "Dropout", "Elementwise", "ElementwiseNumerical", "Erf", "Exp", "ExpNormalized",
    "FanInConcat", "FanInProd", "FanInSum", "FanOut", "Flatten", "Gabor", "Gaussian", "Gelu",
    "GlobalAvgPool", "GlobalSelfAttention", "GlobalSumPool", "Hermite", "Identity",
    "ImageResize", "Index", "LayerNorm", "LeakyRelu", "MaskedArray", "Monomial", "Padding",
    "Polynomial", "PositionalEmbedding", "Rbf", "RectifiedMonomial", "Relu", "Sigmoid_like",
    "Sign", "Sin", "Slice", "SumPool", "layer", "parallel", "repeat", "requires", "serial",
    "supports_masking", "unmask_fn",
]  # fmt: skip
NT_PREDICT = [
    "Gaussian", "ODEState", "gp_inference", "gradient_descent", "gradient_descent_mse",
    "gradient_descent_mse_ensemble", "max_learning_rate",
]  # fmt: skip
NT_EXPERIMENTAL = ["empirical_ntk_fn_tf", "empirical_tf", "get_apply_fn_and_params"]


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (infinet, NT_TOP_LEVEL),
        (stax, NT_STAX),
        (predict, NT_PREDICT),
        (infinet.experimental, NT_EXPERIMENTAL),
    ],
    ids=["top", "stax", "predict", "experimental"],
)
def test_every_nt_public_name_exists(module: object, names: list[str]) -> None:
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"{module.__name__} lacks NT's {missing}"  # type: ignore[attr-defined]
    exported = set(getattr(module, "__all__", names))
    assert not [n for n in names if n not in exported]


# NT 0.6.5's [f.__name__ for f in layer] is [name] * 3 for each of these layers.
NT_FUNCTION_NAMES = {
    "Relu": "ABRelu", "ABRelu": "ABRelu", "LeakyRelu": "ABRelu", "Abs": "ABRelu",
    "Erf": "Erf", "Sigmoid_like": "Erf", "Gelu": "Gelu", "Sin": "Sin", "Cos": "Sin",
    "Rbf": "Rbf", "Gaussian": "Gaussian", "Exp": "Exp", "ExpNormalized": "ExpNormalized",
    "Gabor": "Gabor", "Sign": "Sign", "Monomial": "Monomial",
    "RectifiedMonomial": "RectifiedMonomial", "Polynomial": "Polynomial", "Hermite": "Hermite",
    "Elementwise": "Elementwise", "ElementwiseNumerical": "ElementwiseNumerical",
    "Dense": "Dense", "Conv": "Conv", "ConvTranspose": "ConvTranspose",
    "ConvLocal": "ConvLocal", "AvgPool": "AvgPool", "SumPool": "SumPool",
    "GlobalAvgPool": "GlobalAvgPool", "GlobalSumPool": "GlobalSumPool", "Flatten": "Flatten",
    "LayerNorm": "LayerNorm", "Dropout": "Dropout", "FanOut": "FanOut",
    "FanInSum": "FanInSum", "FanInProd": "FanInProd", "FanInConcat": "FanInConcat",
    "Identity": "Identity", "serial": "serial", "parallel": "parallel", "repeat": "repeat",
    "Aggregate": "Aggregate", "DotGeneral": "DotGeneral", "ImageResize": "ImageResize",
    "Index": "Index",
}  # fmt: skip

_BUILD = {
    "ABRelu": lambda: stax.ABRelu(0.0, 1.0),
    "LeakyRelu": lambda: stax.LeakyRelu(0.1),
    "Monomial": lambda: stax.Monomial(2),
    "RectifiedMonomial": lambda: stax.RectifiedMonomial(2),
    "Polynomial": lambda: stax.Polynomial([1.0, 2.0]),
    "Hermite": lambda: stax.Hermite(2),
    "Elementwise": lambda: stax.Elementwise(jnp.tanh, lambda c12, c11, c22: c12),
    "ElementwiseNumerical": lambda: stax.ElementwiseNumerical(jnp.tanh, 3),
    "Dense": lambda: stax.Dense(1),
    "Conv": lambda: stax.Conv(1, (2,)),
    "ConvTranspose": lambda: stax.ConvTranspose(1, (2,)),
    "ConvLocal": lambda: stax.ConvLocal(1, (2,)),
    "AvgPool": lambda: stax.AvgPool((2,)),
    "SumPool": lambda: stax.SumPool((2,)),
    "Dropout": lambda: stax.Dropout(0.5),
    "FanOut": lambda: stax.FanOut(2),
    "serial": lambda: stax.serial(stax.Dense(1)),
    "parallel": lambda: stax.parallel(stax.Dense(1)),
    "repeat": lambda: stax.repeat(stax.Dense(1), 2),
    "DotGeneral": lambda: stax.DotGeneral(lhs=2.0),
    "ImageResize": lambda: stax.ImageResize((2,), "linear"),
    "Index": lambda: stax.Index(stax.Slice[0]),
}


@pytest.mark.parametrize("layer_name", sorted(NT_FUNCTION_NAMES))
def test_layer_functions_carry_nt_names(layer_name: str) -> None:
    layer = _BUILD.get(layer_name, getattr(stax, layer_name))()
    expected = NT_FUNCTION_NAMES[layer_name]
    assert [f.__name__ for f in layer] == [expected] * 3
    assert [f.__qualname__ for f in layer] == [expected] * 3


def test_renaming_leaves_shared_functions_alone() -> None:
    # Relu and Identity may share helper functions; naming one must not rename the other.
    relu, identity = stax.Relu(), stax.Identity()
    assert relu.init_fn.__name__ == "ABRelu" and identity.init_fn.__name__ == "Identity"
