"""Deep kernels stay symmetric, PSD to round-off and finite, or raise the documented
overflow error (issue 17): the depth sweep and the near-identical-inputs target."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from infinet import stax
from infinet.validate import KernelOverflowError

ACTIVATIONS: dict[str, Callable[[], stax.Layer]] = {
    "relu": stax.Relu,
    "erf": stax.Erf,
    "gelu": stax.Gelu,
    "abrelu": lambda: stax.ABRelu(-0.4, 1.1),
}


def _inputs(dtype: type, n: int = 8, d: int = 8, spread: float = 1e-4) -> np.ndarray:
    """Nearly identical rows around one point, plus two exact duplicates of the first."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, d))
    x = np.concatenate([x + spread * rng.normal(size=(n - 2, d)), x[:1] + 0, x[:1] + 0])
    return x.astype(dtype)


def _deep(act: str, w_std: float, depth: int) -> stax.Layer:
    block = stax.serial(stax.Dense(64, W_std=w_std, b_std=0.1), ACTIVATIONS[act]())
    return stax.serial(stax.repeat(block, depth), stax.Dense(1, W_std=w_std))


def _assert_symmetric_psd(k: np.ndarray, label: str, psd_tol: float = 1e-5) -> None:
    k = np.asarray(k, np.float64)
    assert np.all(np.isfinite(k)), label
    scale = np.abs(k).max()
    assert np.abs(k - k.T).max() <= 1e-6 * scale, label
    eig = np.linalg.eigvalsh(k)
    assert eig[0] >= -psd_tol * max(eig[-1], 0.0), (label, eig[0], eig[-1])


@pytest.mark.parametrize("get", ["nngp", "ntk"])
def test_erf_depth_100_float32_near_identical_inputs(get: str) -> None:
    # The target: W_std = 1.5 (chaotic phase), float32, depth 100.
    block = stax.serial(stax.Dense(64, W_std=1.5), stax.Erf())
    _, _, kernel_fn = stax.serial(stax.repeat(block, 100), stax.Dense(1, W_std=1.5))
    k = np.asarray(kernel_fn(_inputs(np.float32), None, get))
    assert np.abs(k - k.T).max() <= 1e-6 * np.abs(k).max()
    eig = np.linalg.eigvalsh(k.astype(np.float64))
    assert eig[0] >= -1e-5 * eig[-1]


def _sweep_case(act: str, dtype: type, w_std: float, depth: int) -> str:
    _, _, kernel_fn = _deep(act, w_std, depth)
    label = f"{act} {dtype.__name__} W_std={w_std} depth={depth}"
    try:
        out = kernel_fn(_inputs(dtype), None, ("nngp", "ntk"))
    except KernelOverflowError as e:
        assert "layer" in str(e), label
        return "overflow"
    _assert_symmetric_psd(out.nngp, label + " nngp")
    _assert_symmetric_psd(out.ntk, label + " ntk")
    return "ok"


# A few configurations by default (ordered W_std = 1, chaotic W_std = 3); the full
# sweep is slow-marked.
FAST = [
    ("erf", np.float32, 3.0, 200),
    ("gelu", np.float32, 1.0, 200),
    ("relu", np.float64, 3.0, 200),
    ("abrelu", np.float32, 1.0, 50),
]


@pytest.mark.parametrize("act,dtype,w_std,depth", FAST)
def test_depth_sweep_fast(act: str, dtype: type, w_std: float, depth: int) -> None:
    assert _sweep_case(act, dtype, w_std, depth) in ("ok", "overflow")


def test_relu_chaotic_depth_overflow_names_the_layer() -> None:
    # Relu at W_std = 4 doubles the variance 8-fold per layer: float32 overflows.
    _, _, kernel_fn = _deep("relu", 4.0, 100)
    with pytest.raises(KernelOverflowError, match=r"layer \d+ of 201 \(ABRelu"):
        kernel_fn(_inputs(np.float32), None, "nngp")


@pytest.mark.slow
@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("w_std", [0.5, 1.0, 1.5, 3.0, 5.0])
@pytest.mark.parametrize("depth", [1, 10, 50, 100, 200])
def test_depth_sweep_full(act: str, dtype: type, w_std: float, depth: int) -> None:
    assert _sweep_case(act, dtype, w_std, depth) in ("ok", "overflow")
