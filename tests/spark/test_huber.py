"""Huber's loss: SGDLinearRegression(loss="huber") and the job's --loss huber against a scipy optimum."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.optimize import minimize

from sparkgd.core.gradients import HuberGradient
from sparkgd.ml import SGDLinearRegression, SGDLinearRegressionModel
from tests.spark.test_job import load_job
from tests.spark.test_ml import frame


def outliers(n=400, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    w = np.array([1.5, -2.0, 0.5])[:d]
    y = x @ w + 1.0 + 0.3 * rng.standard_normal(n)
    bad = rng.random(n) < 0.1
    y[bad] += rng.choice([-25.0, 25.0], bad.sum())  # gross outliers
    return x, y, w


def huber_optimum(x, y, epsilon, reg=0.0):
    """argmin of mean Huber loss + reg/2 ||w||^2 (intercept unpenalized), by scipy's L-BFGS-B."""
    g = HuberGradient(epsilon)
    xb = np.hstack([x, np.ones((len(x), 1))])
    pen = np.r_[np.ones(x.shape[1]), 0.0]

    def f(v):
        loss, mult = g.loss_and_multiplier(xb @ v, y)
        return loss.mean() + 0.5 * reg * np.sum(pen * v * v), xb.T @ mult / len(y) + reg * pen * v

    res = minimize(f, np.zeros(xb.shape[1]), jac=True, method="L-BFGS-B", options=dict(gtol=1e-13, ftol=1e-16,
                                                                                        maxiter=10_000))
    return res.x[:-1], res.x[-1]


@pytest.mark.parametrize("reg", [0.0, 0.05])
def test_batch_huber_reaches_the_huber_optimum(spark, reg):
    x, y, _ = outliers()
    df, _ = frame(spark, x, y)
    want_w, want_b = huber_optimum(x, y, 0.8, reg)
    model = SGDLinearRegression(loss="huber", epsilon=0.8, optimizer="lbfgs", maxIter=300, tol=0.0,
                                regParam=reg, standardization=False).fit(df)
    np.testing.assert_allclose(model.coefficients.toArray(), want_w, atol=1e-6)
    assert model.intercept == pytest.approx(want_b, abs=1e-6)
    sgd = SGDLinearRegression(loss="huber", epsilon=0.8, maxIter=400, stepSize=2.0, tol=0.0, regParam=reg,
                              standardization=False).fit(df)  # MLlib's rule gets there too, more slowly
    np.testing.assert_allclose(sgd.coefficients.toArray(), want_w, atol=2e-2)


def test_huber_shrugs_off_outliers_that_pull_least_squares(spark):
    x, y, w = outliers(seed=1)
    df, _ = frame(spark, x, y)
    kw = dict(optimizer="lbfgs", maxIter=200, tol=0.0)
    huber = SGDLinearRegression(loss="huber", **kw).fit(df)
    squared = SGDLinearRegression(**kw).fit(df)
    err_h = np.abs(huber.coefficients.toArray() - w).max()
    err_s = np.abs(squared.coefficients.toArray() - w).max()
    assert err_h < 0.1 and err_s > 3 * err_h
    # the epsilon -> infinity limit is least squares
    wide = SGDLinearRegression(loss="huber", epsilon=1e6, **kw).fit(df)
    np.testing.assert_allclose(wide.coefficients.toArray(), squared.coefficients.toArray(), atol=1e-8)


def test_loss_and_epsilon_are_checked_and_persisted(spark, tmp_path):
    x, y, _ = outliers(n=60)
    df, _ = frame(spark, x, y)
    with pytest.raises(ValueError, match="param loss must be one of squaredError, huber, got 'cauchy'"):
        SGDLinearRegression(loss="cauchy").fit(df)
    with pytest.raises(ValueError, match="param epsilon must be a finite number > 0, got 0.0"):
        SGDLinearRegression(loss="huber", epsilon=0.0).fit(df)
    est = SGDLinearRegression(maxIter=5).setLoss("huber").setEpsilon(0.7)
    model = est.fit(df)
    model.write().save(str(tmp_path / "m"))
    loaded = SGDLinearRegressionModel.load(str(tmp_path / "m"))
    assert (loaded.getLoss(), loaded.getEpsilon()) == ("huber", 0.7)
    assert SGDLinearRegression().getLoss() == "squaredError"
    # a different epsilon is a different training: its checkpoint is not resumed from
    ck = str(tmp_path / "ck")
    SGDLinearRegression(loss="huber", epsilon=0.7, maxIter=4, checkpointDir=ck, checkpointInterval=2).fit(df)
    with pytest.raises(ValueError, match="other settings"):
        SGDLinearRegression(loss="huber", epsilon=0.9, maxIter=6, checkpointDir=ck, resume=True).fit(df)


@pytest.mark.parametrize("api", ["rdd", "dataframe"])
def test_the_job_trains_huber_with_its_epsilon(spark, tmp_path, api):
    job = load_job("train_linear")
    final = {}
    for eps in ("0.5", "0.05"):
        out = tmp_path / eps
        argv = ["--loss", "huber", "--epsilon", eps, "--optimizer", "lbfgs", "--mini-batch-fraction", "1.0",
                "--iterations", "60", "--rows", "2000", "--api", api, "--output", str(out),
                "--convergence-tol", "0"]
        assert job.main(argv, spark=spark) == 0
        m = json.loads((out / "metrics.json").read_text())
        assert m["config"]["loss"] == "huber" and m["test"]["rmse"] < 0.2 and m["weight_error_max"] < 0.05
        final[eps] = m["loss_history"][-1]
    # Huber's loss grows with epsilon at every residual, so the optimum's does: epsilon reached the training
    assert final["0.05"] < 0.8 * final["0.5"]
