"""Conformance cases for convolutions and pooling (small images, few channels)."""

from infinet import stax
from tests.conformance.cases import Case

_CONV = dict(mc_width=96, mc_samples=96, mc_rtol=0.06)


def _conv_net(padding, strides=(1, 1), head="flatten"):
    def layers(w):
        out = [
            stax.Conv(w, (3, 2), strides, padding, W_std=1.3, b_std=0.2),
            stax.Relu(),
            stax.Conv(w, (2, 2), None, "SAME", W_std=1.2, b_std=0.1),
            stax.Erf(),
        ]
        out += [stax.Flatten()] if head == "flatten" else [stax.GlobalAvgPool()]
        return out + [stax.Dense(3, W_std=1.1, b_std=0.1)]

    return layers


CASES = [
    Case("conv_same_flatten", _conv_net("SAME"), (4, 3, 2), **_CONV),
    # Pools between nonlinearities, and a residual branch: tiles carry a band of
    # radius 3 (infinet.bands).
    Case(
        "pool_band",
        lambda w: [
            stax.Conv(w, (3, 3), None, "SAME", 1.3, 0.2),
            stax.Relu(),
            stax.AvgPool((2, 2), (2, 2)),
            stax.Conv(w, (2, 2), None, "SAME", 1.2, 0.1),
            stax.FanOut(2),
            stax.parallel(
                stax.serial(stax.Erf(), stax.Conv(w, (2, 2), None, "SAME")), stax.Identity()
            ),
            stax.FanInSum(),
            stax.SumPool((2, 1), None, "SAME"),
            stax.Conv(w, (2, 2), None, "SAME", 1.1),
            stax.Relu(),
            stax.GlobalAvgPool(),
            stax.Dense(3),
        ],
        (6, 5, 2),
        **_CONV,
    ),
    Case("conv_valid_strided_gap", _conv_net("VALID", (2, 1), "gap"), (5, 3, 2), **_CONV),
    Case("conv_circular_gap", _conv_net("CIRCULAR", (1, 2), "gap"), (4, 3, 2), **_CONV),
    Case(
        "conv1d_standard",
        lambda w: [
            stax.Conv(w, (3,), (2,), "SAME", 1.2, 0.3, parameterization="standard"),
            stax.Relu(),
            stax.Conv(w, (2,), None, "VALID", 1.1, 0.1, parameterization="standard"),
            stax.Relu(),
            stax.Flatten(),
            stax.Dense(3, parameterization="standard"),
        ],
        (5, 2),
        **_CONV,
    ),
    Case(
        "conv_transpose",
        lambda w: [
            stax.ConvTranspose(w, (3, 2), (2, 1), "SAME", 1.3, 0.2),
            stax.Relu(),
            stax.ConvTranspose(w, (2, 2), None, "VALID", 1.1),
            stax.Relu(),
            stax.GlobalAvgPool(),
            stax.Dense(3),
        ],
        (2, 3, 2),
        **_CONV,
    ),
    Case(
        "conv_local",
        lambda w: [
            stax.ConvLocal(w, (2, 2), None, "SAME", 1.3, 0.2),
            stax.Relu(),
            stax.ConvLocal(w, (2, 1), (2, 1), "CIRCULAR", 1.1, 0.1),
            stax.Relu(),
            stax.Flatten(),
            stax.Dense(3),
        ],
        (4, 3, 2),
        **_CONV,
    ),
    Case(
        "avg_sum_pool",
        lambda w: [
            stax.Conv(w, (2, 2), None, "SAME", 1.3, 0.2),
            stax.Relu(),
            stax.AvgPool((2, 2), (1, 1), "SAME", normalize_edges=True),
            stax.Conv(w, (2, 2), None, "VALID", 1.2),
            stax.Relu(),
            stax.SumPool((2, 1), (2, 1), "CIRCULAR"),
            stax.AvgPool((1, 2), None, "VALID"),
            stax.GlobalSumPool(),
            stax.Dense(3),
        ],
        (4, 3, 2),
        **_CONV,
    ),
]
