"""Issue 16: the library runs under ``jax_numpy_rank_promotion='raise'`` with x64 on and off.

NT's users (and its CI) run with rank promotion raising and in both precisions. Each
check below runs a representative call of stax, predict, the empirical kernels and
Monte Carlo under ``jax.numpy_rank_promotion('raise')`` in float32 (x64 off) and in
float64 (x64 on), and compares the two results (float32 against float64 tolerances).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import infinet
from infinet import predict, stax
from tests.tolerances import assert_close as _assert_close


def assert_close(actual: object, desired: object, *args: object) -> None:
    """Tolerances of ``actual``'s dtype (the tests also run with ``--x64=off``)."""
    _assert_close(actual, desired, *(args or (np.asarray(actual).dtype,)))  # type: ignore[arg-type]


RS = np.random.RandomState(0)
X, XT = RS.randn(4, 3), RS.randn(2, 3)
Y = RS.randn(4, 1)
XC = RS.randn(2, 4, 2)


def _in_both_precisions(fn: Callable[[], Any], compare: bool = True) -> None:
    """``fn()`` with x64 off and on, rank promotion raising; float32 ≈ float64."""
    results = {}
    for x64 in (False, True):
        with jax.enable_x64(x64), jax.numpy_rank_promotion("raise"):
            out = jax.tree.map(np.asarray, fn())
        want = np.float64 if x64 else np.float32
        for leaf in jax.tree.leaves(out):
            assert leaf.dtype == want, (x64, leaf.dtype)
            assert np.all(np.isfinite(leaf))
        results[x64] = out
    if not compare:
        return
    for a, b in zip(jax.tree.leaves(results[False]), jax.tree.leaves(results[True])):
        assert_close(a, b, np.float32, "f32_vs_f64")


MLP = stax.serial(stax.Dense(16, 1.5, 0.1), stax.Erf(), stax.Dense(1, 1.5, 0.1))
CNN = stax.serial(
    stax.Conv(4, (2,), padding="SAME"), stax.Relu(), stax.AvgPool((2,)), stax.Flatten(),
    stax.Dense(1),
)  # fmt: skip


def _f(p: dict, x: jax.Array) -> jax.Array:
    return jnp.tanh(x @ p["w"]) @ p["v"]


PARAMS = {"w": RS.randn(3, 5), "v": RS.randn(5, 2)}

CASES: dict[str, Callable[[], Any]] = {
    "stax_mlp": lambda: MLP.kernel_fn(X, XT, ("nngp", "ntk")),
    "stax_cnn": lambda: CNN.kernel_fn(XC, None, ("nngp", "ntk")),
    "predict_mse": lambda: predict.gradient_descent_mse(
        MLP.kernel_fn(X, None, "ntk"), Y, diag_reg=1e-2
    )(jnp.array([0.5, 2.0]), 0.0, 0.0, MLP.kernel_fn(XT, X, "ntk")),
    "predict_gp": lambda: predict.gp_inference(MLP.kernel_fn, X, Y, XT, "ntk", diag_reg=1e-2,
                                               compute_cov=True),
    "predict_ensemble": lambda: predict.gradient_descent_mse_ensemble(
        MLP.kernel_fn, X, Y, diag_reg=1e-2
    )(1.0, XT, "nngp", compute_cov=True),
    "empirical": lambda: [
        infinet.empirical_ntk_fn(_f, implementation=i)(X, XT, PARAMS) for i in (1, 2, 3)
    ],
    "monte_carlo": lambda: infinet.monte_carlo_kernel_fn(
        MLP.init_fn, MLP.apply_fn, jax.random.PRNGKey(0), 2
    )(X, None, "nngp"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_rank_promotion_raise_in_both_precisions(case: str) -> None:
    # Monte Carlo draws different networks in float32 and float64 (jax.random's
    # normals depend on the dtype), so only dtype and finiteness are compared there.
    _in_both_precisions(CASES[case], compare=case != "monte_carlo")


def test_gradient_descent_mse_inside_vmap() -> None:  # item 8
    k = MLP.kernel_fn(X, None, "ntk")
    k_test = MLP.kernel_fn(XT, X, "ntk")

    def fit(lr: jax.Array) -> Any:
        predict_fn = predict.gradient_descent_mse(k, Y, learning_rate=lr)
        return predict_fn(1.0, jnp.zeros((4, 1)), jnp.zeros((2, 1)), k_test)

    rates = jnp.array([0.1, 0.5, 1.0])
    with jax.numpy_rank_promotion("raise"):
        batched = jax.vmap(fit)(rates)
    for i, lr in enumerate(rates):
        one = fit(lr)
        assert_close(batched[0][i], one[0])
        assert_close(batched[1][i], one[1])
