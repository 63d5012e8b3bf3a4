"""Empirical-NTK workloads: the issue's 3-conv CNN (``entk_cnn_16``) and ResNet-18 memory.

The CNN is written directly with ``jax.lax`` (no infinet layers) in ``CNN_SRC`` and
run unchanged by infinet and, for the comparison, by Neural Tangents 0.6.5.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import Unavailable, Workload, jemalloc_env, median_time

CNN_SRC = """
import numpy as np, jax, jax.numpy as jnp
from jax import lax

def _conv(x, w, b):
    dn = ('NHWC', 'HWIO', 'NHWC')
    return lax.conv_general_dilated(x, w, (1, 1), 'SAME', dimension_numbers=dn) + b

def cnn_init(key):
    ks = jax.random.split(key, 4)
    cw = lambda k, i, o: jax.random.normal(k, (3, 3, i, o)) / np.sqrt(9 * i)
    return {'c1': (cw(ks[0], 3, 64), jnp.zeros(64)), 'c2': (cw(ks[1], 64, 64), jnp.zeros(64)),
            'c3': (cw(ks[2], 64, 64), jnp.zeros(64)),
            'd': (jax.random.normal(ks[3], (64, 10)) / 8, jnp.zeros(10))}

def cnn_apply(p, x):
    x = jax.nn.relu(_conv(x, *p['c1']))
    x = jax.nn.relu(_conv(x, *p['c2']))
    x = lax.reduce_window(x, 0., lax.add, (1, 2, 2, 1), (1, 2, 2, 1), 'VALID') / 4
    x = jax.nn.relu(_conv(x, *p['c3']))
    return x.mean((1, 2)) @ p['d'][0] + p['d'][1]

params = cnn_init(jax.random.PRNGKey(0))
x = jax.random.normal(jax.random.PRNGKey(1), (16, 32, 32, 3))
"""

NT_CODE = (
    CNN_SRC
    + """
import time, statistics, neural_tangents as nt
fn = jax.jit(nt.empirical_ntk_fn(cnn_apply, trace_axes=(), vmap_axes=0,
                                 implementation=nt.NtkImplementation.JACOBIAN_CONTRACTION))
fn(x, None, params).block_until_ready()
ts = []
for _ in range(5):
    t = time.perf_counter(); fn(x, None, params).block_until_ready()
    ts.append(time.perf_counter() - t)
print(statistics.median(ts))
"""
)


def _cnn() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(CNN_SRC, namespace)  # the same source NT runs
    return namespace


def _no_ynn() -> dict:
    """``infinet.cpu_compiler_options()``: XLA's multi-threaded Eigen convolutions
    instead of YNNPACK's single-threaded ones (docs/empirical.md, "CPU convolutions")."""
    from infinet import cpu_compiler_options

    return cpu_compiler_options()


def entk_cnn(implementation: int, compiler_options: dict | None = None) -> float:
    """Full-output NTK (``trace_axes=()``, ``vmap_axes=0``) of the CNN, N=16, float32."""
    import jax

    from infinet import empirical_ntk_fn

    ns = _cnn()
    ntk_fn = empirical_ntk_fn(
        ns["cnn_apply"], trace_axes=(), vmap_axes=0, implementation=implementation
    )
    fn = jax.jit(ntk_fn, compiler_options=compiler_options)
    x, params = ns["x"], ns["params"]
    return median_time(lambda: fn(x, None, params).block_until_ready(), repeats=5, warmup=1)


def cnn_conv_floor(compiler_options: dict | None = None) -> float:
    """The cotangent convolutions every algorithm runs, alone: 160 per-output
    cotangents pulled back through the 32x32 and 16x16 Conv64 layers (15 GFLOP).

    With XLA's default (YNNPACK) convolutions they run on one thread (the same
    time with one core or two); with :func:`infinet.cpu_compiler_options` on both cores.
    """
    import jax
    from jax import lax

    dn = ("NHWC", "HWIO", "NHWC")
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    big = jax.random.normal(keys[0], (160, 32, 32, 64))
    small = jax.random.normal(keys[1], (160, 16, 16, 64))
    w = jax.random.normal(keys[2], (3, 3, 64, 64))

    def convs(big: Any, small: Any, w: Any) -> Any:
        conv = functools.partial(
            lax.conv_general_dilated, window_strides=(1, 1), padding="SAME", dimension_numbers=dn
        )
        return conv(big, w), conv(small, w)

    fn = jax.jit(convs, compiler_options=compiler_options)
    return median_time(lambda: jax.block_until_ready(fn(big, small, w)), repeats=5, warmup=1)


