"""sparkgd.streaming against pyspark.mllib's streaming trainers on the same queueStream batches."""

from __future__ import annotations

import time

import numpy as np
import pytest

from sparkgd import streaming


def _batches(seed, sizes, d=3, logistic=False):
    from pyspark.mllib.regression import LabeledPoint

    rng = np.random.default_rng(seed)
    w = rng.uniform(-1, 1, d)
    out = []
    for n in sizes:
        x = rng.standard_normal((n, d))
        y = x @ w + 0.1 * rng.standard_normal(n)
        if logistic:
            y = (rng.random(n) < 1 / (1 + np.exp(-2 * y))).astype(float)
        out.append([LabeledPoint(float(y[i]), x[i]) for i in range(n)])
    return out


def _recorder(history, trainer):
    def record(time, rdd):  # (time, rdd): pyspark passes the batch time to two-argument functions
        model = trainer.latestModel()
        history.append((model.weights.toArray().copy(), model.intercept))
    return record


def _stream(sc, trainers, batches, timeout=60.0):
    """Train each trainer on its own queueStream of ``batches``; the (weights, intercept) after each batch."""
    from pyspark.streaming import StreamingContext

    ssc = StreamingContext(sc, 0.5)
    history = {name: [] for name in trainers}
    for name, trainer in trainers.items():
        stream = ssc.queueStream([sc.parallelize(b, 2) for b in batches], oneAtATime=True)
        trainer.trainOn(stream)
        stream.foreachRDD(_recorder(history[name], trainer))
    ssc.start()
    try:
        deadline = time.monotonic() + timeout
        while min(len(h) for h in history.values()) < len(batches):
            assert time.monotonic() < deadline, f"only {history and min(map(len, history.values()))} batches ran"
            time.sleep(0.1)
    finally:
        ssc.stop(stopSparkContext=False, stopGraceFully=False)
    return {name: h[:len(batches)] for name, h in history.items()}


def test_linear_regression_weights_after_each_batch_are_mllibs(sc):
    from pyspark.mllib.regression import StreamingLinearRegressionWithSGD

    batches = _batches(1, [40, 0, 25, 60])  # an empty batch leaves the model as it is
    kw = dict(stepSize=0.2, numIterations=8, miniBatchFraction=0.6, convergenceTol=0.0)
    got = _stream(sc, {"mllib": StreamingLinearRegressionWithSGD(**kw).setInitialWeights([0.5, 0.0, -0.5]),
                       "sparkgd": streaming.StreamingLinearRegressionWithSGD(**kw).setInitialWeights([0.5, 0.0, -0.5])},
                  batches)
    moved = [float(np.abs(w - got["mllib"][i - 1][0]).max()) for i, (w, _) in enumerate(got["mllib"]) if i]
    assert moved[0] == 0.0 and moved[1] > 0 and moved[2] > 0  # the empty batch did nothing, the others did
    for (w_ml, b_ml), (w, b) in zip(got["mllib"], got["sparkgd"]):
        np.testing.assert_allclose(w, w_ml, rtol=0, atol=1e-9)
        assert b == b_ml == 0.0  # MLlib trains with intercept=bool(0.0): never an intercept


def test_logistic_regression_weights_after_each_batch_are_mllibs(sc):
    from pyspark.mllib.classification import StreamingLogisticRegressionWithSGD

    batches = _batches(2, [50, 30, 70], logistic=True)
    kw = dict(stepSize=0.5, numIterations=6, miniBatchFraction=1.0, regParam=0.1, convergenceTol=0.001)
    got = _stream(sc, {"mllib": StreamingLogisticRegressionWithSGD(**kw).setInitialWeights([0.0, 0.0, 0.0]),
                       "sparkgd": streaming.StreamingLogisticRegressionWithSGD(**kw).setInitialWeights([0.0] * 3)},
                  batches)
    assert np.abs(got["mllib"][-1][0]).max() > 0.05
    for (w_ml, _), (w, _) in zip(got["mllib"], got["sparkgd"]):
        np.testing.assert_allclose(w, w_ml, rtol=0, atol=1e-9)


def test_predictions_on_streams_follow_the_latest_model(sc):
    from pyspark.mllib.linalg import Vectors
    from pyspark.streaming import StreamingContext

    trainer = streaming.StreamingLogisticRegressionWithSGD().setInitialWeights([1.0, -2.0])
    points = [Vectors.dense([1.0, 0.0]), Vectors.dense([0.0, 1.0]), Vectors.sparse(2, [0], [3.0])]
    ssc = StreamingContext(sc, 0.5)
    seen, keyed = [], []
    trainer.predictOn(ssc.queueStream([sc.parallelize(points, 2)])).foreachRDD(lambda r: seen.append(r.collect()))
    trainer.predictOnValues(ssc.queueStream([sc.parallelize(list(enumerate(points)), 2)])).foreachRDD(
        lambda r: keyed.append(r.collect()))
    ssc.start()
    try:
        deadline = time.monotonic() + 60
        while not (seen and keyed):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        ssc.stop(stopSparkContext=False, stopGraceFully=False)
    assert seen[0] == [1, 0, 1]  # margins 1, -2, 3 against the threshold 0.5 on the probability
    assert sorted(keyed[0]) == [(0, 1), (1, 0), (2, 1)]
    trainer.latestModel().clearThreshold()
    assert trainer.latestModel().predict(points[1]) == pytest.approx(1 / (1 + np.exp(2.0)))


def test_initial_weights_are_required_as_mllib_requires_them(sc):
    from pyspark.streaming import StreamingContext

    ssc = StreamingContext(sc, 1)
    stream = ssc.queueStream([sc.parallelize([1.0])])
    for cls in (streaming.StreamingLinearRegressionWithSGD, streaming.StreamingLogisticRegressionWithSGD):
        with pytest.raises(ValueError, match="Model must be initialized using setInitialWeights"):
            cls().trainOn(stream)
        with pytest.raises(ValueError, match="Model must be initialized using setInitialWeights"):
            cls().predictOn(stream)
        with pytest.raises(TypeError, match="dstream should be a DStream object"):
            cls().setInitialWeights([0.0]).trainOn(sc.parallelize([1.0]))
    assert streaming.StreamingLinearRegressionWithSGD().latestModel() is None
    ssc.stop(stopSparkContext=False)


def test_defaults_are_mllibs():
    import inspect

    from pyspark.mllib.classification import StreamingLogisticRegressionWithSGD
    from pyspark.mllib.regression import StreamingLinearRegressionWithSGD

    for ours, theirs in [(streaming.StreamingLinearRegressionWithSGD, StreamingLinearRegressionWithSGD),
                         (streaming.StreamingLogisticRegressionWithSGD, StreamingLogisticRegressionWithSGD)]:
        params = [[(p.name, p.default) for p in inspect.signature(c.__init__).parameters.values()]
                  for c in (ours, theirs)]
        assert params[0] == params[1]
