"""Compare infinet's empirical kernels with Neural Tangents 0.6.5 (black box), float64.

Usage: ``INFINET_NT_PYTHON=/path/to/nt/python python -m benchmarks.nt_compare.compare_empirical``

The models below are plain JAX source run unchanged by both libraries. NT runs in
its own interpreter and writes its kernels to an ``.npz``; this script computes
the same kernels with every infinet algorithm and reports the largest relative
difference. NT's structured derivatives crash on every JAX it imports with, so
all infinet algorithms are compared with NT's Jacobian contraction. Skips
cleanly (exit 0) when ``INFINET_NT_PYTHON`` is unset.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import Any

import numpy as np

MODELS_SRC = """
import numpy as np, jax, jax.numpy as jnp
from jax import lax
jax.config.update('jax_enable_x64', True)
rng = np.random.RandomState(0)
A = lambda *s: jnp.asarray(rng.randn(*s))

def mlp(p, x):
    h = jnp.tanh(x @ p['w1'] + p['b1'])
    return h @ p['w2'] + p['b2']
mlp_p = {'w1': A(5, 7) / 2, 'b1': A(7) / 10, 'w2': A(7, 3) / 2, 'b2': A(3) / 10}

def cnn(p, x):
    dn = ('NHWC', 'HWIO', 'NHWC')
    y = jax.nn.relu(lax.conv_general_dilated(x, p['c1'], (1, 1), 'SAME', dimension_numbers=dn))
    y = lax.reduce_window(y, 0., lax.add, (1, 2, 2, 1), (1, 2, 2, 1), 'VALID') / 4
    y = jax.nn.gelu(lax.conv_general_dilated(y, p['c2'], (2, 2), 'VALID', dimension_numbers=dn))
    return y.mean((1, 2)) @ p['d']
cnn_p = {'c1': A(3, 3, 2, 4) / 3, 'c2': A(2, 2, 4, 4) / 3, 'd': A(4, 3) / 2}

def attention(p, x):
    mu = x.mean(-1, keepdims=True)
    h = (x - mu) / jnp.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5) * p['g'] + p['b']
    q, k, v = (h @ p[n] for n in ('q', 'k', 'v'))
    a = jax.nn.softmax(jnp.einsum('ntd,nsd->nts', q, k) / 2, axis=-1)
    return (x + jnp.einsum('nts,nsd->ntd', a, v) @ p['o']).mean(1) @ p['head']
attention_p = {'g': 1 + A(4) / 10, 'b': A(4) / 10, 'q': A(4, 4) / 2, 'k': A(4, 4) / 2,
               'v': A(4, 4) / 2, 'o': A(4, 4) / 2, 'head': A(4, 2)}

def tree_out(p, x):
    y = mlp(p, x)
    return {'a': y[:, :1], 'b': (y, jnp.sin(y))}

X = {'mlp': (A(4, 5), A(3, 5)), 'cnn': (A(3, 6, 6, 2), A(2, 6, 6, 2)),
     'attention': (A(3, 3, 4), A(2, 3, 4)), 'tree_out': (A(4, 5), A(3, 5))}
P = {'mlp': mlp_p, 'cnn': cnn_p, 'attention': attention_p, 'tree_out': mlp_p}
F = {'mlp': mlp, 'cnn': cnn, 'attention': attention, 'tree_out': tree_out}
AXES = [((), ()), ((-1,), ()), ((), (0,)), ((0,), (1,))]
VMAP = {'mlp': 0, 'cnn': 0, 'attention': 0, 'tree_out': 0}

def cases():
    for name in F:
        for trace, diag in AXES:
            if name in ('tree_out',) and diag:
                continue
            for vmap in (None, VMAP[name]):
                for x2 in ('x2', None):
                    if x2 and 0 in trace + diag:  # batch axis paired: needs N1 == N2
                        continue
                    yield name, trace, diag, vmap, x2
