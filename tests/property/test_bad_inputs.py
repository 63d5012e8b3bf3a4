"""Generated bad and extreme inputs over the public API (issue 17).

Every generated call must end in one of two outcomes:

* a clear error: ``TypeError``, ``ValueError`` or ``FloatingPointError``
  (:class:`~infinet.validate.KernelOverflowError`) whose message names the argument;
* a correct finite answer, compared with an independent numpy computation where one
  exists (the arc-cosine kernel, a Cholesky solve).

A silent NaN/inf, an unclear crash (any other exception) or a wrong answer fails the
test. Seeds are fixed (``derandomize=True``) and example counts bounded so the
default run is short; ``-m slow`` runs ten times more examples. Outcome counts are
written to ``$INFINET_PROPERTY_COUNTS`` (JSON) when that variable is set.
"""

from __future__ import annotations

import collections
import json
import math
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infinet import empirical_ntk_fn, predict, stax
from infinet.validate import KernelOverflowError, NumericalWarning

COUNTS: collections.Counter[str] = collections.Counter()
CLEAR = (TypeError, ValueError, KernelOverflowError)


def _settings(n: int) -> Callable[[Any], Any]:
    scale = 10 if os.environ.get("INFINET_PROPERTY_SLOW") else 1
    return settings(
        max_examples=n * scale,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    path = os.environ.get("INFINET_PROPERTY_COUNTS")
    if path:
        with open(path, "w") as f:
            json.dump(dict(COUNTS), f, indent=1, sort_keys=True)


def outcome(fn: Callable[[], Any], names: tuple[str, ...]) -> Any:
    """Runs ``fn``; a clear error must name one of ``names``.

    Returns the result, or ``None`` after a clear error or a documented
    :class:`~infinet.validate.NumericalWarning` (then the answer must still be finite).
    """
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fn()
    except CLEAR as e:
        msg = str(e)
        assert any(n in msg for n in names), f"error does not name {names}: {msg}"
        COUNTS["clear error"] += 1
        return None
    leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(result)]
    for leaf in leaves:
        if leaf.dtype.kind in "fc":
            assert np.all(np.isfinite(leaf)), "silent NaN/inf"
    others = [w for w in caught if not issubclass(w.category, NumericalWarning)]
    assert not others, [str(w.message) for w in others]
    if caught:
        COUNTS["NumericalWarning and finite answer"] += 1
        return None
    COUNTS["finite answer"] += 1
    return result


# -- layer hyperparameters -------------------------------------------------------

ANY_NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-10, 10),
    st.sampled_from([None, "1.0", True, 1e300, -0.0, 1j]),
)


@_settings(400)
@given(out_dim=ANY_NUMBER, w_std=ANY_NUMBER, b_std=ANY_NUMBER)
def test_dense_hyperparameters(out_dim: Any, w_std: Any, b_std: Any) -> None:
    layer = outcome(
        lambda: stax.Dense(out_dim, W_std=w_std, b_std=b_std), ("out_dim", "W_std", "b_std")
    )
    if layer is not None:
        assert isinstance(out_dim, int) and out_dim >= 1
        assert math.isfinite(w_std) and w_std >= 0
        assert b_std is None or (math.isfinite(b_std) and b_std >= 0)


@_settings(150)
@given(coef=st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=4))
def test_polynomial_coefficients(coef: list[float]) -> None:
    layer = outcome(lambda: stax.Polynomial(coef), ("coef",))
    if layer is not None:
        assert all(math.isfinite(c) for c in coef)


# -- kernel_fn inputs ------------------------------------------------------------

W, B = 1.3, 0.2
_, _, KERNEL_FN = stax.serial(stax.Dense(8, W_std=W, b_std=B), stax.Relu(), stax.Dense(1))


