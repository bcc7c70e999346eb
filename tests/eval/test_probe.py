import numpy as np
import pandas as pd
import pytest

from ptacl.eval.probe import linear_probe, probe_predictions, r2_per_phenotype


def _data(n=300, d=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    w = rng.normal(size=(d, 3))
    y = x @ w + 5 + rng.normal(scale=2.0, size=(n, 3))
    return x, pd.DataFrame(y, columns=["a", "b", "c"])


def test_ols_equals_numpy_least_squares():
    x, y = _data()
    x_train, x_test, y_train = x[:200], x[200:], y.iloc[:200]
    got = probe_predictions(x_train, y_train, x_test, method="ols")
    design = np.hstack([x_train, np.ones((200, 1))])
    coef, *_ = np.linalg.lstsq(design, y_train.to_numpy(), rcond=None)
    want = np.hstack([x_test, np.ones((100, 1))]) @ coef
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-8)


def test_r2_agrees_with_scikit_learn():
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(2)
    y, pred = rng.normal(size=(40, 2)), rng.normal(size=(40, 2))
    table = r2_per_phenotype(y, pred, ["a", "b"])
    for p, name in enumerate(["a", "b"]):
        assert table.loc[name, "R2"] == pytest.approx(r2_score(y[:, p], pred[:, p]))


def test_perfect_predictions_give_r2_one_and_the_mean_gives_zero():
    y = np.random.default_rng(0).normal(size=(50, 2))
    assert r2_per_phenotype(y, y, ["a", "b"])["R2"].tolist() == [1.0, 1.0]
    mean = np.broadcast_to(y.mean(axis=0), y.shape)
    np.testing.assert_allclose(r2_per_phenotype(y, mean, ["a", "b"])["R2"], 0.0, atol=1e-12)


def test_noiseless_linear_targets_are_recovered():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 5))
    y = pd.DataFrame({"t": x @ np.arange(1.0, 6.0) - 3.0})
    table = linear_probe(x[:60], y.iloc[:60], x[60:], y.iloc[60:])
    assert table.loc["t", "R2"] == pytest.approx(1.0, abs=1e-10)
    assert table.loc["t", "n"] == 40


def test_ridge_is_close_to_ols_on_a_well_posed_problem():
    x, y = _data(n=2000)
    ols = linear_probe(x[:1500], y.iloc[:1500], x[1500:], y.iloc[1500:], method="ols")
    ridge = linear_probe(x[:1500], y.iloc[:1500], x[1500:], y.iloc[1500:], method="ridge")
    np.testing.assert_allclose(ridge["R2"], ols["R2"], atol=0.01)
    assert (ols["R2"] > 0.5).all()


def test_nan_targets_are_left_out_of_fit_and_score():
    x, y = _data()
    y_nan = y.copy()
    y_nan.iloc[:50, 0] = np.nan  # training rows without a value
    y_nan.iloc[250:260, 1] = np.nan  # test rows without a value
    got = linear_probe(x[:200], y_nan.iloc[:200], x[200:], y_nan.iloc[200:])
    want_a = linear_probe(x[50:200], y.iloc[50:200, :1], x[200:], y.iloc[200:, :1])
    assert got.loc["a", "R2"] == pytest.approx(want_a.loc["a", "R2"])
    assert got["n"].tolist() == [100, 90, 100]


def test_mismatched_lengths_raise():
    x, y = _data()
    with pytest.raises(ValueError, match="train_y has 199 rows but its embeddings 200"):
        linear_probe(x[:200], y.iloc[:199], x[200:], y.iloc[200:])
    with pytest.raises(ValueError, match="test_y has 100 rows but its embeddings 99"):
        linear_probe(x[:200], y.iloc[:200], x[201:], y.iloc[200:])
    with pytest.raises(ValueError, match="width"):
        linear_probe(x[:200], y.iloc[:200], x[200:, :5], y.iloc[200:])


def test_ols_drops_exactly_collinear_directions_like_the_bundles_probe():
    """A LayerNorm-pooled embedding can have coordinates summing to 0: OLS must fit the
    minimum-norm solution, not amplify float32 rounding along that direction."""
    from ptacl.eval.probe import fit_ols

    rng = np.random.default_rng(4)
    x = rng.normal(size=(120, 8)).astype(np.float32)
    x -= x.mean(axis=1, keepdims=True)  # rank 7
    y = x[:, :3] @ np.array([1.0, 2.0, -1.0])[:, None] + 50
    fit = fit_ols(x, y)
    assert np.abs(fit.weight).max() < 10
    np.testing.assert_allclose(fit.predict(x), y, atol=1e-3)
    assert fit.used.tolist() == [120]


def test_a_phenotype_with_fewer_than_two_values_predicts_nan():
    from ptacl.eval.probe import fit_ols

    x = np.random.default_rng(0).normal(size=(20, 3))
    y = np.full((20, 2), np.nan)
    y[:, 0] = x[:, 0]
    y[0, 1] = 1.0
    pred = fit_ols(x, y).predict(x)
    assert np.isfinite(pred[:, 0]).all() and np.isnan(pred[:, 1]).all()


def test_fit_ridge_is_the_standardised_ridgecv_pipeline_on_raw_embeddings():
    """The ridge probe folded into one linear map on the raw embeddings (what a bundle's
    LinearProbe computes) predicts what scikit-learn's StandardScaler + RidgeCV predicts, per
    phenotype on its own known rows."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ptacl.eval.probe import RIDGE_ALPHAS, fit_ridge

    rng = np.random.default_rng(3)
    x = rng.normal(5.0, [1.0, 3.0, 0.1, 2.0, 1.0, 4.0], (40, 6))
    y = np.stack([x @ rng.normal(size=6) + rng.normal(0, 2, 40) for _ in range(3)], axis=1)
    y[[0, 5, 9], 1] = np.nan
    x_test = rng.normal(5.0, 2.0, (10, 6))
    fit = fit_ridge(x, y)
    got = fit.predict(x_test)
    for p in range(3):
        ok = ~np.isnan(y[:, p])
        ref = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS)).fit(x[ok], y[ok, p])
        np.testing.assert_allclose(got[:, p], ref.predict(x_test), rtol=1e-9, atol=1e-9)
    assert fit.used.tolist() == [40, 37, 40]
