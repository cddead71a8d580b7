"""Standardization centres the features virtually (#21.1), and a diverging run raises in every API."""

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors
from pyspark.ml.regression import LinearRegression
from pyspark.mllib.regression import LabeledPoint

from sparkgd import LeastSquaresGradient, SGDDivergenceError, SimpleUpdater, run_minibatch_sgd
from sparkgd.ml import SGDLinearRegression, SGDLinearSVC, SGDLogisticRegression
from sparkgd.rdd import LinearRegressionWithSGD, LogisticRegressionWithSGD, SVMWithSGD


def _frame(spark, y, x, sparse=False):
    def vec(row):
        if not sparse:
            return Vectors.dense(row)
        nz = np.flatnonzero(row)
        return Vectors.sparse(len(row), nz.tolist(), row[nz].tolist())

    rows = spark.sparkContext.parallelize([(float(a), vec(r)) for a, r in zip(y, x)], 2)  # rows in a fixed order
    return spark.createDataFrame(rows, ["label", "features"])


@pytest.fixture(scope="module")
def age_income(spark):
    """The issue's data: age ~ 40 +- 10, income ~ 50 +- 15, label = 2 age + income + 10 + noise."""
    rng = np.random.default_rng(0)
    n = 2000
    x = np.column_stack([40 + 10 * rng.standard_normal(n), 50 + 15 * rng.standard_normal(n)])
    y = 2 * x[:, 0] + x[:, 1] + 10 + rng.standard_normal(n)
    return _frame(spark, y, x).cache(), x, y


def test_defaults_on_non_centred_features_match_spark_ml(spark, age_income):
    df, x, y = age_income
    mine = SGDLinearRegression().fit(df)
    ref = LinearRegression().fit(df)
    np.testing.assert_allclose(mine.coefficients.toArray(), ref.coefficients.toArray(), rtol=1e-2)
    assert mine.intercept == pytest.approx(ref.intercept, rel=5e-2)
    assert mine.summary.rootMeanSquaredError <= 1.01 * ref.summary.rootMeanSquaredError
    # one feature x ~ 10 + N(0, 1): the 1e118 coefficients
    rng = np.random.default_rng(1)
    x1 = 10 + rng.standard_normal((1000, 1))
    y1 = 3 * x1[:, 0] + 1 + 0.1 * rng.standard_normal(1000)
    m = SGDLinearRegression().fit(_frame(spark, y1, x1))
    assert m.coefficients[0] == pytest.approx(3.0, rel=1e-2) and abs(m.intercept - 1.0) < 0.2


def _standardized(x, w=None):
    """Spark's weighted mean and unbiased weighted standard deviation."""
    v = np.ones(len(x)) if w is None else w
    mean = v @ x / v.sum()
    var = v @ (x - mean) ** 2 / (v.sum() - (v * v).sum() / v.sum())
    return mean, np.sqrt(var)


@pytest.mark.parametrize("est,labels,kw,sparse", [
    (SGDLinearRegression, "real", dict(regParam=0.1, elasticNetParam=0.5, miniBatchFraction=0.5), False),
    (SGDLinearRegression, "real", dict(loss="huber", epsilon=1.0, miniBatchFraction=0.7, regParam=0.05), True),
    (SGDLogisticRegression, "binary", dict(regParam=0.01, miniBatchFraction=0.6), False),
    (SGDLogisticRegression, "classes", dict(family="multinomial", regParam=0.01), False),
    (SGDLinearSVC, "binary", dict(regParam=0.01, elasticNetParam=1.0), True),
])
def test_virtual_centring_equals_training_on_explicitly_standardized_rows(spark, est, labels, kw, sparse):
    """The oracle: the same estimator without standardization on (x - mean) / std, mapped back."""
    rng = np.random.default_rng(2)
    n, d = 600, 3
    x = rng.standard_normal((n, d)) * [1.0, 3.0, 0.5] + [5.0, -20.0, 2.0]
    if sparse:
        x[rng.random((n, d)) < 0.5] = 0.0
    mean, std = _standardized(x)
    z = (x - mean) / std
    m = z @ [1.0, -2.0, 0.5] + 0.3
    y = {"real": m + 0.1 * rng.standard_normal(n), "binary": (m + rng.standard_normal(n) > 0).astype(float),
         "classes": np.digitize(m + rng.standard_normal(n), [-1.0, 1.0]).astype(float)}[labels]
    common = dict(maxIter=25, stepSize=0.5, tol=0.0, **kw)
    got = est(standardization=True, **common).fit(_frame(spark, y, x, sparse))
    oracle = est(standardization=False, **common).fit(_frame(spark, y, z))
    if kw.get("family") == "multinomial":
        u, c = oracle.coefficientMatrix.toArray(), oracle.interceptVector.toArray()
        coef, b = got.coefficientMatrix.toArray(), got.interceptVector.toArray()
        np.testing.assert_allclose(coef, u / std, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(b, c - (u / std) @ mean, rtol=1e-9, atol=1e-9)
    else:
        u, c = oracle.coefficients.toArray(), oracle.intercept
        np.testing.assert_allclose(got.coefficients.toArray(), u / std, rtol=1e-9)
        assert got.intercept == pytest.approx(c - (u / std) @ mean, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(got.summary.objectiveHistory, oracle.summary.objectiveHistory, rtol=1e-9)


@pytest.fixture(scope="module")
def shifted(spark):
    rng = np.random.default_rng(3)
    x = 10 + rng.standard_normal((400, 1))
    y = (x[:, 0] + rng.standard_normal(400) > 10).astype(float)  # not separable: no huge step can fit it
    return x, y


@pytest.mark.parametrize("est,kw", [(SGDLinearRegression, dict(stepSize=1e12)),
                                    (SGDLogisticRegression, dict(stepSize=1e12, optimizer="momentum")),
                                    (SGDLinearSVC, dict(stepSize=1e12, standardization=False))])
def test_a_huge_step_raises_in_the_dataframe_api(spark, shifted, est, kw):
    x, y = shifted
    with pytest.raises(SGDDivergenceError, match="use a smaller step size"):
        est(maxIter=50, **kw).fit(_frame(spark, y, x))


def test_a_huge_step_raises_in_the_rdd_api_and_the_engine(sc, shifted):
    x, y = shifted
    rdd = sc.parallelize([LabeledPoint(float(a), r.tolist()) for a, r in zip(y, x)], 2)
    for trainer in (LinearRegressionWithSGD, LogisticRegressionWithSGD, SVMWithSGD):
        with pytest.raises(SGDDivergenceError):
            trainer.train(rdd, iterations=50, step=1e12)
    with pytest.raises(SGDDivergenceError, match="grew from"):
        run_minibatch_sgd(rdd, LeastSquaresGradient(), SimpleUpdater(), step_size=1.0, num_iterations=50)


def test_uncentred_features_without_standardization_raise_instead_of_returning_garbage(spark):
    """The issue's x ~ 10 + N(0, 1) at step 1.0: the objective rose 243, 2.4e6, 1.2e10, ... with no error."""
    rng = np.random.default_rng(4)
    x = 10 + rng.standard_normal((500, 1))
    y = 3 * x[:, 0] + 1
    with pytest.raises(SGDDivergenceError, match="at iteration 3: the objective grew"):
        SGDLinearRegression(standardization=False).fit(_frame(spark, y, x))
