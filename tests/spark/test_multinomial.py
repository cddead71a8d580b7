"""Multinomial logistic regression (SGDLogisticRegression(family=...)) and one-vs-rest SVMs."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression, OneVsRest, OneVsRestModel
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.feature import StringIndexer, VectorAssembler
from pyspark.ml.linalg import Vectors
from pyspark.sql import functions as F

from sparkgd.ml import SGDLinearSVC, SGDLogisticRegression, SGDLogisticRegressionModel
from tests.spark.data import partitioned


def classes(n=600, d=4, k=3, seed=0, scale=None):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * (scale if scale is not None else 1.0)
    b = rng.normal(size=(k, d)) * 1.5
    m = x @ (b / (scale if scale is not None else 1.0)).T
    p = np.exp(m - m.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(k, p=pi) for pi in p], dtype=float)
    return x, y


def frame(spark, x, y):
    rows = [(float(y[i]), Vectors.dense(x[i])) for i in range(len(y))]
    return spark.createDataFrame(partitioned(spark.sparkContext, rows), ["label", "features"])


def objective(x, y, matrix, intercepts, reg=0.0):
    """Mean softmax cross-entropy + reg/2 ||B diag(std)||^2: Spark ML's objective with standardization."""
    m = x @ matrix.T + intercepts
    top = m.max(axis=1, keepdims=True)
    lse = np.log(np.exp(m - top).sum(axis=1)) + top[:, 0]
    std = x.std(axis=0, ddof=1)
    return float(np.mean(lse - m[np.arange(len(y)), y.astype(int)])) + 0.5 * reg * float(np.sum((matrix * std) ** 2))


def spark_ml(df, reg):
    return LogisticRegression(family="multinomial", regParam=reg, tol=1e-12, maxIter=1000).fit(df)


@pytest.mark.parametrize("reg", [0.0, 0.02])
def test_batch_reaches_spark_ml_multinomial_objective(spark, reg):
    x, y = classes(scale=np.array([1.0, 10.0, 0.1, 3.0]))
    df = frame(spark, x, y)
    ml = spark_ml(df, reg)
    want = objective(x, y, ml.coefficientMatrix.toArray(), ml.interceptVector.toArray(), reg)
    model = SGDLogisticRegression(family="multinomial", optimizer="lbfgs", maxIter=500, tol=0.0, regParam=reg).fit(df)
    assert model.numClasses == 3 and model.coefficientMatrix.numRows == 3 and model.numFeatures == 4
    got = objective(x, y, model.coefficientMatrix.toArray(), model.interceptVector.toArray(), reg)
    assert abs(got - want) <= 1e-4 * abs(want)
    # the same representative as Spark ML: intercepts centered, coefficients centered when unregularized
    assert abs(model.interceptVector.toArray().sum()) < 1e-12
    np.testing.assert_allclose(model.coefficientMatrix.toArray(), ml.coefficientMatrix.toArray(), atol=2e-3)
    np.testing.assert_allclose(model.interceptVector.toArray(), ml.interceptVector.toArray(), atol=2e-3)
    got_p = np.array([r.probability.toArray() for r in model.transform(df).collect()])
    want_p = np.array([r.probability.toArray() for r in ml.transform(df).collect()])
    np.testing.assert_allclose(got_p, want_p, atol=1e-3)


def test_mini_batch_sgd_and_adam_get_close_to_the_optimum(spark):
    x, y = classes(seed=1)
    df = frame(spark, x, y)
    ml = spark_ml(df, 0.0)
    best = objective(x, y, ml.coefficientMatrix.toArray(), ml.interceptVector.toArray())
    for params in (dict(stepSize=2.0, miniBatchFraction=0.5, maxIter=300),
                   dict(optimizer="adam", stepSize=0.05, stepSchedule="constant", maxIter=300)):
        model = SGDLogisticRegression(family="multinomial", tol=0.0, **params).fit(df)
        got = objective(x, y, model.coefficientMatrix.toArray(), model.interceptVector.toArray())
        assert got - best < 2e-3 * best, params


