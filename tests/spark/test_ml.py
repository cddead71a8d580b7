"""The DataFrame API: parity with the RDD API, Spark ML's solutions, pipelines, persistence."""

import os

import numpy as np
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import BinaryClassificationEvaluator, RegressionEvaluator
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.linalg import Vectors
from pyspark.ml.regression import LinearRegression
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

import sparkgd.rdd as sgd_rdd
from sparkgd import SGDDivergenceError
from sparkgd.ml import (
    SGDLinearRegression,
    SGDLinearRegressionModel,
    SGDLinearSVC,
    SGDLogisticRegression,
    SGDLogisticRegressionModel,
)
from tests.spark.data import labeled_points, make_problem, partitioned


def frame(spark, x, y, sparse=False, weights=None):
    pts = labeled_points(x, y, sparse)
    rows = [(p.label, p.features.asML()) + (() if weights is None else (float(w),)) for p, w in
            zip(pts, weights if weights is not None else [None] * len(pts))]
    cols = ["label", "features"] + ([] if weights is None else ["weight"])
    return spark.createDataFrame(partitioned(spark.sparkContext, rows), cols), partitioned(spark.sparkContext, pts)


def rel_diff(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.max(np.abs(a - b)) / np.max(np.abs(a))


@pytest.mark.parametrize("est,trainer,kw,rdd_kw,kind,sparse", [
    (SGDLinearRegression, "RidgeRegressionWithSGD", dict(regParam=0.05, fitIntercept=False, miniBatchFraction=0.4),
     dict(regParam=0.05, intercept=False, miniBatchFraction=0.4), "regression", False),
    (SGDLinearRegression, "LinearRegressionWithSGD", dict(regParam=0.0, fitIntercept=True, miniBatchFraction=0.1),
     dict(intercept=True, miniBatchFraction=0.1), "regression", True),
    (SGDLogisticRegression, "LogisticRegressionWithSGD", dict(regParam=0.01, fitIntercept=False),
     dict(regParam=0.01, regType="l2", intercept=False), "classification", False),
    (SGDLinearSVC, "SVMWithSGD", dict(regParam=0.02, elasticNetParam=1.0, fitIntercept=False, miniBatchFraction=0.5),
     dict(regParam=0.02, regType="l1", intercept=False, miniBatchFraction=0.5), "classification", True),
])
def test_equals_the_rdd_api_on_the_same_rows(spark, est, trainer, kw, rdd_kw, kind, sparse):
    x, y = make_problem(kind)
    df, rdd = frame(spark, x, y, sparse)
    model = est(maxIter=20, stepSize=0.5, tol=0.0, standardization=False, **kw).fit(df)
    ref = getattr(sgd_rdd, trainer).train(rdd, iterations=20, step=0.5, convergenceTol=0.0, **rdd_kw)
    assert rel_diff(np.append(ref.weights.toArray(), ref.intercept),
                    np.append(model.coefficients.toArray(), model.intercept)) <= 1e-9
    assert model.summary.objectiveHistory == pytest.approx(ref.lossHistory, rel=1e-9)
    assert model.summary.totalIterations == ref.numIterations == 20


def test_batch_converges_to_spark_ml_linear_regression(spark):
    x, y = make_problem("regression")
    df, _ = frame(spark, x, y)
    ours = SGDLinearRegression(maxIter=100, stepSize=1.0, tol=1e-10).fit(df)
    ref = LinearRegression(regParam=0.0, solver="normal").fit(df)
    np.testing.assert_allclose(ours.coefficients.toArray(), ref.coefficients.toArray(), atol=1e-4)
    assert ours.intercept == pytest.approx(ref.intercept, abs=1e-4)
    # and the closed form, ridge with an unpenalized intercept
    lam = 0.1
    ridge = SGDLinearRegression(maxIter=100, stepSize=1.0, tol=1e-10, regParam=lam, standardization=False).fit(df)
    a = np.hstack([x, np.ones((len(y), 1))])
    pen = np.diag([lam] * x.shape[1] + [0.0])
    closed = np.linalg.solve(a.T @ a / len(y) + pen, a.T @ y / len(y))
    np.testing.assert_allclose(np.append(ridge.coefficients.toArray(), ridge.intercept), closed, atol=1e-4)
    lstsq = np.linalg.lstsq(a, y, rcond=None)[0]
    np.testing.assert_allclose(np.append(ours.coefficients.toArray(), ours.intercept), lstsq, atol=1e-4)


def test_batch_converges_to_spark_ml_logistic_regression(spark):
    x, y = make_problem("classification")
    df, _ = frame(spark, x, y)
    ours = SGDLogisticRegression(maxIter=150, stepSize=20.0, tol=1e-9, regParam=0.01).fit(df)
    ref = LogisticRegression(regParam=0.01, elasticNetParam=0.0, tol=1e-12, maxIter=500).fit(df)
    np.testing.assert_allclose(ours.coefficients.toArray(), ref.coefficients.toArray(), atol=1e-4)
    assert ours.intercept == pytest.approx(ref.intercept, abs=1e-4)


def test_standardization_converges_where_raw_features_do_not(spark):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(500, 2)) * [1.0, 1000.0]
    w = np.array([1.5, 0.002])
    y = x @ w + 0.3
    df = spark.createDataFrame([(float(a), Vectors.dense(b)) for a, b in zip(y, x)], ["label", "features"])
    df = df.repartition(2)
    good = SGDLinearRegression(maxIter=60, stepSize=1.0, tol=1e-12).fit(df)
    np.testing.assert_allclose(good.coefficients.toArray(), w, rtol=1e-3)
    with pytest.raises(SGDDivergenceError, match="standardiz"):
        SGDLinearRegression(maxIter=60, stepSize=1.0, standardization=False).fit(df)
    stalled = SGDLinearRegression(maxIter=60, stepSize=1e-6, standardization=False).fit(df)
    assert abs(stalled.coefficients[0] - w[0]) > 0.5  # the small feature barely moves