def _fresh_process(code: str, env: dict[str, str] | None = None) -> float:
    """Runs ``code`` (which prints a time last) in a fresh interpreter."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, **(env or {})},
        check=True,
    )
    return float(proc.stdout.split()[-1])


def entk_cnn_tuned() -> float:
    """Structured derivatives with :func:`infinet.cpu_compiler_options`, in a fresh
    process on jemalloc (:func:`benchmarks.common.jemalloc_env`)."""
    code = (
        "from benchmarks.workloads.empirical import entk_cnn, _no_ynn\n"
        "print(entk_cnn(3, _no_ynn()))"
    )
    return _fresh_process(code, jemalloc_env())


def entk_cnn_retained(no_ynn: bool) -> float:
    """Structured derivatives in a fresh process that calls
    :func:`infinet.retain_freed_memory` first (glibc), with a plain ``jax.jit`` or
    with :func:`infinet.cpu_compiler_options`."""
    code = (
        "import infinet\n"
        "assert infinet.retain_freed_memory()\n"
        "from benchmarks.workloads.empirical import entk_cnn, _no_ynn\n"
        f"print(entk_cnn(3, {'_no_ynn()' if no_ynn else 'None'}))"
    )
    return _fresh_process(code)


# What infinet.retain_freed_memory() sets, as glibc tunables for NT's process.
RETAIN_TUNABLES = {
    "GLIBC_TUNABLES": "glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:"
    "glibc.malloc.trim_threshold=1073741824"
}


def _nt_envs() -> list[dict[str, str]]:
    """NT timed on glibc's malloc, on glibc with infinet's retention settings and
    on jemalloc; the fastest counts."""
    try:
        return [{}, RETAIN_TUNABLES, jemalloc_env()]
    except Unavailable:
        return [{}, RETAIN_TUNABLES]


def _vs_tuned_nt(name: str, description: str, run: Callable[[], float]) -> Workload:
    """A row held to the issue's target (≤ 0.255 s, ≥ 2× NT) in a tuned process;
    NT is timed in each of :func:`_nt_envs` and the fastest counts."""
    return Workload(
        name,
        description,
        run,
        target=0.255,
        nt_reference=0.51,
        target_speedup=2.0,
        nt_code=NT_CODE,
        nt_envs=_nt_envs,
    )


RESNET_SRC = """
import numpy as np, jax, jax.numpy as jnp
from jax import lax

def resnet18(key, widths=(64, 128, 256, 512), n_out=10):
    # CIFAR ResNet-18: BasicBlocks [2, 2, 2, 2], inference-mode BatchNorm as a
    # per-channel affine map. Returns (apply_fn, params).
    keys = iter(jax.random.split(key, 64))
    conv_w = lambda i, o, k: jax.random.normal(next(keys), (k, k, i, o)) / np.sqrt(k * k * i)
    bn = lambda c: (jnp.ones(c), jnp.zeros(c))
    params = {'stem': conv_w(3, widths[0], 3), 'stem_bn': bn(widths[0]), 'blocks': []}
    c, plan = widths[0], []
    for i, w in enumerate(widths):
        for j in range(2):
            stride = 2 if (i > 0 and j == 0) else 1
            block = {'c1': conv_w(c, w, 3), 'b1': bn(w), 'c2': conv_w(w, w, 3), 'b2': bn(w)}
            if stride != 1 or c != w:
                block['sc'] = conv_w(c, w, 1)
                block['bsc'] = bn(w)
            params['blocks'].append(block)
            plan.append(stride)
            c = w
    params['head'] = (jax.random.normal(next(keys), (c, n_out)) / np.sqrt(c), jnp.zeros(n_out))

    def conv(x, w, stride=1):
        return lax.conv_general_dilated(x, w, (stride, stride), 'SAME',
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

    def affine(x, gb):
        return x * gb[0] + gb[1]

    def apply_fn(p, x):
        x = jax.nn.relu(affine(conv(x, p['stem']), p['stem_bn']))
        for block, stride in zip(p['blocks'], plan):
            y = jax.nn.relu(affine(conv(x, block['c1'], stride), block['b1']))
            y = affine(conv(y, block['c2']), block['b2'])
            if 'sc' in block:
                x = affine(conv(x, block['sc'], stride), block['bsc'])
            x = jax.nn.relu(x + y)
        return x.mean((1, 2)) @ p['head'][0] + p['head'][1]

    return apply_fn, params
"""

RESNET_SNIPPET = (
    RESNET_SRC
    + """
import time, resource
from infinet import empirical_ntk_fn, NtkImplementation
apply_fn, params = resnet18(jax.random.PRNGKey(0))
print(sum(a.size for a in jax.tree.leaves(params)), 'parameters')
x = jax.random.normal(jax.random.PRNGKey(1), (32, 32, 32, 3))
fn = jax.jit(empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0,
                              implementation=NtkImplementation.{impl}))
