"""Conformance cases for dense networks, combinators and branching."""

from infinet import stax
from tests.conformance.cases import Case


def _mlp(nonlin):
    return lambda w: [
        stax.Dense(w, W_std=1.4, b_std=0.2),
        nonlin(),
        stax.Dense(w, W_std=1.3, b_std=0.1),
        nonlin(),
        stax.Dense(4, W_std=1.1, b_std=0.3),
    ]


CASES = [
    Case("dense_relu", _mlp(stax.Relu), (6,)),
    Case("dense_erf", _mlp(stax.Erf), (6,)),
    Case("dense_abrelu", _mlp(lambda: stax.ABRelu(-0.4, 1.2)), (6,)),
    Case("dense_leaky_relu", _mlp(lambda: stax.LeakyRelu(0.1)), (6,)),
    Case("dense_abs", _mlp(stax.Abs), (6,)),
    Case("dense_sigmoid_like", _mlp(stax.Sigmoid_like), (6,)),
    Case(
        "dense_standard_param",
        lambda w: [
            stax.Dense(w, 1.5, 0.3, parameterization="standard"),
            stax.Relu(),
            stax.Dense(4, 1.2, 0.1, parameterization="standard"),
        ],
        (6,),
    ),
    Case(
        "residual_fanin_sum",
        lambda w: [
            stax.Dense(w),
            stax.FanOut(2),
            stax.parallel(stax.serial(stax.Relu(), stax.Dense(w, 1.3, 0.1)), stax.Identity()),
            stax.FanInSum(),
            stax.Erf(),
            stax.Dense(4),
        ],
        (5,),
    ),
    Case(
        "fanin_prod_concat",
        lambda w: [
            stax.Dense(w, 1.2, 0.2),
            stax.FanOut(3),
            stax.parallel(
                stax.serial(stax.Relu(), stax.Dense(w)),
                stax.serial(stax.Erf(), stax.Dense(w)),
                stax.Dense(w // 2),
            ),
            stax.FanInConcat(),
            stax.Dense(w),
            stax.Relu(),
            stax.Dense(4),
        ],
        (5,),
    ),
    Case(
        "fanin_prod",
        lambda w: [
            stax.Dense(w, 1.2, 0.2),
            stax.FanOut(2),
            stax.parallel(stax.serial(stax.Relu(), stax.Dense(w)), stax.Dense(w)),
            stax.FanInProd(),
            stax.Dense(4),
        ],
        (5,),
    ),
    Case(
        "repeat",
        lambda w: [
            stax.Dense(w),
            stax.repeat(stax.serial(stax.Relu(), stax.Dense(w, 1.3, 0.1)), 3),
            stax.Relu(),
            stax.Dense(4),
        ],
        (5,),
    ),
    Case(
        "spatial_flatten",
        lambda w: [stax.Dense(w, 1.2, 0.1), stax.Relu(), stax.Flatten(), stax.Dense(4)],
        (3, 4),
    ),
]
