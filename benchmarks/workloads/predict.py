"""Predict workloads: FC NTK on N=4000 plus infinite-time MSE prediction (issue 4)."""

from __future__ import annotations

import numpy as np

from benchmarks.common import Workload, median_time

N_TRAIN, N_TEST, DIM = 4000, 1000, 64

GP_FC_NT = """
import time, statistics, numpy as np
import neural_tangents as nt
from neural_tangents import stax
_, _, kernel_fn = stax.serial(stax.Dense(512), stax.Relu(), stax.Dense(512), stax.Relu(),
                              stax.Dense(1))
rs = np.random.RandomState(0)
x_train = rs.randn(4000, 64).astype(np.float32)
y_train = rs.randn(4000, 1).astype(np.float32)
x_test = rs.randn(1000, 64).astype(np.float32)
def run():
    predict_fn = nt.predict.gradient_descent_mse_ensemble(kernel_fn, x_train, y_train,
                                                          diag_reg=1e-4)
    return predict_fn(x_test=x_test, get='ntk').block_until_ready()
run()
ts = []
for _ in range(5):
    t = time.perf_counter()
    run()
    ts.append(time.perf_counter() - t)
print(statistics.median(ts))
"""


def gp_fc_4000() -> float:
    """NTK of a 2-hidden-layer ReLU FC net on N=4000 (d=64), then the infinite-time
    ``gradient_descent_mse_ensemble`` mean on 1000 test points, float32 kernels."""
    from infinet import predict, stax

    _, _, kernel_fn = stax.serial(
        stax.Dense(512), stax.Relu(), stax.Dense(512), stax.Relu(), stax.Dense(1)
    )
    rs = np.random.RandomState(0)
    x_train = rs.randn(N_TRAIN, DIM).astype(np.float32)
    y_train = rs.randn(N_TRAIN, 1).astype(np.float32)
    x_test = rs.randn(N_TEST, DIM).astype(np.float32)

    def run() -> None:
        predict_fn = predict.gradient_descent_mse_ensemble(
            kernel_fn, x_train, y_train, diag_reg=1e-4
        )
        predict_fn(x_test=x_test, get="ntk").block_until_ready()

    return median_time(run, repeats=5, warmup=1)


WORKLOADS = [
    Workload(
        "gp_fc_4000",
        "2-hidden-layer ReLU FC NTK, N=4000, d=64, + infinite-time MSE mean on 1000 test",
        gp_fc_4000,
        unit="s",
        target=0.93,
        nt_reference=2.8,
        target_speedup=3.0,
        nt_code=GP_FC_NT,
    ),
]