def relu_nngp(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """Independent numpy arc-cosine kernel of the network above (Cho & Saul 2009)."""
    d = x1.shape[1]
    q = W * W * x1 @ x2.T / d + B * B
    v1 = W * W * np.sum(x1 * x1, 1) / d + B * B
    v2 = W * W * np.sum(x2 * x2, 1) / d + B * B
    r = np.sqrt(np.outer(v1, v2))
    cos = np.clip(q / r, -1, 1)
    theta = np.arccos(cos)
    return (r * np.sin(theta) + (np.pi - theta) * q) / (2 * np.pi)


MAGNITUDE = st.sampled_from([0.0, 1e-30, 1e-3, 1.0, 1e3, 1e10, 1e17, 1e20, 1e30, 1e200])
ENTRY = st.one_of(st.floats(-3, 3), st.sampled_from([np.nan, np.inf, -np.inf]), st.floats(-3, 3))
DTYPE = st.sampled_from([np.float32, np.float64, np.float32, np.int32, np.complex64, np.bool_])


@_settings(150)
@given(
    entries=st.lists(ENTRY, min_size=12, max_size=12),
    scale=MAGNITUDE,
    dtype=DTYPE,
    get=st.sampled_from(["nngp", "ntk", ("nngp", "ntk"), None, "nngps", 3, ["ntk"], b"ntk"]),
)
def test_kernel_fn_inputs(entries: list[float], scale: float, dtype: Any, get: Any) -> None:
    with np.errstate(all="ignore"):
        x = (np.array(entries).reshape(3, 4) * scale).astype(dtype)
    result = outcome(lambda: KERNEL_FN(x, None, get), ("x1", "get", "layer", "dtype"))
    if result is None or get != "nngp" or dtype == np.bool_:
        return
    expected = relu_nngp(x.astype(np.float64), x.astype(np.float64))
    scale_k = np.abs(expected).max()
    assert np.allclose(np.asarray(result, np.float64), expected, rtol=1e-4, atol=1e-5 * scale_k)


@_settings(40)
@given(
    n2=st.integers(0, 4),
    d2=st.integers(1, 6),
    key=st.sampled_from(["foo", "pattern", "rng", "get_", "diagonal_batch", "mask_constant"]),
    value=st.sampled_from([None, 1, True, "x"]),
)
def test_kernel_fn_second_input_and_keywords(n2: int, d2: int, key: str, value: Any) -> None:
    x1 = np.linspace(-1, 1, 12).reshape(3, 4)
    x2 = np.ones((n2, d2)) if n2 else np.ones((0, d2))
    outcome(
        lambda: KERNEL_FN(x1, x2, "nngp", **{key: value}),
        (key, "x2", "x1", "mask_constant", "diagonal"),
    )


# -- predict ----------------------------------------------------------------------

K_GOOD = np.array([[2.0, 0.5, 0.1], [0.5, 1.5, 0.3], [0.1, 0.3, 1.0]])
BAD_K = {
    "good": K_GOOD,
    "asymmetric": K_GOOD + np.triu(np.ones((3, 3)), 1),
    "nan": np.where(np.eye(3) > 0, np.nan, K_GOOD),
    "negative": -K_GOOD,
    "zero": np.zeros((3, 3)),
    "wrong_shape": np.ones((3, 2)),
}


@_settings(100)
@given(
    k=st.sampled_from(sorted(BAD_K)),
    rows=st.integers(1, 5),
    y_entry=st.one_of(st.floats(-2, 2), st.sampled_from([np.nan, np.inf])),
    diag_reg=st.sampled_from([0.0, 1e-3]),
)
def test_gp_inference_arguments(k: str, rows: int, y_entry: float, diag_reg: float) -> None:
    y = np.full((rows, 1), y_entry)
    kk = BAD_K[k]

    def run() -> Any:
        return predict.gp_inference(kk, y, diag_reg=diag_reg)("nngp", kk, None)

    mean = outcome(run, ("k_train_train", "y_train", "diag_reg", "positive"))
    if mean is not None:
        reg = kk + diag_reg * np.mean(np.diag(kk)) * np.eye(3)
        assert np.allclose(mean, kk @ np.linalg.solve(reg, y), rtol=1e-6, atol=1e-9)


TIMES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([None, -1.0, [0.0, 1.0], [1.0, np.nan], "1"]),
)


@_settings(60)
@given(
    t=TIMES, lr=st.one_of(st.floats(1e-3, 1e3), st.sampled_from([np.nan, np.inf, -1.0, 0.0, 1.0]))
)
def test_gradient_descent_mse_times(t: Any, lr: float) -> None:
    y = np.array([[1.0], [-1.0], [0.5]])

    def run() -> Any:
        return predict.gradient_descent_mse(K_GOOD, y, learning_rate=lr)(t)

    out = outcome(run, ("t", "learning_rate"))
    if out is not None and t is not None and np.ndim(t) == 0 and lr * t < 1e30:
        evals, evecs = np.linalg.eigh(K_GOOD)
        decay = evecs @ np.diag(np.exp(-lr * evals * t / y.size)) @ evecs.T
        assert np.allclose(out, y - decay @ y, rtol=1e-6, atol=1e-9)


@_settings(100)
@given(
    k=st.sampled_from(sorted(BAD_K)),
    momentum=st.one_of(st.floats(-2, 2), st.sampled_from([np.nan, 0.0, 0.9, 1.0])),
)
def test_max_learning_rate(k: str, momentum: float) -> None:
    kk = BAD_K[k]
    lr = outcome(
        lambda: predict.max_learning_rate(kk, momentum=momentum), ("ntk_train_train", "momentum")
    )
    if lr is not None:
        assert lr > 0
        expected = 2 * (1 + momentum) * 3 / np.linalg.eigvalsh(kk)[-1]
        assert np.isclose(lr, expected, rtol=1e-6)


# -- empirical ----------------------------------------------------------------------


def _model(p: Any, x: Any) -> Any:
    return jax.numpy.tanh(x @ p["w"]) @ p["v"]


PARAMS = {"w": np.ones((3, 4)) / 2, "v": np.ones((4, 2)) / 2}


@_settings(20)
@given(
    n=st.integers(0, 3),
    d=st.integers(1, 5),
    params=st.sampled_from([PARAMS, None]),
)
def test_empirical_ntk_arguments(n: int, d: int, params: Any) -> None:
    x = np.linspace(-1, 1, n * d).reshape(n, d)
    out = outcome(lambda: empirical_ntk_fn(_model)(x, None, params), ("params", "x1"))
    if out is not None:
        jac = jax.jacobian(lambda p: _model(p, x))(params)
        flat = np.concatenate([np.asarray(j).reshape(n, 2, -1) for j in jac.values()], -1)
        assert np.allclose(out, np.einsum("iap,jap->ij", flat, flat) / 2, rtol=1e-5)


@pytest.mark.slow
def test_slow_property_run_is_configured() -> None:
    """``INFINET_PROPERTY_SLOW=1 pytest -m 'slow or not slow' tests/property`` runs
    ten times more examples of every test above."""
    assert _settings(1) is not None
