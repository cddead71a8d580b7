"""Models of the RDD API: predictions as MLlib's models make them, thresholds, persistence."""

import numpy as np
import pytest
from pyspark.mllib.classification import LogisticRegressionModel as MLlibLogistic
from pyspark.mllib.classification import SVMModel as MLlibSVM
from pyspark.mllib.linalg import SparseVector
from pyspark.mllib.regression import LabeledPoint
from pyspark.mllib.regression import LinearRegressionModel as MLlibLinear

from sparkgd.core.persistence import ModelFormatError
from sparkgd.rdd import (
    LassoModel,
    LinearRegressionModel,
    LogisticRegressionModel,
    LogisticRegressionWithSGD,
    SVMModel,
)

W, B = [0.5, -1.0, 2.0], 0.25
POINTS = [[1.0, 2.0, 0.5], [0.0, 0.0, 0.0], [-3.0, 1.0, 0.1], SparseVector(3, [2], [4.0])]


@pytest.mark.parametrize("ours,theirs", [
    (LinearRegressionModel, MLlibLinear), (LogisticRegressionModel, MLlibLogistic), (SVMModel, MLlibSVM)])
def test_predictions_equal_mllib_models_with_the_same_weights(ours, theirs, sc):
    a = ours(W, B)
    b = theirs(W, B, 3, 2) if theirs is MLlibLogistic else theirs(W, B)
    for p in POINTS:
        assert a.predict(p) == pytest.approx(b.predict(p), rel=1e-15)
    rdd = sc.parallelize(POINTS, 2)
    assert a.predict(rdd).collect() == pytest.approx(b.predict(rdd).collect())
    if ours is not LinearRegressionModel:
        a.clearThreshold()
        b.clearThreshold()
        for p in POINTS:
            assert a.predict(p) == pytest.approx(b.predict(p), rel=1e-15)
        a.setThreshold(0.9)
        b.setThreshold(0.9)
        assert [a.predict(p) for p in POINTS] == [b.predict(p) for p in POINTS]


def test_trained_classifier_predicts_its_training_labels(sc):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = (x[:, 0] - x[:, 1] > 0).astype(float)
    m = LogisticRegressionWithSGD.train(sc.parallelize([LabeledPoint(a, b) for a, b in zip(y, x)], 2),
                                        iterations=30, regParam=0.0)
    acc = np.mean([m.predict(xi) == yi for xi, yi in zip(x, y)])
    assert acc > 0.95 and m.threshold == 0.5 and m.numFeatures == 2 and m.numClasses == 2


def test_save_and_load_round_trip(tmp_path, sc):
    m = LogisticRegressionModel(W, B, [3.0, 2.0, 1.5], 3)
    m.setThreshold(0.7)
    m.save(sc, str(tmp_path / "m"))
    back = LogisticRegressionModel.load(sc, str(tmp_path / "m"))
    assert back.weights == m.weights and back.intercept == B and back.threshold == 0.7
    assert back.lossHistory == [3.0, 2.0, 1.5] and back.numIterations == 3
    assert [back.predict(p) for p in POINTS] == [m.predict(p) for p in POINTS]
    with pytest.raises(FileExistsError):
        m.save(sc, str(tmp_path / "m"))
    with pytest.raises(ModelFormatError, match="expected LassoModel"):
        LassoModel.load(sc, str(tmp_path / "m"))
    cleared = SVMModel(W, B)
    cleared.clearThreshold()
    cleared.save(sc, f"file://{tmp_path}/svm")
    assert SVMModel.load(sc, str(tmp_path / "svm")).threshold is None


def test_wrong_vector_size_is_an_error():
    with pytest.raises(ValueError, match="expected 3 features"):
        LinearRegressionModel(W, B).predict([1.0, 2.0])


def test_models_move_through_hadoop_filesystems_atomically(sc, tmp_path):
    # what save/load do for hdfs://, s3a://, ... exercised through Hadoop's FileSystem with file: URIs
    from sparkgd.core import persistence
    from sparkgd.engine import fs

    uri = (tmp_path / "remote" / "model").as_uri()
    arrays = {"weights": np.array([1.5, -2.0])}
    fs.publish(sc, lambda local: persistence.write_model(local, {"class": "X"}, arrays), uri, overwrite=False)
    with fs.fetched(sc, uri) as local:
        assert persistence.read_model(local, "X")[1]["weights"].tolist() == [1.5, -2.0]
    with pytest.raises(FileExistsError, match="already exists"):
        fs.publish(sc, lambda local: persistence.write_model(local, {"class": "X"}, arrays), uri, overwrite=False)
    arrays = {"weights": np.array([3.0])}
    fs.publish(sc, lambda local: persistence.write_model(local, {"class": "X"}, arrays), uri, overwrite=True)
    with fs.fetched(sc, uri) as local:
        assert persistence.read_model(local, "X")[1]["weights"].tolist() == [3.0]
    assert sorted(p.name for p in (tmp_path / "remote").iterdir()) == ["model"]  # no temporary sibling left
