"""Structured derivatives in chunks of examples, A/B: ``python -m benchmarks.chunks_ab``.

Times the 3-conv CNN's full 10-output empirical NTK (N=16, float32, plain
``jax.jit``, structured derivatives) in alternating fresh processes with
``infinet.empirical.structured.CHUNK_BYTES`` and ``MAX_CHUNKS`` set to a few
values, and with interleaved convolution transposes on and off
(``infinet.empirical.sides.INTERLEAVE_CONVOLUTIONS``), and prints the best time of
each with the compiled scratch size. One chunk is the behaviour before chunking.
This is an infinet-only A/B of its own settings, not a comparison with NT.
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
structured.MAX_CHUNKS = {most}
from infinet.empirical import sides
sides.INTERLEAVE_CONVOLUTIONS = {interleave}
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

# name -> (CHUNK_BYTES, MAX_CHUNKS, INTERLEAVE_CONVOLUTIONS)
BUDGETS = {
    "one chunk": ("2**62", "4", "True"),
    "3 chunks (32 MiB, at most 4)": ("32 * 2**20", "4", "True"),
    "8 chunks, JAX's batched transposes": ("8 * 2**20", "8", "False"),
    "8 chunks (default: 8 MiB, at most 8, interleaved)": ("8 * 2**20", "8", "True"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for name, (budget, most, interleave) in BUDGETS.items():
            code = SNIPPET.replace("{budget}", budget).replace("{most}", most)
            code = code.replace("{interleave}", interleave)
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