def test_row_weights_equal_repeated_rows_in_batch_mode(spark):
    x, y = make_problem("regression", n=60)
    reps = np.arange(60) % 3 + 1
    weighted = spark.createDataFrame([(float(a), Vectors.dense(b), float(r)) for a, b, r in zip(y, x, reps)],
                                     ["label", "features", "weight"]).coalesce(1)
    repeated = spark.createDataFrame([(float(a), Vectors.dense(b)) for a, b, r in zip(y, x, reps) for _ in range(r)],
                                     ["label", "features"]).coalesce(1)
    # standardization off: Spark's weighted std treats weights as reliabilities, not counts
    kw = dict(maxIter=10, stepSize=0.5, tol=0.0, regParam=0.1, standardization=False)
    a = SGDLinearRegression(weightCol="weight", **kw).fit(weighted)
    b = SGDLinearRegression(**kw).fit(repeated)
    assert rel_diff(np.append(b.coefficients.toArray(), b.intercept),
                    np.append(a.coefficients.toArray(), a.intercept)) < 1e-9


def test_summary_and_evaluate_agree_with_spark_evaluators(spark):
    x, y = make_problem("regression")
    df, _ = frame(spark, x, y)
    model = SGDLinearRegression(maxIter=20).fit(df)
    pred = model.transform(df)
    for name, value in [("rmse", model.summary.rootMeanSquaredError), ("r2", model.summary.r2),
                        ("mae", model.summary.meanAbsoluteError)]:
        assert value == pytest.approx(RegressionEvaluator(metricName=name).evaluate(pred), rel=1e-9)
    assert model.evaluate(df.limit(100)).r2 == pytest.approx(
        RegressionEvaluator(metricName="r2").evaluate(model.transform(df.limit(100))), rel=1e-9)
    xc, yc = make_problem("classification")
    dfc, _ = frame(spark, xc, yc)
    clf = SGDLogisticRegression(maxIter=20).fit(dfc)
    predc = clf.transform(dfc)
    assert clf.summary.areaUnderROC == pytest.approx(BinaryClassificationEvaluator().evaluate(predc), rel=1e-12)
    acc = predc.filter("prediction = label").count() / predc.count()
    assert clf.summary.accuracy == pytest.approx(acc) and acc > 0.85
    assert clf.summary.totalIterations == len(clf.summary.objectiveHistory)
    assert clf.predict(Vectors.dense(xc[0])) == predc.first().prediction


@pytest.mark.parametrize("est", [SGDLinearRegression, SGDLogisticRegression, SGDLinearSVC])
def test_pipeline_in_cross_validator(spark, est):
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=120), rng.normal(size=120)
    label = 2 * a - b + 0.1 * rng.normal(size=120)
    if est is not SGDLinearRegression:
        label = (label > 0).astype(float)
    df = spark.createDataFrame([(float(p), float(q), float(r)) for p, q, r in zip(a, b, label)],
                               ["a", "b", "label"]).repartition(2)
    stage = est(maxIter=3)
    pipe = Pipeline(stages=[VectorAssembler(inputCols=["a", "b"], outputCol="features"), stage])
    grid = (ParamGridBuilder().addGrid(stage.stepSize, [0.5, 1.0]).addGrid(stage.regParam, [0.0, 0.1])
            .addGrid(stage.miniBatchFraction, [0.5, 1.0]).build())
    evaluator = RegressionEvaluator() if est is SGDLinearRegression else BinaryClassificationEvaluator()
    cv = CrossValidator(estimator=pipe, estimatorParamMaps=grid, evaluator=evaluator, numFolds=2, seed=1,
                        parallelism=2)
    cv_model = cv.fit(df)
    assert len(cv_model.avgMetrics) == 8
    best = cv_model.bestModel.stages[-1]
    assert isinstance(best, stage._model_class)
    quality = evaluator.evaluate(cv_model.transform(df))
    if est is SGDLinearRegression:  # RMSE: well below the label's spread (predicting the mean)
        assert quality < 0.5 * float(np.std(label)), (quality, np.std(label))
    else:  # area under ROC
        assert quality > 0.95