def test_family_auto_follows_the_number_of_classes(spark):
    x, y = classes(n=200, seed=2)
    three = SGDLogisticRegression(maxIter=5).fit(frame(spark, x, y))
    assert three.numClasses == 3 and three.isMultinomial and three.getFamily() == "auto"
    with pytest.raises(RuntimeError, match="use coefficientMatrix"):
        _ = three.coefficients
    binary = frame(spark, x, (y == 1).astype(float))
    two = SGDLogisticRegression(maxIter=5).fit(binary)
    assert two.numClasses == 2 and not two.isMultinomial
    # auto on two classes is the binomial model, its intercept the margin of a zero row, in every accessor
    binomial = SGDLogisticRegression(family="binomial", maxIter=5).fit(binary)
    assert two.coefficientMatrix.toArray().shape == (1, 4)
    np.testing.assert_array_equal(two.coefficientMatrix.toArray()[0], binomial.coefficients.toArray())
    assert two.intercept == binomial.intercept != 0.0
    assert two.interceptVector.toArray().tolist() == [binomial.intercept]
    assert two.predictRaw(Vectors.dense([0.0] * 4))[1] == binomial.intercept
    forced = SGDLogisticRegression(family="multinomial", maxIter=5).fit(binary)
    assert forced.isMultinomial and forced.numClasses == 2 and forced.coefficientMatrix.numRows == 2
    with pytest.raises(ValueError, match=r"classification labels must be 0 or 1: found \d+ invalid labels"):
        SGDLogisticRegression(family="binomial").fit(frame(spark, x, y))
    with pytest.raises(ValueError, match="param family must be one of auto, binomial, multinomial"):
        SGDLogisticRegression(family="ovr").fit(binary)


def test_bad_class_labels_are_named(spark):
    x, y = classes(n=40, seed=3)
    for bad, value in ((-1.0, "-1.0"), (1.5, "1.5")):
        z = y.copy()
        z[7] = bad
        with pytest.raises(ValueError, match=rf"class labels must be integers 0, 1, 2, ...: found 1 invalid labels in "
                                             rf"column 'label', values \[{value}\]"):
            SGDLogisticRegression(family="multinomial").fit(frame(spark, x, z))
    declared = frame(spark, x, y).withColumn(
        "label", F.col("label").alias("label", metadata={"ml_attr": {"type": "nominal", "vals": ["a", "b"]}}))
    with pytest.raises(ValueError, match=r"found class label 2 in column 'label', but numClasses is 2 "
                                         r"\(labels must be 0 .. 1\)"):
        SGDLogisticRegression().fit(declared)


def test_declared_classes_count_even_when_the_data_lacks_some(spark):
    x, y = classes(n=60, seed=4, k=2)
    df = frame(spark, x, y).withColumn(
        "label", F.col("label").alias("label", metadata={"ml_attr": {"type": "nominal", "vals": ["a", "b", "c"]}}))
    model = SGDLogisticRegression(maxIter=3).fit(df)
    assert model.numClasses == 3 and model.transform(df).first().probability.size == 3


def test_pipeline_with_string_indexer_trains_saves_loads_and_predicts(spark, tmp_path):
    x, y = classes(n=300, seed=5)
    names = np.array(["setosa", "versicolor", "virginica"])
    rows = [(str(names[int(y[i])]), *map(float, x[i])) for i in range(len(y))]
    df = spark.createDataFrame(partitioned(spark.sparkContext, rows), ["species", "a", "b", "c", "d"])
    pipe = Pipeline(stages=[StringIndexer(inputCol="species", outputCol="label"),
                            VectorAssembler(inputCols=["a", "b", "c", "d"], outputCol="features"),
                            SGDLogisticRegression(family="multinomial", optimizer="lbfgs", maxIter=100)])
    model = pipe.fit(df)
    pred = model.transform(df)
    accuracy = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(pred)
    assert accuracy > 0.75
    logloss = MulticlassClassificationEvaluator(metricName="logLoss").evaluate(pred)
    assert 0 < logloss < 0.7
    model.write().save(str(tmp_path / "p"))
    loaded = PipelineModel.load(str(tmp_path / "p"))
    again = loaded.transform(df).select("probability", "prediction", "rawPrediction").collect()
    first = pred.select("probability", "prediction", "rawPrediction").collect()
    assert again == first
    lr = loaded.stages[-1]
    assert isinstance(lr, SGDLogisticRegressionModel) and lr.numClasses == 3
    np.testing.assert_array_equal(lr.coefficientMatrix.toArray(), model.stages[-1].coefficientMatrix.toArray())
    assert lr.getFamily() == "multinomial"
    v = Vectors.dense(x[0])
    assert lr.predict(v) == float(np.argmax(lr.predictProbability(v).toArray())) == first[0].prediction


def test_one_vs_rest_with_linear_svms(spark, tmp_path):
    x, y = classes(n=300, seed=6)
    df = frame(spark, x, y)
    svc = SGDLinearSVC(maxIter=60, regParam=0.01)
    ovr = OneVsRest(classifier=svc).fit(df)
    assert len(ovr.models) == 3
    for k, sub in enumerate(ovr.models):  # each is the SVM of "class k or not", trained on the same rows
        alone = svc.fit(df.withColumn("label", (F.col("label") == k).cast("double")))
        assert sub.coefficients.toArray().tobytes() == alone.coefficients.toArray().tobytes()
    pred = ovr.transform(df)
    assert MulticlassClassificationEvaluator(metricName="accuracy").evaluate(pred) > 0.7
    margins = np.array([[m.predictRaw(Vectors.dense(r)).toArray()[1] for m in ovr.models] for r in x[:20]])
    assert [r.prediction for r in pred.limit(20).collect()] == list(np.argmax(margins, axis=1).astype(float))
    ovr.write().save(str(tmp_path / "ovr"))  # the estimator's params save too (DefaultParamsWritable)
    loaded = OneVsRestModel.load(str(tmp_path / "ovr"))
    assert loaded.transform(df).select("prediction").collect() == pred.select("prediction").collect()
    assert loaded.getClassifier().getRegParam() == 0.01 and loaded.getClassifier().getMaxIter() == 60
    est = SGDLogisticRegression(family="multinomial", optimizer="adam", maxIter=7)
    est.save(str(tmp_path / "est"))
    again = SGDLogisticRegression.load(str(tmp_path / "est"))
    assert (again.getFamily(), again.getOptimizer(), again.getMaxIter()) == ("multinomial", "adam", 7)