"""

NT_RUNNER = """
import sys, warnings
warnings.filterwarnings('ignore')
import neural_tangents as nt
out = {}
for name, trace, diag, vmap, x2 in cases():
    x1, x2v = X[name]
    key = f'{name}|{trace}|{diag}|{vmap}|{x2}'
    # NT's kernel_fn fails on pytree outputs with a tuple `get`: call the two separately
    fns = {'nngp': nt.empirical_nngp_fn(F[name], trace_axes=trace, diagonal_axes=diag),
           'ntk': nt.empirical_ntk_fn(F[name], trace_axes=trace, diagonal_axes=diag,
                                      vmap_axes=vmap,
                                      implementation=nt.NtkImplementation.JACOBIAN_CONTRACTION)}
    for kind, fn in fns.items():
        k = fn(x1, x2v if x2 else None, P[name])
        for i, leaf in enumerate(jax.tree_util.tree_leaves(k)):
            out[f'{key}|{kind}|{i}'] = np.asarray(leaf)
x1, x2v = X['mlp']
ct = jnp.ones((3, 3))
out['vp'] = np.asarray(nt.empirical_ntk_vp_fn(mlp, x1, x2v, mlp_p)(ct))
p1 = jax.tree_util.tree_map(lambda a: a * 1.1, mlp_p)
out['linearize'] = np.asarray(nt.linearize(mlp, mlp_p)(p1, x1))
out['taylor3'] = np.asarray(nt.taylor_expand(mlp, mlp_p, 3)(p1, x1))
np.savez(sys.argv[1], **out)
"""


def _ours() -> dict[str, Any]:
    ns: dict[str, Any] = {}
    exec(MODELS_SRC, ns)
    return ns


def main() -> int:
    nt_python = os.environ.get("INFINET_NT_PYTHON")
    if not nt_python:
        print("INFINET_NT_PYTHON is unset: skipping the Neural Tangents comparison.")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "nt.npz")
        subprocess.run([nt_python, "-c", MODELS_SRC + NT_RUNNER, path], check=True)
        nt_out = dict(np.load(path))
    ns = _ours()
    import jax

    import infinet

    worst: dict[str, float] = {}
    for name, trace, diag, vmap, x2 in ns["cases"]():
        x1, x2v = ns["X"][name]
        key = f"{name}|{trace}|{diag}|{vmap}|{x2}"
        for impl in (1, 2, 3):
            kf = infinet.empirical_kernel_fn(ns["F"][name], trace, diag, vmap, implementation=impl)
            kf = jax.jit(kf, static_argnums=2)
            k = kf(x1, x2v if x2 else None, ("nngp", "ntk"), ns["P"][name])
            for kind in ("nngp", "ntk"):
                for i, leaf in enumerate(jax.tree.leaves(getattr(k, kind))):
                    ref = nt_out[f"{key}|{kind}|{i}"]
                    tag = f"{kind} impl={impl}"
                    worst[tag] = max(worst.get(tag, 0.0), _rel(np.asarray(leaf), ref))
    x1, x2v = ns["X"]["mlp"]
    mlp, mlp_p = ns["mlp"], ns["mlp_p"]
    p1 = jax.tree.map(lambda a: a * 1.1, mlp_p)
    extra = {
        "vp": infinet.empirical_ntk_vp_fn(mlp, x1, x2v, mlp_p)(np.ones((3, 3))),
        "linearize": infinet.linearize(mlp, mlp_p)(p1, x1),
        "taylor3": infinet.taylor_expand(mlp, mlp_p, 3)(p1, x1),
    }
    for tag, value in extra.items():
        worst[tag] = _rel(np.asarray(value), nt_out[tag])
    ok = True
    print(f"{'quantity':<16} max relative difference vs NT 0.6.5 (float64)")
    for tag, value in sorted(worst.items()):
        ok &= value < 1e-9
        print(f"{tag:<16} {value:.2e}")
    return 0 if ok else 1


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


if __name__ == "__main__":
    sys.exit(main())
