"""Normalisation, attention, graph, reshaping and masking cases compared with NT 0.6.5.

Plain data (no infinet import), so that NT's interpreter can read it too. Each
case has:

* ``network``: Python source evaluated with ``stax`` bound to either library
  (and ``np``); ``prelude`` may define helpers;
* ``setup``: Python source run with ``rs = np.random.RandomState(seed)`` that
  defines ``x1``, ``x2`` and the kernel keyword arguments ``kw`` (for
  ``kernel_fn(x1, x2)``) and ``kw_sym`` (for ``kernel_fn(x1, None)``).
"""

from __future__ import annotations

DEFAULT_SETUP = """
x1 = rs.randn(*shape1); x2 = rs.randn(*shape2)
kw = {}; kw_sym = {}
"""

MASK_SETUP = """
x1 = rs.randn(*shape1); x2 = rs.randn(*shape2)
x1[0, -1] = -7.0; x1[1, 1, 0] = -7.0; x2[-1, 0] = -7.0; x2[0, 1:3] = -7.0
kw = dict(mask_constant=-7.0); kw_sym = dict(mask_constant=-7.0)
"""

GRAPH_PATTERNS = """
spatial = tuple(shape1[1:-1])
p1 = rs.randn(shape1[0], *spatial, *spatial) * (rs.rand(shape1[0], *spatial, *spatial) > 0.5)
p2 = rs.randn(shape2[0], *spatial, *spatial) * (rs.rand(shape2[0], *spatial, *spatial) > 0.5)
kw.update(pattern=(p1, p2)); kw_sym.update(pattern=(p1, p1))
"""

GRAPH_SETUP = DEFAULT_SETUP + GRAPH_PATTERNS

SPARSE_SETUP = """
x1 = rs.randn(*shape1); x2 = rs.randn(*shape2)
L = shape1[1]
e1 = rs.randint(0, L, (shape1[0], 7, 2)); e2 = rs.randint(0, L, (shape2[0], 5, 2))
e1[0, 0] = [-1, -1]
kw = dict(pattern=(e1, e2)); kw_sym = dict(pattern=(e1, e1))
"""

SPARSE2D_SETUP = """
x1 = rs.randn(*shape1); x2 = rs.randn(*shape2)
H, W = shape1[1:3]
def edges(n, m):
    return np.stack([rs.randint(0, H, (n, m, 2)), rs.randint(0, W, (n, m, 2))], -2)
e1 = edges(shape1[0], 9); e2 = edges(shape2[0], 6)
kw = dict(pattern=(e1, e2)); kw_sym = dict(pattern=(e1, e1))
"""


def _case(network, shape, seed=0, n1=3, n2=2, setup=DEFAULT_SETUP, **extra):
    return {
        "network": network,
        "shape1": [n1, *shape],
        "shape2": [n2, *shape],
        "seed": seed,
        "setup": setup,
        **extra,
    }


PRE = "stax.Dense(6, 1.3, 0.2), "
PRE_RELU = "stax.Dense(6, 1.3, 0.2), stax.Relu(), stax.Dense(5, 1.1, 0.1), "

ATTN = "stax.GlobalSelfAttention(7, 5, 6, 3, {})"


def _attn(options: str, seq=(4,), decay: str = "") -> dict:
    net = f"stax.serial({PRE_RELU}{ATTN.format(options)})"
    return _case(net, (*seq, 3), prelude=decay)


DECAY = "decay = lambda d: 1.0 / (1.0 + d)\n"

