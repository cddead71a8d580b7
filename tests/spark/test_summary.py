"""Summaries carry Spark ML's fields with Spark ML's values, on the same predictions (#21.4, #21.7)."""

import numpy as np
import pytest
from pyspark.ml.classification import LinearSVC, LogisticRegression
from pyspark.ml.linalg import Vectors
from pyspark.ml.regression import LinearRegression

from sparkgd.ml import (
    SGDLinearRegression,
    SGDLinearRegressionModel,
    SGDLinearSVCModel,
    SGDLogisticRegression,
    SGDLogisticRegressionModel,
)


@pytest.fixture(scope="module")
def data(spark):
    rng = np.random.default_rng(0)
    n = 400
    x = rng.standard_normal((n, 3))
    y = x @ [1.0, -0.5, 0.2] + 0.3 + 0.5 * rng.standard_normal(n)
    w = rng.uniform(0.5, 2.0, n)
    rows = [(float(a), float(b), Vectors.dense(r), float(v)) for a, b, r, v in zip(y, y > 0.3, x, w)]
    return spark.createDataFrame(rows, ["y", "label", "features", "w"]).cache()


def _rows(df):
    return [tuple(r) for r in df.collect()]


def _same_curve(a, b):
    """Equal rows to rounding: the scores come from the same coefficients, summed in another order."""
    a, b = np.array(_rows(a)), np.array(_rows(b))
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_regression_fields_equal_spark_ml_on_the_same_model(data, fit_intercept):
    ref = LinearRegression(labelCol="y", weightCol="w", fitIntercept=fit_intercept, solver="normal").fit(data)
    mine = SGDLinearRegressionModel(coefficients=ref.coefficients, intercept=ref.intercept)
    mine._set(labelCol="y", weightCol="w", fitIntercept=fit_intercept)
    s, r = mine.evaluate(data), ref.evaluate(data)
    for name in ("r2", "r2adj", "explainedVariance", "meanSquaredError", "meanAbsoluteError", "rootMeanSquaredError"):
        assert getattr(s, name) == pytest.approx(getattr(r, name), rel=1e-12), name
    assert s.numInstances == r.numInstances == 400 and s.degreesOfFreedom == r.degreesOfFreedom
    np.testing.assert_allclose([v for (v,) in _rows(s.residuals)], [v for (v,) in _rows(r.residuals)], rtol=1e-12)


@pytest.mark.parametrize("svm", [False, True])
def test_binary_fields_equal_spark_ml_on_the_same_model(data, svm):
    ref = (LinearSVC(maxIter=20) if svm else LogisticRegression(maxIter=20)).setWeightCol("w").fit(data)
    cls = SGDLinearSVCModel if svm else SGDLogisticRegressionModel
    mine = cls(coefficients=ref.coefficients, intercept=ref.intercept)
    mine._set(weightCol="w")
    s, r = mine.evaluate(data), ref.evaluate(data)
    _same_curve(s.roc, r.roc)
    for curve in ("pr", "fMeasureByThreshold", "precisionByThreshold", "recallByThreshold"):
        _same_curve(getattr(s, curve), getattr(r, curve))
    for name in ("accuracy", "weightedPrecision", "weightedRecall", "weightedTruePositiveRate",
                 "weightedFalsePositiveRate", "areaUnderROC"):
        assert getattr(s, name) == pytest.approx(getattr(r, name), rel=1e-12), name
    assert s.labels == r.labels == [0.0, 1.0] and s.numInstances == 400
    np.testing.assert_allclose(s.fMeasureByLabel(0.5) + s.precisionByLabel,
                               r.fMeasureByLabel(0.5) + r.precisionByLabel, rtol=1e-12)
    assert s.weightedFMeasure() == pytest.approx(r.weightedFMeasure(), rel=1e-12)
    assert mine.transform(data).schema["prediction"].metadata == ref.transform(data).schema["prediction"].metadata


def test_multinomial_summary_has_no_binary_fields(spark, data):
    """areaUnderROC was 0.713 from a binary evaluator over 3 classes; Spark ML's multinomial summary has none."""
    df = data.withColumn("label", (data["y"] > -0.5).cast("double") + (data["y"] > 1.0).cast("double"))
    model = SGDLogisticRegression(maxIter=20).fit(df)
    assert model.numClasses == 3
    s = model.summary
    for name in ("areaUnderROC", "roc", "pr", "fMeasureByThreshold"):
        with pytest.raises(RuntimeError, match="binary models only; this model has 3 classes"):
            getattr(s, name)
    ref = LogisticRegression(maxIter=0).fit(df).evaluate(model.transform(df).drop("prediction", "probability",
                                                                                 "rawPrediction"))
    assert s.labels == ref.labels == [0.0, 1.0, 2.0] and 0.5 < s.accuracy <= 1.0
    assert model.transform(df).schema["prediction"].metadata == {"ml_attr": {"type": "nominal", "num_vals": 3}}


def test_training_summary_is_the_evaluation_on_the_training_data(data):
    model = SGDLinearRegression(labelCol="y", maxIter=20).fit(data)
    s, e = model.summary, model.evaluate(data)
    assert s.r2adj == e.r2adj < s.r2 and s.totalIterations == len(s.objectiveHistory) <= 20