def _no_pickles(root):
    for dirpath, _, files in os.walk(root):
        for f in files:
            data = open(os.path.join(dirpath, f), "rb").read()
            assert not data.startswith(b"\x80"), f"{f} is a pickle"


def test_save_load_round_trip_alone_and_in_a_pipeline(spark, tmp_path):
    x, y = make_problem("classification")
    df, _ = frame(spark, x, y)
    model = SGDLogisticRegression(maxIter=10, threshold=0.4, regParam=0.01).fit(df)
    path = str(tmp_path / "lr")
    model.save(path)
    back = SGDLogisticRegressionModel.load(path)
    assert back.coefficients == model.coefficients and back.intercept == model.intercept
    assert back.getThreshold() == 0.4 and back.getRegParam() == 0.01 and back.uid == model.uid
    assert back.transform(df).collect() == model.transform(df).collect()
    with pytest.raises(FileExistsError):
        model.save(path)
    model.write().overwrite().save(path)

    raw = spark.createDataFrame([(float(v[0]), float(v[1]), float(t)) for v, t in zip(x, y)], ["a", "b", "label"])
    pipe = Pipeline(stages=[VectorAssembler(inputCols=["a", "b"], outputCol="features"),
                            SGDLinearRegression(maxIter=5)]).fit(raw)
    ppath = str(tmp_path / "pipe")
    pipe.save(ppath)
    loaded = PipelineModel.load(ppath)
    assert isinstance(loaded.stages[-1], SGDLinearRegressionModel)
    assert loaded.transform(raw).collect() == pipe.transform(raw).collect()
    assert loaded.stages[-1].getMaxIter() == 5
    _no_pickles(tmp_path)


@pytest.mark.parametrize("mutate,message", [
    (lambda df: df.withColumnRenamed("features", "f"), "featuresCol column 'features' is not in the DataFrame"),
    (lambda df: df.withColumn("features", df.label), "featuresCol column 'features' must be a vector"),
    (lambda df: df.withColumn("label", df.label.cast("string")), "labelCol column 'label' must be numeric"),
    (lambda df: df.withColumn("label", __import__("pyspark.sql.functions").sql.functions.when(
        df.label > 0.5, None).otherwise(df.label)), "column 'label' is null"),
])
def test_bad_frames_are_refused_naming_the_column(spark, mutate, message):
    x, y = make_problem("regression", n=40)
    df, _ = frame(spark, x, y)
    with pytest.raises(ValueError, match=message):
        SGDLinearRegression(maxIter=2).fit(mutate(df))


def test_nan_features_labels_and_negative_weights(spark):
    rows = [(1.0, Vectors.dense([1.0, 2.0]), 1.0), (0.0, Vectors.dense([float("nan"), 2.0]), 1.0)]
    df = spark.createDataFrame(rows, ["y", "x", "w"]).coalesce(1)
    with pytest.raises(ValueError, match="row 1: NaN or infinite value in column 'x'"):
        SGDLinearRegression(labelCol="y", featuresCol="x").fit(df)
    labels = spark.createDataFrame([(2.0, Vectors.dense([1.0])), (0.0, Vectors.dense([1.0]))], ["label", "features"])
    with pytest.raises(ValueError, match=r"found 1 invalid labels in column 'label', values \[2.0\]"):
        SGDLogisticRegression(family="binomial").fit(labels)
    neg = spark.createDataFrame([(1.0, Vectors.dense([1.0]), -1.0)], ["label", "features", "w"])
    with pytest.raises(ValueError, match="column 'w' has 1 negative weights"):
        SGDLinearRegression(weightCol="w").fit(neg)
    zero = spark.createDataFrame([(1.0, Vectors.dense([1.0]), 0.0), (2.0, Vectors.dense([3.0]), 0.0)],
                                 ["label", "features", "w"])
    with pytest.raises(ValueError, match="column 'w' is 0 for all 2 rows"):
        SGDLinearRegression(weightCol="w").fit(zero)
    nulls = spark.createDataFrame([(1.0, Vectors.dense([1.0])), (1.0, None)], ["label", "features"]).coalesce(1)
    with pytest.raises(ValueError, match="row 1: column 'features' is null"):
        SGDLinearRegression().fit(nulls)