t = time.perf_counter()
k = fn(x, None, params).block_until_ready()
first = time.perf_counter() - t
t = time.perf_counter()
fn(x, None, params).block_until_ready()
print(k.shape, first, time.perf_counter() - t,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
"""
)


def resnet18_ntk(implementation: str = "STRUCTURED_DERIVATIVES") -> tuple[float, float]:
    """(seconds, peak resident GB) of ResNet-18's full 10x10 NTK on N=32 CIFAR inputs."""
    out = subprocess.run(
        [sys.executable, "-c", RESNET_SNIPPET.replace("{impl}", implementation)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[-2]), float(out[-1])


WORKLOADS = [
    Workload(
        "entk_cnn_16",
        "empirical NTK, 3-conv CNN, N=16, 32x32x3, 10 outputs, trace_axes=(), "
        "vmap_axes=0, float32: structured derivatives",
        lambda: entk_cnn(3),
        target=0.255,
        nt_reference=0.51,
        target_speedup=2.0,
        nt_code=NT_CODE,
    ),
    Workload(
        "entk_cnn_16_jacobian",
        "same, Jacobian contraction",
        lambda: entk_cnn(1),
        nt_reference=0.51,
        nt_code=NT_CODE,
    ),
    Workload(
        "entk_cnn_16_auto",
        "same, AUTO (choice cached after the first call)",
        lambda: entk_cnn(0),
        nt_reference=0.51,
        nt_code=NT_CODE,
    ),
    Workload(
        "entk_cnn_16_jacobian_no_ynn",
        "same, Jacobian contraction, jax.jit(..., compiler_options=cpu_compiler_options()): "
        "XLA's Eigen convolutions instead of YNNPACK's",
        lambda: entk_cnn(1, _no_ynn()),
        nt_reference=0.51,
        nt_code=NT_CODE,
    ),
    _vs_tuned_nt(
        "entk_cnn_16_structured_no_ynn",
        "same, structured derivatives, jax.jit(..., compiler_options=cpu_compiler_options()) "
        "(docs/empirical.md, 'CPU convolutions'); NT: the fastest of glibc malloc, glibc with "
        "infinet's retention settings and jemalloc",
        lambda: entk_cnn(3, _no_ynn()),
    ),
    _vs_tuned_nt(
        "entk_cnn_16_tuned",
        "same, structured derivatives, compiler_options=cpu_compiler_options(), process on "
        "jemalloc (MALLOC_CONF=oversize_threshold:0); NT: the fastest of glibc malloc, glibc "
        "with infinet's retention settings and jemalloc",
        entk_cnn_tuned,
    ),
    _vs_tuned_nt(
        "entk_cnn_16_retained",
        "same, structured derivatives, plain jax.jit, process that calls "
        "infinet.retain_freed_memory() first; NT: the fastest of glibc malloc, glibc with "
        "the same settings and jemalloc",
        lambda: entk_cnn_retained(False),
    ),
    _vs_tuned_nt(
        "entk_cnn_16_retained_no_ynn",
        "same, with compiler_options=cpu_compiler_options() too",
        lambda: entk_cnn_retained(True),
    ),
    Workload(
        "entk_cnn_16_conv_floor",
        "floor: the 15 GFLOP of cotangent convolutions (160 x 32x32 + 160 x 16x16 "
        "Conv64) alone; XLA:CPU's default YNNPACK convolutions run on one thread",
        cnn_conv_floor,
    ),
    Workload(
        "entk_cnn_16_conv_floor_no_ynn",
        "same convolutions, compiler_options=cpu_compiler_options() (Eigen, both cores)",
        lambda: cnn_conv_floor(_no_ynn()),
    ),
    Workload(
        "entk_cnn_16_ntk_vp",
        "same, NTK-vector products",
        lambda: entk_cnn(2),
        slow=True,
    ),
    Workload(
        "resnet18_entk_32_time",
        "ResNet-18 (11M params), full 10x10-output NTK, N=32 CIFAR inputs, float32, "
        "structured derivatives (second call)",
        lambda: resnet18_ntk()[0],
        slow=True,
    ),
    Workload(
        "resnet18_entk_32_memory",
        "same, peak resident memory of the process (must fit 24 GB)",
        lambda: resnet18_ntk()[1],
        unit="GB",
        target=24.0,
        slow=True,
    ),
]
