"""A trained finite ensemble matches gradient_descent_mse_ensemble within Monte Carlo error."""

import jax
import jax.numpy as jnp
import numpy as np

from infinet import predict, stax

MEMBERS, WIDTH, STEPS = 256, 512, 20


def _train(init_fn, apply_fn, x, y, xt, lr):
    keys = jax.random.split(jax.random.key(0), MEMBERS)

    def loss(p):
        return 0.5 * jnp.mean((apply_fn(p, x) - y) ** 2)

    def step(_, p):
        return jax.vmap(lambda q: jax.tree.map(lambda a, g: a - lr * g, q, jax.grad(loss)(q)))(p)

    @jax.jit
    def run(keys):
        params = jax.vmap(lambda k: init_fn(k, x.shape)[1])(keys)
        params = jax.lax.fori_loop(0, STEPS, step, params)
        return jax.vmap(apply_fn, (0, None))(params, xt)

    return np.asarray(run(keys))[..., 0]  # (members, n_test)


def test_finite_ensemble_matches_infinite_ensemble():
    init_fn, apply_fn, kernel_fn = stax.serial(
        stax.Dense(WIDTH, W_std=1.5, b_std=0.05), stax.Erf(), stax.Dense(1, W_std=1.5, b_std=0.05)
    )
    x = np.array([[-1.5], [-0.4], [0.3], [1.2]])
    y = np.sin(2 * x)
    xt = np.array([[-1.0], [0.0], [0.8], [2.0]])
    # a small step, so that discrete gradient descent follows the gradient flow
    lr = 0.1 * predict.max_learning_rate(kernel_fn(x, None, "ntk"))
    f = _train(init_fn, apply_fn, x, y, xt, lr)
    out = predict.gradient_descent_mse_ensemble(kernel_fn, x, y, lr)(
        float(STEPS), xt, "ntk", compute_cov=True
    )
    mean, cov = np.asarray(out.mean)[:, 0], np.asarray(out.covariance)
    sd = np.sqrt(np.diag(cov))
    # mean: standard error sd/sqrt(M); a few per cent for finite width and step size
    assert np.all(np.abs(f.mean(0) - mean) < 4 * sd / np.sqrt(MEMBERS) + 0.03 * sd)
    # covariance: standard error of a sample covariance ~ sqrt((C_ii C_jj + C_ij^2)/M)
    c_mc = np.cov(f, rowvar=False)
    se = np.sqrt((np.outer(sd**2, sd**2) + cov**2) / MEMBERS)
    assert np.all(np.abs(c_mc - cov) < 4 * se + 0.05 * np.outer(sd, sd))
    assert np.all(sd > 0.05)  # a non-trivial check: the ensemble still has spread