@pytest.mark.parametrize("param,value", [("maxIter", -1), ("stepSize", 0.0), ("miniBatchFraction", 0.0),
                                         ("miniBatchFraction", 1.5), ("regParam", -1.0), ("elasticNetParam", 2.0),
                                         ("tol", -0.1), ("aggregationDepth", 0), ("threshold", 1.5)])
def test_params_out_of_range_are_named_before_any_job(spark, param, value):
    poisoned = spark.createDataFrame([(1.0, Vectors.dense([1.0]))], ["label", "features"])
    est = SGDLogisticRegression()
    est._set(**{param: value})
    with pytest.raises(ValueError, match=f"param {param} must be"):
        est.fit(poisoned)


def test_mini_batches_of_zero_weight_rows_are_skipped(spark):
    rng = np.random.default_rng(4)
    x = rng.normal(size=40)
    rows = [(float(2 * v), Vectors.dense([float(v)]), 1.0 if i == 0 else 0.0) for i, v in enumerate(x)]
    df = spark.createDataFrame(rows, ["label", "features", "w"]).coalesce(1)
    model = SGDLinearRegression(weightCol="w", maxIter=30, miniBatchFraction=0.1, tol=0.0, fitIntercept=False,
                                standardization=False, stepSize=0.5).fit(df)
    updates = model.summary.totalIterations
    history = model.summary.objectiveHistory
    # only the mini-batches holding row 0 count: fewer updates than iterations, every one finite
    assert 0 < len(history) < 30 == updates and np.isfinite(history).all()
    assert np.isfinite(model.coefficients.toArray()).all()


def test_models_save_and_load_through_file_uris_alone_and_in_a_pipeline(spark, tmp_path):
    x, y = make_problem("classification")
    df, _ = frame(spark, x, y)
    model = SGDLogisticRegression(maxIter=5).fit(df)
    for uri in (f"file://localhost{tmp_path}/lr1", f"file://{tmp_path}/lr2", f"file:{tmp_path}/lr3"):
        model.save(uri)
        back = SGDLogisticRegressionModel.load(uri)
        assert back.coefficients == model.coefficients
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr1", "lr2", "lr3"]  # nothing under ./localhost
    raw = spark.createDataFrame([(float(v[0]), float(v[1]), float(t)) for v, t in zip(x, y)], ["a", "b", "label"])
    pipe = Pipeline(stages=[VectorAssembler(inputCols=["a", "b"], outputCol="features"),
                            SGDLinearRegression(maxIter=3)]).fit(raw)
    uri = f"file://{tmp_path}/pipe"  # (Spark's own Pipeline reader refuses file://localhost)
    pipe.save(uri)
    loaded = PipelineModel.load(uri)
    assert loaded.stages[-1].coefficients == pipe.stages[-1].coefficients


def test_a_model_written_through_hadoop_lands_by_rename(spark, tmp_path):
    # what save does for hdfs://, s3a://, ... exercised through Hadoop's FileSystem with a file: URI
    from sparkgd.engine import fs

    x, y = make_problem("classification")
    df, _ = frame(spark, x, y)
    model = SGDLogisticRegression(maxIter=3).fit(df)
    uri = (tmp_path / "hadoop" / "lr").as_uri()
    fs.publish_uri(spark.sparkContext, model.write().saveImpl, uri, overwrite=False)
    assert SGDLogisticRegressionModel.load(uri).coefficients == model.coefficients
    with pytest.raises(FileExistsError):
        fs.publish_uri(spark.sparkContext, model.write().saveImpl, uri, overwrite=False)
    fs.publish_uri(spark.sparkContext, model.write().saveImpl, uri, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "hadoop").iterdir()) == ["lr"]  # no temporary sibling left


def test_relative_paths_save_and_load_alone_and_in_a_pipeline(spark, tmp_path):
    x, y = make_problem("classification")
    raw = spark.createDataFrame([(float(v[0]), float(v[1]), float(t)) for v, t in zip(x, y)], ["a", "b", "label"])
    pipe = Pipeline(stages=[VectorAssembler(inputCols=["a", "b"], outputCol="features"),
                            SGDLogisticRegression(maxIter=3)]).fit(raw)
    rel = os.path.relpath(tmp_path / "rel")
    assert not os.path.isabs(rel)
    pipe.save(os.path.join(rel, "pipe"))
    pipe.stages[-1].save(os.path.join(rel, "lr"))
    assert PipelineModel.load(os.path.join(rel, "pipe")).stages[-1].coefficients == pipe.stages[-1].coefficients
    assert SGDLogisticRegressionModel.load(os.path.join(rel, "lr")).coefficients == pipe.stages[-1].coefficients
