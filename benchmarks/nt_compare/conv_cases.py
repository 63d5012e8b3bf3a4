"""The convolution and pooling networks compared with Neural Tangents 0.6.5.

Plain data (no infinet import), so that NT's interpreter can read it too. Each
case: ``network`` is Python source evaluated with ``stax`` bound to either
library; ``prelude`` defines helpers it uses; inputs are ``RandomState(seed)``
normal draws of ``shape1`` and ``shape2``; ``apply`` also records NT's
``init_fn`` params and ``apply_fn`` output on ``x1``.
"""

from __future__ import annotations

# NT's README WideResNet, with the final AvgPool((8, 8)) + Flatten written as the
# equivalent GlobalAvgPool (identical on the 8x8 maps of 32x32 inputs; it also
# runs on smaller images, where AvgPool((8, 8)) does not fit).
WRN_PRELUDE = """
def WideResnetBlock(channels, strides=(1, 1), channel_mismatch=False):
    Main = stax.serial(stax.Relu(), stax.Conv(channels, (3, 3), strides, padding='SAME'),
                       stax.Relu(), stax.Conv(channels, (3, 3), padding='SAME'))
    Shortcut = (stax.Conv(channels, (3, 3), strides, padding='SAME')
                if channel_mismatch else stax.Identity())
    return stax.serial(stax.FanOut(2), stax.parallel(Main, Shortcut), stax.FanInSum())

def WideResnetGroup(n, channels, strides=(1, 1)):
    blocks = [WideResnetBlock(channels, strides, channel_mismatch=True)]
    blocks += [WideResnetBlock(channels, (1, 1)) for _ in range(n - 1)]
    return stax.serial(*blocks)

def WideResnet(block_size, k, num_classes):
    return stax.serial(
        stax.Conv(16, (3, 3), padding='SAME'),
        WideResnetGroup(block_size, int(16 * k)),
        WideResnetGroup(block_size, int(32 * k), (2, 2)),
        WideResnetGroup(block_size, int(64 * k), (2, 2)),
        stax.GlobalAvgPool(), stax.Dense(num_classes, 1., 0.))
"""

# Myrtle networks (Shankar et al. 2020): stages of 3x3 SAME conv + ReLU separated
# by 2x2 average pools; conv layers per stage 2,1,1 (5), 2,2,2 (7), 3,3,3 (10).
MYRTLE_PRELUDE = """
def Myrtle(depth, W_std=2 ** 0.5, b_std=0.0):
    per_stage = {5: (2, 1, 1), 7: (2, 2, 2), 10: (3, 3, 3)}[depth]
    conv = lambda: stax.Conv(8, (3, 3), padding='SAME', W_std=W_std, b_std=b_std)
    layers = []
    for i, n in enumerate(per_stage):
        layers += [conv(), stax.Relu()] * n
        layers += [stax.AvgPool((2, 2), (2, 2))] if i < 2 else [stax.GlobalAvgPool()]
    return stax.serial(*layers, stax.Dense(10, W_std, b_std))
"""


def _case(network, shape, seed=0, n1=2, n2=1, **extra):
    return {
        "network": network,
        "shape1": [n1, *shape],
        "shape2": [n2, *shape],
        "seed": seed,
        **extra,
    }


