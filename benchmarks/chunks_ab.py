"""Structured derivatives in chunks of examples, A/B: ``python -m benchmarks.chunks_ab``.

Times the 3-conv CNN's full 10-output empirical NTK (N=16, float32, plain
``jax.jit``, structured derivatives) in alternating fresh processes with
``infinet.empirical.structured.CHUNK_BYTES`` set to a few budgets, and prints
the best time of each with the compiled scratch size. ``inf`` is one chunk (the
behaviour before chunking); 32 MiB is the default (4 chunks here).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from benchmarks.workloads.empirical import CNN_SRC

SNIPPET = (
    CNN_SRC
    + """
import time
import infinet
from infinet.empirical import structured
structured.CHUNK_BYTES = {budget}
fn = jax.jit(infinet.empirical_ntk_fn(cnn_apply, trace_axes=(), vmap_axes=0,
             implementation=infinet.NtkImplementation.STRUCTURED_DERIVATIVES))
fn(x, None, params).block_until_ready()
times = []
for _ in range(10):
    t = time.perf_counter()
    fn(x, None, params).block_until_ready()
    times.append(time.perf_counter() - t)
temp = fn.lower(x, None, params).compile().memory_analysis().temp_size_in_bytes
print(min(times), temp / 1e6)
"""
)

BUDGETS = {
    "one chunk": "2**62",
    "2 chunks (64 MiB)": "64 * 2**20",
    "default (32 MiB)": "32 * 2**20",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for name, budget in BUDGETS.items():
            code = SNIPPET.replace("{budget}", budget)
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout.split()
            t, temp = float(out[-2]), float(out[-1])
            best[name] = (min(t, best.get(name, (t, temp))[0]), temp)
    print("| chunking | scratch | best time per call |\n|---|---|---|")
    for name, (t, temp) in best.items():
        print(f"| {name} | {temp:.0f} MB | {t:.4f} s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
