"""Training again on the same cached input reuses its blocks; a new cache, even of the same object, does not."""

import numpy as np
from pyspark.ml.linalg import Vectors
from pyspark.mllib.regression import LabeledPoint
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType

from sparkgd.engine import _spark, reuse
from sparkgd.engine import blocks as blocks_module
from sparkgd.ml import SGDLinearRegression
from sparkgd.rdd import LinearRegressionWithSGD


def count_builds(monkeypatch):
    built = []
    original = blocks_module.BlockedData.__init__

    def counting(self, *args, **kw):
        original(self, *args, **kw)
        built.append(self)

    monkeypatch.setattr(blocks_module.BlockedData, "__init__", counting)
    return built


def points():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 3))
    y = x @ np.array([1.0, -1.0, 2.0])
    return [LabeledPoint(float(a), b) for a, b in zip(y, x)]


def held(blocks, sc):
    return blocks.rdd.id() in _spark.persistent_rdd_ids(sc)


def test_rdd_blocks_are_built_once_while_cached_and_released_after(sc, monkeypatch):
    built = count_builds(monkeypatch)
    reuse.release_all()
    kw = dict(iterations=5, step=0.5, miniBatchFraction=0.5)
    fresh = [LinearRegressionWithSGD.train(sc.parallelize(points(), 2), **kw) for _ in range(2)]
    assert len(built) == 2 and reuse.kept_count() == 0  # not cached: converted at every call...
    assert not any(held(b, sc) for b in built)  # ...and dropped from Spark's storage after it

    rdd = sc.parallelize(points(), 2).cache()
    models = [LinearRegressionWithSGD.train(rdd, **kw), LinearRegressionWithSGD.train(rdd, step=0.1, iterations=3)]
    assert len(built) == 3 and reuse.kept_count() == 1 and held(built[-1], sc)
    assert built[-1].builds.value == 2  # one per partition, once: the second call read Spark's cached blocks
    assert models[0].weights.toArray().tolist() == fresh[0].weights.toArray().tolist()

    rdd.unpersist()  # found at the next call: the kept blocks go
    LinearRegressionWithSGD.train(rdd, **kw)
    assert len(built) == 4 and reuse.kept_count() == 0 and not held(built[2], sc)


def test_dataframe_blocks_are_kept_per_column_choice(spark, monkeypatch):
    built = count_builds(monkeypatch)
    reuse.release_all()
    rows = [(p.label, Vectors.dense(p.features.toArray()), 1.0 + i % 2) for i, p in enumerate(points())]
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
    assert len(built) == 3 and reuse.kept_count() == 0 and not held(built[0], spark.sparkContext)
    reuse.release_all()


def test_a_changed_input_cached_again_under_the_same_object_is_trained_on(spark, tmp_path):
    reuse.release_all()
    slope_file = tmp_path / "slope"  # the data a UDF computes changes when this file does

    @F.udf(DoubleType())
    def label(i):
        return float(open(slope_file).read()) * (i % 7) / 7.0

    def frame():
        ids = spark.range(0, 80, numPartitions=2)
        return ids.select(label("id").alias("label"), F.array((F.col("id") % 7) / 7.0, F.lit(1.0)).alias("x"))

    from pyspark.ml.functions import array_to_vector

    def features(df):
        return df.select("label", array_to_vector("x").alias("features"))

    est = SGDLinearRegression(maxIter=20, stepSize=1.0, standardization=False)
    slope_file.write_text("1.0")
    df = features(frame()).cache()
    old = est.fit(df).coefficients.toArray()
    slope_file.write_text("-3.0")
    spark.catalog.clearCache()
    df.cache()  # the same object, cached again: Spark computes the changed data
    new = est.fit(df).coefficients.toArray()
    fresh = est.fit(features(frame())).coefficients.toArray()  # uncached, so computed now
    assert new.tobytes() == fresh.tobytes() and new.tobytes() != old.tobytes()
    df.unpersist()
    reuse.release_all()
