"""Conformance cases for attention, normalisation, graph and reshaping layers.

Every network ends in a readout (Flatten + Dense) so that the Monte Carlo check
compares ``(N, C)`` outputs. ``Dropout`` in ``mode='train'`` needs an ``rng`` in
``apply_fn`` and independent masks for ``x1`` and ``x2``, which the generic
Monte Carlo helper does not provide; it has its own Monte Carlo test in
``tests/stax/test_normalization.py``.
"""

import jax.numpy as jnp
import numpy as np

from infinet import stax
from infinet.stax.base import make_layer
from tests.conformance.cases import Case


def fixed_graph(pattern, implementation="DENSE"):
    """Aggregate with one graph shared by all examples (a batch-1 pattern) baked in."""
    init_fn, apply_fn, kernel_fn = stax.Aggregate(implementation=implementation)
    pattern = jnp.asarray(pattern)

    def apply(params, x, **kwargs):
        return apply_fn(params, x, pattern=pattern)

    def kernel_map(k, **kwargs):
        return kernel_fn.kernel_map(k, pattern=(pattern, pattern))

    return make_layer(init_fn, apply, kernel_map, "FixedGraph", kernel_fn.support)


_RS = np.random.RandomState(3)
_ADJ = (_RS.rand(1, 4, 4) > 0.4) * _RS.randn(1, 4, 4)
_EDGES = np.array([[[0, 1], [1, 2], [2, 3], [3, 0], [1, 1], [2, 0], [-1, -1]]])


def _readout(w):
    return [stax.Relu(), stax.Flatten(), stax.Dense(4, 1.1, 0.1)]


def _attn(**options):
    return lambda w: [
        stax.Dense(w, 1.2, 0.1),
        stax.GlobalSelfAttention(w, w, w, 2, **options),
        *_readout(w),
    ]


def _spatial(*layers):
    return lambda w: [stax.Dense(w, 1.3, 0.2), *layers, *_readout(w)]


CASES = [
    Case(
        "layernorm",
        lambda w: [stax.Dense(w, 1.3, 0.2), stax.LayerNorm(), stax.Relu(), stax.Dense(4)],
        (5,),
    ),
    Case("layernorm_spatial", _spatial(stax.LayerNorm(axis=(1, 2))), (3, 4)),
    Case("attn_softmax", _attn(b_std=0.2), (3, 4), mc_rtol=0.08),
    Case("attn_relu", _attn(attention_mechanism="RELU", W_key_std=0.8), (3, 4), mc_rtol=0.08),
    Case(
        "attn_identity_sqrt",
        _attn(attention_mechanism="IDENTITY", linear_scaling=False, W_out_std=0.7),
        (3, 4),
        mc_rtol=0.08,
    ),
    Case(
        "attn_pos_emb",
        _attn(pos_emb_type="SUM", val_pos_emb=True, W_pos_emb_std=0.6),
        (3, 4),
        mc_rtol=0.08,
    ),
    Case(
        "attn_concat_pos_emb",
        _attn(pos_emb_type="CONCAT", n_chan_pos_emb=32, attention_mechanism="IDENTITY"),
        (3, 4),
        mc_rtol=0.08,
    ),
    Case(
        "dotgeneral",
        _spatial(
            stax.DotGeneral(
                rhs=np.linspace(-1, 1, 15).reshape(3, 5), dimension_numbers=(((1,), (0,)), ((), ()))
            )
        ),
        (3, 4),
    ),
    Case("resize_linear", _spatial(stax.ImageResize((-1, 5, -1), "linear")), (3, 4)),
    Case("resize_cubic", _spatial(stax.ImageResize((-1, 2, 3, -1), "cubic")), (3, 2, 2)),
    Case("index", _spatial(stax.Index(stax.Slice[:, 1:3, ::-1]), stax.Dense(8)), (4, 3, 2)),
    Case("index_int", _spatial(stax.Index(stax.Slice[:, :, 1])), (3, 2, 2)),
    Case("graph_dense", _spatial(fixed_graph(_ADJ)), (4, 3)),
    Case("graph_sparse", _spatial(fixed_graph(_EDGES, "SPARSE")), (4, 3)),
]
