"""Models people write, as ``apply_fn(params, x)``: flax nnx ResNet and transformer
block, equinox MLP. flax and equinox are test extras; import this module only
after ``pytest.importorskip``."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def resnet(widths=(8, 16), blocks=(1, 1), n_out=10, dtype=jnp.float64, seed=0):
    """A ResNet-18-style CIFAR network in flax nnx; ``widths=(64, 128, 256, 512)``
    and ``blocks=(2, 2, 2, 2)`` give ResNet-18 itself. Returns ``(apply_fn, params)``."""
    from flax import nnx

    class Block(nnx.Module):
        def __init__(self, c_in, c_out, stride, rngs):
            kw = dict(use_bias=False, param_dtype=dtype, dtype=dtype, rngs=rngs)
            self.conv1 = nnx.Conv(c_in, c_out, (3, 3), strides=stride, **kw)
            self.bn1 = nnx.BatchNorm(c_out, use_running_average=True, param_dtype=dtype, rngs=rngs)
            self.conv2 = nnx.Conv(c_out, c_out, (3, 3), **kw)
            self.bn2 = nnx.BatchNorm(c_out, use_running_average=True, param_dtype=dtype, rngs=rngs)
            self.has_skip = stride != 1 or c_in != c_out
            if self.has_skip:
                self.skip = nnx.Conv(c_in, c_out, (1, 1), strides=stride, **kw)

        def __call__(self, x):
            y = nnx.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return nnx.relu(y + (self.skip(x) if self.has_skip else x))

    class ResNet(nnx.Module):
        def __init__(self, rngs):
            kw = dict(param_dtype=dtype, dtype=dtype, rngs=rngs)
            self.stem = nnx.Conv(3, widths[0], (3, 3), use_bias=False, **kw)
            self.bn = nnx.BatchNorm(
                widths[0], use_running_average=True, param_dtype=dtype, rngs=rngs
            )
            layers, c = [], widths[0]
            for i, (w, n) in enumerate(zip(widths, blocks)):
                for j in range(n):
                    layers.append(Block(c, w, 2 if (i > 0 and j == 0) else 1, rngs))
                    c = w
            self.layers = nnx.List(layers) if hasattr(nnx, "List") else layers
            self.head = nnx.Linear(c, n_out, **kw)

        def __call__(self, x):
            x = nnx.relu(self.bn(self.stem(x)))
            for layer in self.layers:
                x = layer(x)
            return self.head(x.mean((1, 2)))

    return _split(ResNet(nnx.Rngs(seed)))


def transformer_block(d=8, heads=2, n_out=3, dtype=jnp.float64, seed=0):
    """One pre-LN transformer block (flax nnx attention, LayerNorm, MLP) with a
    mean-pooled linear readout, on ``x: (N, T, d)``. Returns ``(apply_fn, params)``."""
    from flax import nnx

    class Block(nnx.Module):
        def __init__(self, rngs):
            kw = dict(param_dtype=dtype, dtype=dtype, rngs=rngs)
            self.ln1 = nnx.LayerNorm(d, **kw)
            self.attn = nnx.MultiHeadAttention(num_heads=heads, in_features=d, decode=False, **kw)
            self.ln2 = nnx.LayerNorm(d, **kw)
            self.mlp1 = nnx.Linear(d, 2 * d, **kw)
            self.mlp2 = nnx.Linear(2 * d, d, **kw)
            self.head = nnx.Linear(d, n_out, **kw)

        def __call__(self, x):
            x = x + self.attn(self.ln1(x))
            x = x + self.mlp2(nnx.gelu(self.mlp1(self.ln2(x))))
            return self.head(x.mean(1))

    return _split(Block(nnx.Rngs(seed)))


def _split(model: Any):
    from flax import nnx

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def apply_fn(p, x):
        return nnx.merge(graphdef, p, rest)(x)

    return apply_fn, params


def equinox_mlp(d_in=4, width=16, depth=2, n_out=3, dtype=jnp.float64, seed=0):
    """An ``equinox.nn.MLP`` applied to a batch with ``jax.vmap``."""
    import equinox as eqx

    model = eqx.nn.MLP(d_in, n_out, width, depth, activation=jnp.tanh, key=jax.random.key(seed))
    model = jax.tree.map(lambda a: a.astype(dtype) if eqx.is_array(a) else a, model)
    params, static = eqx.partition(model, eqx.is_array)

    def apply_fn(p, x):
        return jax.vmap(eqx.combine(p, static))(x)

    return apply_fn, params
