"""infinet.sklearn: estimator checks, Pipeline/GridSearchCV, agreement with gp_inference."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from infinet import predict, stax
from infinet.sklearn import NeuralKernelClassifier, NeuralKernelRegressor

_SMALL = stax.serial(stax.Dense(1), stax.Relu(), stax.Dense(1))

# No check is expected to fail. scikit-learn 1.9 skips 4 by itself, for this environment
# only: check_array_api_input x2 (SCIPY_ARRAY_API is not set) and
# check_{regressor,classifier}_data_not_an_array (pandas is not installed).
EXPECTED_FAILED = {}


@pytest.mark.slow  # the full suite: ~60 s on a quiet 2-core machine
@parametrize_with_checks(
    [NeuralKernelRegressor(), NeuralKernelClassifier()],  # default (picklable) architecture
    expected_failed_checks=lambda est: EXPECTED_FAILED,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("est", [NeuralKernelRegressor(_SMALL), NeuralKernelClassifier(_SMALL)])
def test_core_estimator_checks(est):
    """The fast subset of the estimator checks that CI runs by default."""
    from sklearn.utils import estimator_checks as ec

    name = type(est).__name__
    for check in (
        ec.check_get_params_invariance,
        ec.check_set_params,
        ec.check_fit2d_1sample,
        ec.check_dict_unchanged,
        ec.check_fit_idempotent,
        ec.check_n_features_in,
        ec.check_estimators_unfitted,
    ):
        check(name, est)


def test_pickle_round_trip_with_the_default_architecture():
    import pickle

    X, y = np.random.RandomState(3).randn(8, 2), np.arange(8) % 2
    clf = NeuralKernelClassifier().fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X), atol=1e-12)


def test_regressor_matches_gp_inference_with_std():
    rng = np.random.RandomState(0)
    X, y, Xt = rng.randn(15, 3), rng.randn(15), rng.randn(4, 3)
    reg = NeuralKernelRegressor(_SMALL, get="nngp", diag_reg=1e-2).fit(X, y)
    mean, std = reg.predict(Xt, return_std=True)
    kfn = _SMALL.kernel_fn
    m, cov = predict.gp_inference(kfn(X, None, "nngp"), y[:, None], diag_reg=1e-2)(
        "nngp", kfn(Xt, X, "nngp"), kfn(Xt, None, "nngp")
    )
    np.testing.assert_allclose(mean, np.asarray(m)[:, 0], rtol=1e-8)
    np.testing.assert_allclose(std, np.sqrt(np.diag(np.asarray(cov))), rtol=1e-6)


def test_pipeline_and_grid_search():
    rng = np.random.RandomState(1)
    X = rng.randn(40, 2)
    y = np.where(X[:, 0] * X[:, 1] > 0, "same", "diff")
    pipe = make_pipeline(StandardScaler(), NeuralKernelClassifier(_SMALL))
    grid = GridSearchCV(
        pipe,
        {
            "neuralkernelclassifier__diag_reg": [1e-3, 1.0],
            "neuralkernelclassifier__get": ["nngp", "ntk"],
        },
        cv=2,
    )
    grid.fit(X, y)
    assert set(grid.best_params_) == {
        "neuralkernelclassifier__diag_reg",
        "neuralkernelclassifier__get",
    }
    proba = grid.predict_proba(X[:5])
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-10)
    assert list(grid.classes_) == ["diff", "same"]


def test_image_input_shape_and_bad_params():
    X = np.random.RandomState(2).randn(6, 4 * 4 * 3)
    y = np.arange(6) % 3
    cnn = stax.serial(
        stax.Conv(1, (3, 3), padding="SAME"), stax.Relu(), stax.Flatten(), stax.Dense(1)
    )
    clf = NeuralKernelClassifier(cnn, input_shape=(4, 4, 3)).fit(X, y)
    assert clf.predict(X).shape == (6,)
    with pytest.raises(ValueError, match="get='foo'"):
        NeuralKernelRegressor(get="foo").fit(X, y)
