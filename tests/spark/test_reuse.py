"""Training again on the same cached input reuses its blocks; the blocks go when the input does."""

import gc
import os

import numpy as np
from pyspark import SparkFiles
from pyspark.ml.linalg import Vectors
from pyspark.mllib.regression import LabeledPoint

from sparkgd import blocks as blocks_module
from sparkgd import reuse
from sparkgd.ml import SGDLinearRegression
from sparkgd.rdd import LinearRegressionWithSGD


def count_builds(monkeypatch):
    built = []
    original = blocks_module.BlockedData.__init__

    def counting(self, *args, **kw):
        original(self, *args, **kw)
        built.append(self.store_id)

    monkeypatch.setattr(blocks_module.BlockedData, "__init__", counting)
    return built


def points(sc):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 3))
    y = x @ np.array([1.0, -1.0, 2.0])
    return [LabeledPoint(float(a), b) for a, b in zip(y, x)]


def test_rdd_blocks_are_built_once_while_cached_and_released_after(sc, monkeypatch):
    built = count_builds(monkeypatch)
    reuse.release_all()
    kw = dict(iterations=5, step=0.5, miniBatchFraction=0.5)
    fresh = [LinearRegressionWithSGD.train(sc.parallelize(points(sc), 2), **kw) for _ in range(2)]
    assert len(built) == 2 and reuse.kept_count() == 0  # not cached: converted at every call

    rdd = sc.parallelize(points(sc), 2).cache()
    models = [LinearRegressionWithSGD.train(rdd, **kw), LinearRegressionWithSGD.train(rdd, step=0.1, iterations=3)]
    assert len(built) == 3 and reuse.kept_count() == 1
    assert models[0].weights.toArray().tolist() == fresh[0].weights.toArray().tolist()
    store = os.path.join(SparkFiles.getRootDirectory(), built[-1])
    assert os.path.isdir(store)

    rdd.unpersist()  # found at the next call: the kept blocks go
    LinearRegressionWithSGD.train(rdd, **kw)
    assert len(built) == 4 and reuse.kept_count() == 0 and not os.path.exists(store)

    again = sc.parallelize(points(sc), 2).cache()
    LinearRegressionWithSGD.train(again, **kw)
    kept = os.path.join(SparkFiles.getRootDirectory(), built[-1])
    del again
    gc.collect()  # the input is gone: released at the next training call, not from the collector
    assert os.path.isdir(kept)
    LinearRegressionWithSGD.train(sc.parallelize(points(sc), 2), **kw)
    assert reuse.kept_count() == 0 and not os.path.exists(kept)


def test_dataframe_blocks_are_kept_per_column_choice(spark, monkeypatch):
    built = count_builds(monkeypatch)
    reuse.release_all()
    rows = [(p.label, Vectors.dense(p.features.toArray()), 1.0 + i % 2) for i, p in enumerate(points(spark))]
    df = spark.createDataFrame(rows, ["label", "features", "w"]).cache()
    est = SGDLinearRegression(maxIter=4, stepSize=0.5, standardization=False)
    a = est.fit(df)
    b = est.copy({est.stepSize: 0.5}).fit(df)
    assert len(built) == 1 and a.coefficients == b.coefficients
    est.setWeightCol("w").fit(df)  # other columns: other blocks, kept too
    est.setWeightCol("w").fit(df)
    assert len(built) == 2 and reuse.kept_count() == 1
    df.unpersist()
    est.fit(df)
    assert len(built) == 3 and reuse.kept_count() == 0
    reuse.release_all()