def test_the_job_trains_multinomial_models(spark, tmp_path):
    import json

    from tests.spark.test_job import load_job

    job = load_job("train_linear")
    out = tmp_path / "out"
    argv = ["--loss", "multinomial", "--api", "dataframe", "--optimizer", "lbfgs", "--mini-batch-fraction", "1.0",
            "--iterations", "100", "--rows", "4000", "--features", "4", "--output", str(out), "--convergence-tol", "0"]
    assert job.main(argv, spark=spark) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert np.asarray(m["weights"]).shape == (3, 4) and len(m["intercept"]) == 3
    assert m["test"]["accuracy"] > 0.6 and m["test"]["log_loss"] < m["train"]["log_loss"] * 1.3
    assert m["weight_error_max"] < 0.3  # centered matrices: the drawn model is found
    model = SGDLogisticRegressionModel.load(str(out / "model"))
    np.testing.assert_array_equal(model.coefficientMatrix.toArray(), m["weights"])
    assert job.main(argv[:-4] + ["--num-classes", "5", "--output", str(tmp_path / "k5")], spark=spark) == 0
    assert SGDLogisticRegressionModel.load(str(tmp_path / "k5" / "model")).numClasses == 5


@pytest.mark.parametrize("content,extra,message", [
    ("0 1:0.5\n2 1:-0.5\n3 1:0.1\n", ["--num-classes", "3"], "d.libsvm:3: label 3 is not a class index 0 .. 2 "
                                                              "(--num-classes 3)"),
    ("0 1:0.5\n-1 1:-0.5\n", [], "d.libsvm:2: label -1 is not a class index 0, 1, 2, ..."),
    ("0 1:0.5\n1.5 1:-0.5\n", [], "d.libsvm:2: label 1.5 is not a class index 0, 1, 2, ..."),
])
def test_the_jobs_bad_class_labels_name_file_and_line(spark, tmp_path, capsys, content, extra, message):
    from tests.spark.test_job import load_job

    f = tmp_path / "d.libsvm"
    f.write_text(content)
    argv = ["--input", str(f), "--loss", "multinomial", "--api", "dataframe", "--iterations", "2", *extra]
    assert load_job("train_linear").main(argv, spark=spark) == 3
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("argv,message", [
    (["--loss", "multinomial"], "--loss multinomial needs --api dataframe"),
    (["--loss", "logistic", "--num-classes", "3", "--api", "dataframe"], "--num-classes applies to --loss multinomial"),
    (["--loss", "multinomial", "--num-classes", "1", "--api", "dataframe"], "--num-classes must be >= 2"),
])
def test_the_jobs_multinomial_options_are_checked(spark, capsys, argv, message):
    from tests.spark.test_job import load_job

    assert load_job("train_linear").main(argv, spark=spark) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_the_engine_function_trains_the_multinomial_loss_on_an_rdd(spark):
    from pyspark.mllib.regression import LabeledPoint

    from sparkgd import SimpleUpdater, run_minibatch_sgd
    from sparkgd.core.gradients import MultinomialGradient
    from sparkgd.core.lbfgs import LBFGS

    x, y = classes(n=300, seed=7)
    rdd = partitioned(spark.sparkContext, [LabeledPoint(float(y[i]), x[i]) for i in range(len(y))])
    result = run_minibatch_sgd(rdd, MultinomialGradient(3), SimpleUpdater(), num_iterations=200, optimizer=LBFGS(),
                               convergence_tol=0.0)
    matrix = result.weights.reshape(3, 4)
    ml = LogisticRegression(family="multinomial", fitIntercept=False, standardization=False, tol=1e-12,
                            maxIter=1000).fit(frame(spark, x, y))
    want = objective(x, y, ml.coefficientMatrix.toArray(), np.zeros(3))
    assert abs(objective(x, y, matrix, np.zeros(3)) - want) <= 1e-8 * want
    with pytest.raises(ValueError, match="initial_weights has 4 entries but the data has 12 features"):
        run_minibatch_sgd(rdd, MultinomialGradient(3), SimpleUpdater(), initial_weights=np.zeros(4))
