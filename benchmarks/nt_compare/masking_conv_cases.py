"""Masked (``mask_constant``) convolution and pooling networks compared with NT 0.6.5.

Plain data (no infinet import), so that NT's interpreter can read it too. Each
case has:

* ``network``: Python source evaluated with ``stax`` bound to either library;
* ``setup``: Python source run with ``rs = np.random.RandomState(seed)`` and
  ``shape1``/``shape2`` that defines the inputs ``x1`` and ``x2``, with some
  entries set to the mask constant ``MC``;
* ``kernel_kwargs``: extra keyword arguments of ``kernel_fn``;
* ``apply``: also record NT's ``init_fn`` params and its masked ``apply_fn``
  output on ``x1``.

NT 0.6.5 pools only masks that are equal across channels, so every pooling
layer here follows a ``Dense`` or ``Conv`` (whose output masks have one channel).
"""

from __future__ import annotations

MC = -7.0

# Trailing and leading padding, a hole and a single masked channel (1-D inputs).
SETUP_1D = f"""
x1 = rs.randn(*shape1); x2 = rs.randn(*shape2)
x1[0, -2:] = {MC}; x1[1, 0] = {MC}; x1[1, 2, 0] = {MC}
x2[0, 1:3] = {MC}; x2[-1, -1] = {MC}
"""

# Masked rows, columns and a single masked channel (2-D inputs).
SETUP_2D = f"""
x1 = rs.randn(*shape1); x2 = rs.randn(*shape2)
x1[0, -1] = {MC}; x1[1, :, 0] = {MC}; x1[1, 1, 1, 0] = {MC}
x2[0, 0] = {MC}; x2[-1, 1:3, -1] = {MC}
"""

HEAD = "stax.Relu(), stax.GlobalAvgPool(), stax.Dense(1, 1.1, 0.1)"


def _case(network, shape, setup=SETUP_1D, n1=3, n2=2, seed=0, **extra):
    return {
        "network": network,
        "shape1": [n1, *shape],
        "shape2": [n2, *shape],
        "seed": seed,
        "setup": setup,
        **extra,
    }


def _windowed_cases() -> dict:
    """One sliding-window layer per padding and stride, pooled globally."""
    cases = {}
    for pad in ("VALID", "SAME", "CIRCULAR"):
        for st in (1, 2):
            tag = f"{pad.lower()}_s{st}"
            cases[f"conv_{tag}"] = _case(
                f"stax.serial(stax.Conv(3, (3,), ({st},), '{pad}', 1.3, 0.2), {HEAD})", (6, 2)
            )
            cases[f"convT_{tag}"] = _case(
                f"stax.serial(stax.ConvTranspose(3, (3,), ({st},), '{pad}', 1.2, 0.1), {HEAD})",
                (5, 2),
            )
    # The same output-mask rule as Conv: a few geometries (an even filter).
    for pad, st in (("VALID", 2), ("CIRCULAR", 1)):
        cases[f"local_{pad.lower()}_s{st}"] = _case(
            f"stax.serial(stax.ConvLocal(3, (4,), ({st},), '{pad}', 1.1, 0.3), {HEAD})", (7, 2)
        )
    for pad, st, ne in (("VALID", 2, False), ("SAME", 1, True), ("SAME", 2, False)):
        cases[f"avgpool_{pad.lower()}_s{st}_ne{int(ne)}"] = _case(
            f"stax.serial(stax.Dense(3, 1.2, 0.1), stax.AvgPool((3,), ({st},), '{pad}', "
            f"normalize_edges={ne}), {HEAD})",
            (6, 2),
        )
    for pad, st in (("VALID", 1), ("SAME", 2)):
        cases[f"sumpool_{pad.lower()}_s{st}"] = _case(
            f"stax.serial(stax.Dense(3, 1.2, 0.1), stax.SumPool((2,), ({st},), '{pad}'), "
            "stax.Erf(), stax.GlobalSumPool(), stax.Dense(1))",
            (6, 2),
        )
    return cases


