"""infinet against Neural Tangents as their users write them: ``python -m benchmarks.jit_vs_nt``.

Each workload is one piece of code, run unchanged by both libraries: the
snippet imports ``{lib}`` (``infinet`` or ``neural_tangents``), jits the kernel
function the way NT's README teaches (``jax.jit(kernel_fn, static_argnames='get')``),
compiles it once, and prints the best of its timed calls: at least ``repeats``, and
more until they add up to 2 s (at most 50; ``timeit``'s autorange, the same rule for
both libraries). The extra calls guard against a slow phase of this machine: right
after a long CPU-bound process (NT's ten-second CNN-5 GAP calls) the next process's
first second or two can run 2–3× slower, with 2.7× the CPU time for the same work and
the same page faults (``benchmarks/RESULTS.md``, 2026-12-05, fourth stop). Every snippet
runs in a fresh process; the processes alternate (NT, infinet, floor, NT,
infinet, floor, ...) and each side's best over ``--rounds`` processes counts, so
a ratio is always taken from the same stretch of time. Floors (NumPy's GEMM
``x @ y.T`` and SYRK ``x @ x.T``) run as processes of their own in the same
alternation. Neither side is tuned: no allocator, compiler flag or thread
setting differs from a plain ``python``.

Set ``INFINET_NT_PYTHON`` to the interpreter of an NT 0.6.5 environment (see
``benchmarks/README`` section of ``RESULTS.md``); without it, NT rows are skipped.

Usage::

    INFINET_NT_PYTHON=/tmp/ntenv/bin/python python -m benchmarks.jit_vs_nt \\
        [--only five_line_xx,cnn5_gap_xx] [--rounds 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import time

from benchmarks.workloads.empirical import CNN_SRC

HEADER = """
import time, numpy as np, jax
def best(call, repeats, seconds=2.0, most=50):
    out = call(); jax.block_until_ready(out)
    ts = []
    while len(ts) < repeats or (sum(ts) < seconds and len(ts) < most):
        t = time.perf_counter(); jax.block_until_ready(call()); ts.append(time.perf_counter() - t)
    return min(ts)
"""

FIVE_LINE = """
from {lib} import stax
_, _, kernel_fn = stax.serial(
    stax.Dense(2048, W_std=1.5, b_std=0.05), stax.Erf(),
    stax.Dense(2048, W_std=1.5, b_std=0.05), stax.Erf(),
    stax.Dense(1, W_std=1.5, b_std=0.05))
kernel_fn = jax.jit(kernel_fn, static_argnames='get')
x = np.random.RandomState(0).randn(2000, 3072).astype(np.float32)
print(best(lambda: kernel_fn(x, {x2}, 'ntk'), 5))
"""

CNN = """
from {lib} import stax
layers = []
for _ in range({depth}):
    layers += [stax.Conv(1, (3, 3), padding='SAME'), stax.Relu()]
_, _, kernel_fn = stax.serial(*layers, stax.{head}(), stax.Dense(1))
kernel_fn = jax.jit(kernel_fn, static_argnames='get')
x = np.random.RandomState(0).randn({n}, 32, 32, 3).astype(np.float32)
print(best(lambda: kernel_fn(x, {x2}, 'ntk'), {repeats}))
"""

FC_PREDICT = """
from {lib} import predict, stax
_, _, kernel_fn = stax.serial(stax.Dense(512), stax.Relu(), stax.Dense(512), stax.Relu(),
                              stax.Dense(1))
kernel_fn = jax.jit(kernel_fn, static_argnames='get')
rs = np.random.RandomState(0)
x_train = rs.randn(4000, 64).astype(np.float32)
y_train = rs.randn(4000, 1).astype(np.float32)
x_test = rs.randn(1000, 64).astype(np.float32)
def run():
    k_train_train = kernel_fn(x_train, None, 'ntk')
    k_test_train = kernel_fn(x_test, x_train, 'ntk')
    predict_fn = predict.gradient_descent_mse(k_train_train, y_train, diag_reg=1e-4)
    return predict_fn(None, 0., 0., k_test_train)
print(best(run, 5))
"""

# The CNN the empirical workloads use (benchmarks/workloads/empirical.py), run by both.
ENTK = (
    CNN_SRC.replace("import numpy as np, jax, jax.numpy as jnp", "import jax.numpy as jnp")
    + """
import {lib} as nt
times = []
for impl in {impls}:
    try:
        fn = jax.jit(nt.empirical_ntk_fn(cnn_apply, trace_axes=(), vmap_axes=0,
                                         implementation=impl))
        times.append(best(lambda: fn(x, None, params), 5))
    except Exception:
        pass  # an algorithm that fails does not count
