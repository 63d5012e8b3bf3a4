"""``batch`` as a front: jit in either order, the caller's get per tile, empirical kernel
functions, multi-input networks, clear errors."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from infinet import batch, empirical_ntk_fn, stax
from infinet.kernel import Kernel
from tests.tolerances import tol


def _net():
    return stax.serial(stax.Dense(16, 1.3, 0.1), stax.Erf(), stax.Dense(1, 1.2, 0.05))


def _x(n=10, seed=0, d=3):
    return np.random.RandomState(seed).randn(n, d)


def test_batch_of_jitted_kernel_fn_get_none_and_symmetric_pairs():
    kernel_fn = _net().kernel_fn
    x = _x()
    totals = []
    jitted = jax.jit(kernel_fn, static_argnames="get")
    out = batch(jitted, 1, progress=lambda d, n: totals.append(n))(x, None)
    assert isinstance(out, Kernel) and totals[-1] == 55  # of 10 x 10 tiles
    ref = kernel_fn(x, None)
    for field in ("nngp", "ntk", "cov1"):
        np.testing.assert_allclose(getattr(out, field), getattr(ref, field), **tol(np.float64))


@pytest.mark.parametrize("by_position", [True, False])
def test_jit_of_batch_with_static_get(by_position):
    kernel_fn = _net().kernel_fn
    x1, x2 = _x(7), _x(5, seed=1)
    fn = jax.jit(batch(kernel_fn, 3), static_argnames="get")
    out = fn(x1, x2, "ntk") if by_position else fn(x1, x2, get="ntk")
    np.testing.assert_allclose(out, kernel_fn(x1, x2, "ntk"), **tol(np.float64))
    sym = fn(x1, None, ("nngp", "ntk")) if by_position else fn(x1, None, get=("nngp", "ntk"))
    np.testing.assert_allclose(sym.nngp, kernel_fn(x1, None, "nngp"), **tol(np.float64))


def test_tiles_ask_only_for_the_callers_get():
    kernel_fn = _net().kernel_fn
    gets = []

    def spy(a, b, get=None, **kw):
        if not isinstance(a, jax.core.Tracer):  # not the one abstract shape probe
            gets.append(get)
        return kernel_fn(a, b, get, **kw)

    x = _x(6)
    out = batch(spy, 2)(x, None, "ntk")
    assert gets == ["ntk"] * 6
    np.testing.assert_allclose(out, kernel_fn(x, None, "ntk"), **tol(np.float64))
    gets.clear()
    batch(spy, 2)(x, None, ("ntk", "nngp"))
    assert gets == [("ntk", "nngp")] * 6
    gets.clear()
    cov1 = batch(spy, 2)(x, None, "cov1")  # not a per-tile field: whole kernels, then select
    assert gets == [None] * 6
    np.testing.assert_allclose(cov1, kernel_fn(x, None, "cov1"), **tol(np.float64))


@pytest.mark.parametrize("jit", [False, True])
def test_empirical_kernel_fn_takes_params_where_analytic_take_get(jit):
    init_fn, apply_fn, _ = stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(2))
    _, params = init_fn(jax.random.PRNGKey(0), (-1, 3))
    ntk_fn = empirical_ntk_fn(apply_fn)
    x1, x2 = _x(4), _x(3, seed=1)
    batched = batch(ntk_fn, batch_size=2)
    if jit:
        batched = jax.jit(batched)
    np.testing.assert_allclose(
        batched(x1, None, params), ntk_fn(x1, None, params), **tol(np.float64)
    )
    if jit:
        out = batched(x1, x2, params)
        np.testing.assert_allclose(out, ntk_fn(x1, x2, params), **tol(np.float64))


@pytest.mark.parametrize("get", [None, "ntk"])
def test_parallel_network_takes_and_returns_lists(get):
    _, _, kernel_fn = stax.parallel(
        stax.serial(stax.Dense(8), stax.Relu()), stax.serial(stax.Dense(8), stax.Erf())
    )
    x = [_x(5), _x(5, seed=1, d=2)]
    out = batch(kernel_fn, 2)(x, None, get)
    ref = kernel_fn(x, None, get)
    assert isinstance(out, list) and len(out) == 2
    for o, r in zip(out, ref):
        o, r = (o.ntk, r.ntk) if get is None else (o, r)
        np.testing.assert_allclose(o, r, **tol(np.float64))


def test_clear_errors():
    kernel_fn = _net().kernel_fn
    with pytest.raises(ValueError, match="x1 has 0 examples"):
        batch(kernel_fn, 2)(np.ones((0, 3)), None, "ntk")
    with pytest.raises(ValueError, match="x2 has 0 examples"):
        batch(kernel_fn, 2)(np.ones((4, 3)), np.ones((0, 3)), "ntk")
    with pytest.raises(TypeError, match=r"batch_size.*2\.5"):
        batch(kernel_fn, 2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size must be >= 0"):
        batch(kernel_fn, -3)
    with pytest.raises(ValueError, match="client="):
        batch(kernel_fn, 2, client="tcp://nowhere")(np.ones((4, 3)), None, "ntk")


def test_missing_distributed_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"infinet\[distributed\]"):
        batch(_net().kernel_fn, 2, client="local")(np.ones((4, 3)), None, "ntk")


def test_import_infinet_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, infinet; infinet.batch; "
        "bad = [m for m in ('dask', 'distributed', 'tqdm') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_progress_bar(capsys):
    kernel_fn = _net().kernel_fn
    x = _x(4)
    out = batch(kernel_fn, 2, progress=True)(x, None, "ntk")
    np.testing.assert_allclose(out, kernel_fn(x, None, "ntk"), **tol(np.float64))
    assert "3/3" in capsys.readouterr().err