def _network_cases() -> dict:
    """Deeper, 2-D and spatial-output networks."""
    return {
        # Spatial outputs: the masked positions' zeros are compared too.
        "spatial_conv_stack": _case(
            "stax.serial(stax.Conv(3, (3,), (2,), 'SAME', 1.3, 0.2), stax.Relu(), "
            "stax.Conv(2, (2,), None, 'VALID', 1.1, 0.1))",
            (7, 2),
            n1=2,
        ),
        "spatial_convT_avgpool": _case(
            "stax.serial(stax.ConvTranspose(3, (2,), (2,), 'VALID', 1.2, 0.1), stax.Relu(), "
            "stax.AvgPool((3,), (2,), 'SAME'))",
            (4, 2),
            n1=2,
        ),
        "spatial_2d": _case(
            "stax.serial(stax.Conv(3, (3, 2), (2, 1), 'SAME', 1.3, 0.2), stax.Relu(), "
            "stax.AvgPool((2, 2), None, 'SAME'))",
            (4, 3, 2),
            setup=SETUP_2D,
            n1=2,
        ),
        "flatten_diagonal": _case(
            "stax.serial(stax.Conv(3, (3,), (2,), 'VALID', 1.3, 0.2), stax.Relu(), "
            "stax.ConvLocal(3, (2,), None, 'SAME', 1.1, 0.1), stax.Relu(), stax.Flatten(), "
            "stax.Dense(1))",
            (7, 2),
            kernel_kwargs={"diagonal_spatial": True},
        ),
        "myrtle_2d": _case(
            "stax.serial(stax.Conv(3, (3, 3), None, 'SAME', 1.4, 0.1), stax.Relu(), "
            "stax.AvgPool((2, 2), (2, 2)), stax.Conv(3, (3, 3), None, 'SAME', 1.4, 0.1), "
            f"{HEAD})",
            (4, 5, 2),
            setup=SETUP_2D,
        ),
        "convT_conv_2d": _case(
            "stax.serial(stax.ConvTranspose(3, (2, 3), (2, 1), 'SAME', 1.2, 0.1), stax.Relu(), "
            f"stax.Conv(3, (3, 2), (1, 2), 'VALID', 1.1, 0.2), {HEAD})",
            (3, 4, 2),
            setup=SETUP_2D,
        ),
        "globalsumpool_2d": _case(
            "stax.serial(stax.Conv(3, (2, 2), None, 'CIRCULAR', 1.2, 0.2), stax.Relu(), "
            "stax.GlobalSumPool(), stax.Dense(1))",
            (3, 4, 2),
            setup=SETUP_2D,
        ),
    }


def _apply_cases() -> dict:
    """NT's params and masked ``apply_fn`` outputs."""
    cases = {}
    for name, layer in (
        ("conv_valid", "stax.Conv(3, (3,), (2,), 'VALID', 1.1, 0.4)"),
        ("conv_circular", "stax.Conv(3, (4,), None, 'CIRCULAR', 1.1, 0.4)"),
        ("convT_same", "stax.ConvTranspose(3, (3,), (2,), 'SAME', 1.1, 0.4)"),
        ("local_same", "stax.ConvLocal(3, (3,), (2,), 'SAME', 1.1, 0.4)"),
    ):
        cases[f"apply_{name}"] = _case(layer, (6, 2), apply=True)
    cases["apply_pools"] = _case(
        "stax.serial(stax.Conv(3, (3,), None, 'SAME', 1.0, 0.3), stax.Relu(), "
        "stax.AvgPool((3,), (2,), 'SAME'), stax.Dense(3, 1.0, 0.2), stax.GlobalAvgPool())",
        (7, 2),
        apply=True,
    )
    cases["apply_2d"] = _case(
        "stax.serial(stax.Conv(3, (3, 2), (2, 1), 'SAME', 1.0, 0.2), stax.Relu(), "
        "stax.SumPool((2, 2), None, 'VALID'), stax.Conv(2, (2, 1), None, 'SAME', 1.1, 0.1), "
        "stax.GlobalAvgPool())",
        (5, 3, 2),
        setup=SETUP_2D,
        apply=True,
    )
    return cases


CASES = {**_windowed_cases(), **_network_cases(), **_apply_cases()}