def build_cases() -> dict:
    cases = {}
    for pad in ("VALID", "SAME", "CIRCULAR"):
        for st in ((1, 1), (2, 1)):
            tag = f"{pad.lower()}_s{st[0]}{st[1]}"
            cases[f"conv2d_{tag}"] = _case(
                f"stax.serial(stax.Conv(4, (3, 2), {st}, '{pad}', W_std=1.3, b_std=0.2), "
                "stax.Relu(), stax.Conv(3, (2, 2), None, 'SAME', W_std=0.9, b_std=0.1))",
                (4, 3, 2),
            )
            cases[f"convT2d_{tag}"] = _case(
                f"stax.serial(stax.ConvTranspose(4, (3, 2), {st}, '{pad}', W_std=1.2, "
                "b_std=0.1), stax.Relu(), stax.ConvTranspose(3, (2, 2), (1, 2), 'SAME'))",
                (4, 3, 2),
            )
            cases[f"convlocal2d_{tag}"] = _case(
                f"stax.serial(stax.ConvLocal(4, (3, 2), {st}, '{pad}', W_std=1.2, b_std=0.1), "
                "stax.Relu(), stax.ConvLocal(3, (2, 2), None, 'SAME', b_std=0.3))",
                (4, 3, 2),
            )
            for layer, name in (
                ("Conv", "conv"),
                ("ConvTranspose", "convT"),
                ("ConvLocal", "local"),
            ):
                cases[f"apply_{name}_{tag}"] = _case(
                    f"stax.{layer}(3, (3, 2), {st}, '{pad}', W_std=1.1, b_std=0.4)",
                    (4, 3, 2),
                    apply=True,
                )
            for ne in (False, True):
                cases[f"avgpool_{tag}_ne{int(ne)}"] = _case(
                    "stax.serial(stax.Conv(3, (2, 2), None, 'SAME', 1.2, 0.1), stax.Relu(), "
                    f"stax.AvgPool((3, 2), {st}, '{pad}', normalize_edges={ne}))",
                    (4, 3, 2),
                )
            cases[f"sumpool_{tag}"] = _case(
                "stax.serial(stax.Conv(3, (2, 2), None, 'SAME', 1.2, 0.1), stax.Erf(), "
                f"stax.SumPool((2, 3), {st}, '{pad}'))",
                (4, 3, 2),
            )
    cases["conv1d"] = _case(
        "stax.serial(stax.Conv(3, (3,), (2,), 'SAME', 1.4, 0.2), stax.Relu(), "
        "stax.Conv(3, (2,), None, 'CIRCULAR', 1.1, 0.3))",
        (7, 2),
    )
    cases["conv3d"] = _case(
        "stax.serial(stax.Conv(3, (2, 2, 2), None, 'SAME', 1.2, 0.1), stax.Erf(), "
        "stax.Conv(3, (2, 1, 2), (1, 2, 1), 'CIRCULAR', 0.8, 0.2))",
        (3, 3, 2, 2),
    )
    cases["conv0d"] = _case(
        "stax.serial(stax.Conv(3, (), W_std=1.2, b_std=0.3), stax.Relu(), stax.Conv(2, ()))",
        (4,),
        n1=3,
        n2=2,
    )
    cases["conv_standard"] = _case(
        "stax.serial(stax.Conv(3, (3, 2), None, 'SAME', 1.2, 0.3, parameterization='standard', "
        "s=(2, 3)), stax.Relu(), stax.Conv(4, (2, 2), None, 'VALID', 1.1, None, "
        "parameterization='standard', s=(3, 1)), stax.Relu(), stax.Flatten(), "
        "stax.Dense(1, parameterization='standard'))",
        (5, 4, 2),
        n1=3,
        n2=2,
    )
    cases["convT_local_standard"] = _case(
        "stax.serial(stax.ConvTranspose(3, (3, 2), (2, 1), 'SAME', 1.2, 0.3, "
        "parameterization='standard', s=(2, 3)), stax.Relu(), stax.ConvLocal(4, (2, 2), None, "
        "'VALID', 1.1, 0.2, parameterization='standard', s=(3, 1)))",
        (3, 3, 2),
    )
    cases["conv_nchw"] = _case(
        "stax.serial(stax.Conv(3, (3, 2), (1, 2), 'SAME', 1.3, 0.1, "
        "dimension_numbers=('NCHW', 'OIHW', 'NHWC')), stax.Relu(), stax.Conv(3, (2, 2)))",
        (2, 6, 5),
    )
    cases["apply_conv_nchw"] = _case(
        "stax.Conv(3, (3, 2), (1, 2), 'SAME', 1.3, 0.1, "
        "dimension_numbers=('NCHW', 'OIHW', 'NCHW'))",
        (2, 6, 5),
        apply=True,
    )
    cases["apply_conv_standard"] = _case(
        "stax.Conv(3, (3, 2), None, 'SAME', 1.2, 0.3, parameterization='standard', s=(2, 3))",
        (5, 4, 2),
        apply=True,
    )
    for pool in ("GlobalAvgPool", "GlobalSumPool"):
        cases[pool.lower()] = _case(
            "stax.serial(stax.Conv(3, (3, 3), None, 'SAME', 1.3, 0.1), stax.Relu(), "
            f"stax.Conv(3, (2, 2), (2, 1), 'CIRCULAR', 1.2, 0.2), stax.Relu(), stax.{pool}(), "
            "stax.Dense(1, 1.1, 0.1))",
            (5, 4, 2),
            n1=3,
            n2=2,
        )
    flat = (
        "stax.serial(stax.Conv(3, (3, 3), None, 'SAME', 1.3, 0.1), stax.Relu(), "
        "stax.ConvLocal(3, (2, 2), (2, 1), 'CIRCULAR', 1.2, 0.2), stax.Erf(), "
        "stax.Conv(3, (2, 2), None, 'VALID', 1.1), stax.Relu(), stax.Flatten(), stax.Dense(1))"
    )
    # NT 0.6.5 bug: in the full layout, ConvLocal after an odd number of Conv layers
    # (NT's kernel is then stored with reversed spatial axes) applies filter and
    # strides to the wrong axes; here 6x5 inputs come out 3x6 instead of 3x5. Its
    # diagonal layout is right, and infinet's full layout agrees with it.
    cases["flatten_full"] = _case(
        flat,
        (6, 5, 2),
        n1=3,
        n2=2,
        kernel_kwargs={"diagonal_spatial": False},
        nt_bug="ConvLocal in NT's full layout after an odd number of Conv layers",
    )
    cases["flatten_diagonal"] = _case(
        flat, (6, 5, 2), n1=3, n2=2, kernel_kwargs={"diagonal_spatial": True}
    )
    cases["convlocal_first_full"] = _case(
        "stax.serial(stax.ConvLocal(3, (2, 2), (2, 1), 'SAME', 1.2, 0.3), stax.Relu(), "
        "stax.Conv(3, (2, 2), None, 'SAME', 0.9, 0.1))",
        (4, 3, 2),
        kernel_kwargs={"diagonal_spatial": False},
    )
    cases["wide_resnet_8x8"] = _case(
        "WideResnet(block_size=4, k=1, num_classes=10)", (8, 8, 3), n2=2, prelude=WRN_PRELUDE
    )
    for depth in (5, 7, 10):
        cases[f"myrtle{depth}_8x8"] = _case(
            f"Myrtle({depth})", (8, 8, 3), n2=2, prelude=MYRTLE_PRELUDE
        )
    return cases


CASES = build_cases()