print(min(times))
"""
)

GEMM_FLOOR = """
x = np.random.RandomState(0).randn(2000, 3072).astype(np.float32)
y = np.random.RandomState(1).randn(2000, 3072).astype(np.float32)
print(best(lambda: {expr}, 5))
"""


@dataclasses.dataclass(frozen=True)
class Row:
    """One comparison.

    Attributes:
        name: row id.
        what: the call timed.
        code: the snippet, with ``{lib}`` for the library's import name.
        target: ``('nt', r)``: at least ``r`` times NT's speed;
            ``('floor', r)``: within ``r`` times the floor's time.
        floor: a NumPy snippet (``GEMM_FLOOR`` form) timed alongside, or ``None``.
        nt_code: NT's snippet when it differs from ``code``.
    """

    name: str
    what: str
    code: str
    targets: tuple[tuple[str, float], ...]
    floor: str | None = None
    nt_code: str | None = None


def _cnn(depth: int, head: str, n: int, x2: str, repeats: int) -> str:
    return CNN.format(lib="{lib}", depth=depth, head=head, n=n, x2=x2, repeats=repeats)


ROWS = [
    Row("five_line_xx", "five-line NTK, N=2000, d=3072, kernel_fn(x, x, 'ntk')",
        FIVE_LINE.format(lib="{lib}", x2="x"), (("floor", 1.2),),
        floor=GEMM_FLOOR.format(expr="x @ y.T")),
    Row("five_line_none", "five-line NTK, N=2000, d=3072, kernel_fn(x, None, 'ntk')",
        FIVE_LINE.format(lib="{lib}", x2="None"), (("nt", 3.0), ("floor", 1.25)),
        floor=GEMM_FLOOR.format(expr="x @ x.T")),
    Row("cnn21_flatten_xx", "21x(Conv(1,3x3,SAME)+ReLU)+Flatten, N=32, (x, x)",
        _cnn(21, "Flatten", 32, "x", 3), (("nt", 5.0),)),
    Row("cnn21_flatten_none", "21x(Conv(1,3x3,SAME)+ReLU)+Flatten, N=32, (x, None)",
        _cnn(21, "Flatten", 32, "None", 3), (("nt", 5.0),)),
    Row("cnn5_gap_xx", "5x(Conv(1,3x3,SAME)+ReLU)+GlobalAvgPool, N=4, (x, x)",
        _cnn(5, "GlobalAvgPool", 4, "x", 2), (("nt", 50.0),)),
    Row("cnn5_gap_none", "5x(Conv(1,3x3,SAME)+ReLU)+GlobalAvgPool, N=4, (x, None)",
        _cnn(5, "GlobalAvgPool", 4, "None", 2), (("nt", 50.0),)),
    Row("fc_predict_4000", "FC ReLU NTK N=4000 d=64 + gradient_descent_mse(t=inf), 1000 test",
        FC_PREDICT, (("nt", 3.0),)),
    Row("entk_cnn_16", "empirical NTK, 3-conv CNN, N=16, 10 outputs, best algorithm, plain jit",
        ENTK.replace("{impls}", "[nt.NtkImplementation.AUTO]"), (("nt", 2.0),),
        nt_code=ENTK.replace("{impls}", "[1, 2, 3]")),
]  # fmt: skip


def _run(python: str, code: str, timeout: float) -> float | None:
    proc = subprocess.run(
        [python, "-c", HEADER + code], capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        print(f"    failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return float(proc.stdout.strip().splitlines()[-1])


def compare(row: Row, rounds: int, nt_python: str | None, timeout: float) -> dict[str, object]:
    """Times ``row`` in alternating fresh processes; returns each side's best and the ratios."""
    best: dict[str, float] = {}
    sides = [("infinet", sys.executable, row.code.replace("{lib}", "infinet"))]
    if nt_python:
        nt_code = (row.nt_code or row.code).replace("{lib}", "neural_tangents")
        sides.insert(0, ("nt", nt_python, nt_code))
    if row.floor:
        sides.append(("floor", sys.executable, row.floor))
    for _ in range(rounds):
        for side, python, code in sides:
            t = _run(python, code, timeout)
            if t is not None:
                best[side] = min(best.get(side, float("inf")), t)
    out: dict[str, object] = {"name": row.name, "what": row.what, **best}
    checks = []
    if "nt" in best and "infinet" in best:
        out["speedup"] = best["nt"] / best["infinet"]
    if "floor" in best and "infinet" in best:
        out["of_floor"] = best["infinet"] / best["floor"]
    for kind, r in row.targets:
        if kind == "nt" and "speedup" in out:
            checks.append(best["nt"] / best["infinet"] >= r)
        if kind == "floor" and "of_floor" in out:
            checks.append(best["infinet"] / best["floor"] <= r)
    out["status"] = "met" if checks and all(checks) else ("MISSED" if checks else "—")
    return out


def _fmt(row: Row, r: dict[str, object]) -> str:
    def sec(key: str) -> str:
        v = r.get(key)
        return f"{v:.4g} s" if isinstance(v, float) else "—"

    target = ", ".join(f"≥ {v:g}× NT" if k == "nt" else f"≤ {v:g}× floor" for k, v in row.targets)
    speed = f"{r['speedup']:.2f}×" if "speedup" in r else "—"
    floor = f"{r['of_floor']:.2f}×" if "of_floor" in r else "—"
    return (f"| {row.name} | {row.what} | {sec('infinet')} | {sec('nt')} | {speed} | "
            f"{sec('floor')} | {floor} | {target} | {r['status']} |")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--out", default="")
    args = parser.parse_args(argv)
    wanted = {n for n in args.only.split(",") if n}
    nt_python = os.environ.get("INFINET_NT_PYTHON")
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
        f"best of {args.rounds} alternating fresh processes per side, float32.",
        "",
        "| row | call (jax.jit(kernel_fn, static_argnames='get')) | infinet | NT 0.6.5 | "
        "speed-up | floor | infinet ÷ floor | target | status |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        if wanted and row.name not in wanted:
            continue
        print(f"running {row.name} ...", flush=True)
        lines.append(_fmt(row, compare(row, args.rounds, nt_python, args.timeout)))
        print(lines[-1], flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n".join(lines) + "\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