CASES = {
    # -- normalisation --------------------------------------------------------------
    "layernorm_channels": _case(f"stax.serial({PRE}stax.LayerNorm())", (4, 3)),
    "layernorm_dense": _case(f"stax.serial({PRE}stax.LayerNorm(), stax.Relu())", (3,)),
    "layernorm_spatial": _case(f"stax.serial({PRE}stax.LayerNorm(axis=(1, 2, 3)))", (3, 2, 3)),
    "layernorm_eps": _case(f"stax.serial({PRE}stax.LayerNorm(axis=(-1,), eps=0.3))", (4, 3)),
    "layernorm_axes": _case(
        "stax.serial(stax.Dense(6, 1.3, 0.2, channel_axis=1), "
        "stax.LayerNorm(axis=(1, 2), channel_axis=1))",
        (3, 4),
    ),
    "dropout_train": _case(f"stax.serial({PRE_RELU}stax.Dropout(0.7), stax.Dense(2))", (4,)),
    "dropout_spatial": _case(f"stax.serial({PRE_RELU}stax.Dropout(0.4))", (3, 2)),
    "dropout_test": _case(f"stax.serial({PRE_RELU}stax.Dropout(0.5, mode='test'))", (4,)),
    # -- reshaping --------------------------------------------------------------------
    "dotgeneral_rhs": _case(
        f"stax.serial({PRE}stax.DotGeneral(rhs=np.arange(12.).reshape(3, 4) / 5 - 1, "
        "dimension_numbers=(((1,), (0,)), ((), ()))))",
        (3, 2),
    ),
    "dotgeneral_lhs": _case(
        f"stax.serial({PRE}stax.DotGeneral(lhs=np.cos(np.arange(20.)).reshape(5, 4), "
        "dimension_numbers=(((1,), (1,)), ((), ()))))",
        (4, 2),
    ),
    "dotgeneral_2d": _case(
        f"stax.serial({PRE}stax.DotGeneral(rhs=np.sin(np.arange(24.)).reshape(3, 2, 4), "
        "dimension_numbers=(((2,), (1,)), ((), ()))))",
        (2, 2, 3),
    ),
    "dotgeneral_scalar": _case(f"stax.serial({PRE}stax.DotGeneral(lhs=-1.5))", (3, 2)),
    "resize_linear": _case(
        f"stax.serial({PRE}stax.ImageResize((-1, 5, 3, -1), 'linear'))", (3, 4, 2)
    ),
    "resize_nearest": _case(f"stax.serial({PRE}stax.ImageResize((-1, 6, -1), 'nearest'))", (4, 2)),
    "resize_down": _case(
        f"stax.serial({PRE}stax.ImageResize((-1, 2, 3, -1), 'linear'))", (5, 4, 2)
    ),
    "index_spatial": _case(f"stax.serial({PRE}stax.Index(stax.Slice[:, 1:3]))", (4, 2)),
    "index_int": _case(f"stax.serial({PRE}stax.Index(stax.Slice[:, ::2, 1]))", (4, 3, 2)),
    "index_batch": _case(f"stax.serial({PRE}stax.Index(stax.Slice[1:, ..., ::-1, :]))", (3, 2)),
    "index_newaxis": _case(f"stax.serial({PRE}stax.Index(stax.Slice[:, None, 2:]))", (4, 2)),
    # -- graphs -------------------------------------------------------------------------
    "aggregate_dense": _case(
        f"stax.serial({PRE_RELU}stax.Aggregate(), stax.Relu(), stax.Dense(3))",
        (4, 3),
        setup=GRAPH_SETUP,
    ),
    "aggregate_2d": _case(
        f"stax.serial({PRE}stax.Aggregate(), stax.Dense(3))", (3, 2, 2), setup=GRAPH_SETUP
    ),
    "aggregate_sparse": _case(
        f"stax.serial({PRE_RELU}stax.Aggregate(implementation='SPARSE'), stax.Dense(3))",
        (5, 2),
        setup=SPARSE_SETUP,
    ),
    "aggregate_sparse_2d": _case(
        f"stax.serial({PRE}stax.Aggregate(implementation='SPARSE'), stax.Dense(3))",
        (3, 4, 2),
        setup=SPARSE2D_SETUP,
    ),
    # -- attention ----------------------------------------------------------------------
    "attn_softmax": _attn(""),
    "attn_softmax_stds": _attn(
        "W_key_std=1.3, W_query_std=0.7, W_value_std=1.2, W_out_std=0.9, b_std=0.3"
    ),
    "attn_identity": _attn("attention_mechanism='IDENTITY', b_std=0.2"),
    "attn_abs": _attn("attention_mechanism='ABS'"),
    "attn_relu": _attn("attention_mechanism='RELU', W_key_std=1.4"),
    "attn_identity_sqrt": _attn(
        "attention_mechanism='IDENTITY', linear_scaling=False, W_query_std=1.2, b_std=0.1"
    ),
    "attn_sum_pe": _attn("pos_emb_type='SUM', W_pos_emb_std=1.3"),
    "attn_sum_pe_val": _attn(
        "pos_emb_type='SUM', val_pos_emb=True, pos_emb_decay_fn=decay", decay=DECAY
    ),
    "attn_concat_pe": _attn("pos_emb_type='CONCAT', n_chan_pos_emb=3, W_pos_emb_std=0.8"),
    "attn_concat_pe_decay": _attn(
        "pos_emb_type='CONCAT', val_pos_emb=True, pos_emb_decay_fn=decay, pos_emb_p_norm=1",
        decay=DECAY,
    ),
    "attn_sqrt_pe": _attn(
        "attention_mechanism='IDENTITY', linear_scaling=False, pos_emb_type='CONCAT', "
        "val_pos_emb=True, pos_emb_decay_fn=decay",
        decay=DECAY,
    ),
    "attn_2d_pe": _attn(
        "pos_emb_type='SUM', pos_emb_decay_fn=decay, pos_emb_p_norm=3", seq=(3, 2), decay=DECAY
    ),
    "attn_deep": _case(
        f"stax.serial({PRE_RELU}{ATTN.format('')}, stax.Relu(), stax.Dense(4), "
        f"{ATTN.format('attention_mechanism=' + repr('RELU'))}, stax.Flatten(), stax.Dense(2))",
        (4, 3),
    ),
    # -- masking ------------------------------------------------------------------------
    "mask_dense": _case(
        "stax.serial(stax.Dense(5, 1.2, 0.4), stax.Relu(), stax.Dense(4, 1.1, 0.3))",
        (4, 3),
        setup=MASK_SETUP,
    ),
    "mask_flatten": _case(
        "stax.serial(stax.Dense(5, 1.2, 0.4), stax.Relu(), stax.Flatten(), stax.Dense(2))",
        (4, 3),
        setup=MASK_SETUP,
    ),
    "mask_attn": _case(
        f"stax.serial({PRE_RELU}{ATTN.format('b_std=0.2')})", (5, 3), setup=MASK_SETUP
    ),
    "mask_attn_relu": _case(
        f"stax.serial({PRE_RELU}{ATTN.format('attention_mechanism=' + repr('RELU'))})",
        (5, 3),
        setup=MASK_SETUP,
    ),
    "mask_attn_sqrt": _case(
        f"stax.serial({PRE_RELU}"
        f"{ATTN.format('attention_mechanism=' + repr('IDENTITY') + ', linear_scaling=False')})",
        (5, 3),
        setup=MASK_SETUP,
    ),
    "mask_layernorm": _case(
        f"stax.serial({PRE}stax.LayerNorm(), stax.Relu(), stax.Dense(3))",
        (4, 3),
        setup=MASK_SETUP,
    ),
    "mask_layernorm_spatial": _case(
        f"stax.serial({PRE}stax.LayerNorm(axis=(1, 2)), stax.Relu(), stax.Dense(3))",
        (4, 3),
        setup=MASK_SETUP,
    ),
    "mask_index": _case(
        f"stax.serial({PRE}stax.Index(stax.Slice[:, 1:]), stax.Relu(), stax.Dense(3))",
        (4, 3),
        setup=MASK_SETUP,
    ),
    "mask_resize": _case(
        f"stax.serial({PRE}stax.ImageResize((-1, 6, -1), 'linear'), stax.Dense(3))",
        (3, 3),
        setup=MASK_SETUP,
    ),
    "mask_aggregate": _case(
        f"stax.serial({PRE}stax.Aggregate(), stax.Relu(), stax.Dense(3))",
        (4, 3),
        setup=MASK_SETUP + GRAPH_PATTERNS,
    ),
}
