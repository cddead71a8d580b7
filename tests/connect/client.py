"""Runs under Spark Connect in its own process: fits sparkgd's estimators on a Parquet dataset and
writes each model's numbers as JSON (floats as their exact repr), for tests/connect/test_connect.py."""

from __future__ import annotations

import json
import sys


def main(remote: str, data: str, out: str) -> None:
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.evaluation import RegressionEvaluator
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder
    from pyspark.sql import SparkSession
    from pyspark.sql.utils import is_remote

    from tests.connect.fits import ESTIMATORS, numbers, pipeline_stages, wide

    spark = SparkSession.builder.remote(remote).getOrCreate()
    assert is_remote()
    df = spark.read.parquet(data)
    got = {}
    for name, make in ESTIMATORS.items():
        model = make().fit(df)
        got[name] = numbers(model)
        got[name + "_evaluate"] = repr(model.evaluate(df).accuracy if name != "linear"
                                       else model.evaluate(df).rootMeanSquaredError)
    model = Pipeline(stages=pipeline_stages(VectorAssembler)).fit(df)
    got["pipeline"] = numbers(model.stages[-1])
    model.write().overwrite().save(f"{out}/pipeline")
    got["pipeline_loaded"] = numbers(PipelineModel.load(f"{out}/pipeline").stages[-1])
    got["pipeline_predictions"] = [r.prediction for r in model.transform(df).select("prediction").collect()]
    est = ESTIMATORS["linear"]()
    grid = ParamGridBuilder().addGrid(est.regParam, [0.0, 0.1]).build()
    cv = CrossValidator(estimator=est, estimatorParamMaps=grid, evaluator=RegressionEvaluator(), numFolds=2, seed=7)
    got["cv"] = numbers(cv.fit(df).bestModel)
    got["wide"] = numbers(wide().fit(spark.read.parquet(data + "-wide")))
    got.update(_reuse(spark, data, out))
    got["in_a_task"] = _in_a_task(spark, data, out)
    with open(f"{out}/models.json", "w") as f:
        json.dump(got, f)


def _reuse(spark, data: str, out: str) -> dict:
    """Blocks of a cached input are built once; the same plan cached again with other content is rebuilt."""
    from pyspark.sql import functions as F

    from sparkgd.engine import remote, reuse  # noqa: F401 - remote: patched below
    from tests.connect.fits import ESTIMATORS, numbers

    builds = []
    real = remote.RemoteBlocks.__init__

    def counting(self, *args, **kwargs):
        builds.append(1)
        real(self, *args, **kwargs)

    remote.RemoteBlocks.__init__ = counting
    cached = spark.read.parquet(data).cache()
    first = numbers(ESTIMATORS["linear"]().fit(cached))
    again = numbers(ESTIMATORS["linear"]().setRegParam(0.1).fit(cached))
    two = len(builds)
    copy = f"{out}/copy"
    spark.read.parquet(data).write.parquet(copy)
    old_df = spark.read.parquet(copy).cache()
    old = numbers(ESTIMATORS["linear"]().fit(old_df))
    old_df.unpersist()
    spark.read.parquet(data).withColumn("label", F.col("label") * 2.0).write.mode("overwrite").parquet(copy)
    new_df = spark.read.parquet(copy).cache()  # the same plan as old_df: Spark's cache manager cannot tell them apart
    new = numbers(ESTIMATORS["linear"]().fit(new_df))
    reuse.release_all()
    fresh = numbers(ESTIMATORS["linear"]().fit(new_df))
    return {"reuse": {"builds_after_two": two, "first": first, "again_reg": again},
            "recached": {"same_plan": old_df.sameSemantics(new_df), "builds": len(builds), "old": old, "new": new,
                         "fresh": fresh}}


def _in_a_task(spark, data: str, out: str) -> dict:
    """The loop run in a task of a barrier job, chunk after chunk; and where it cannot, one job per iteration."""
    from sparkgd.core.errors import SGDDivergenceError
    from sparkgd.engine import remote
    from tests.connect.fits import ESTIMATORS, numbers

    chunks = []
    real = remote.RemoteBlocks.iterate_on_executors

    def counting(self, *args, **kwargs):
        before = self.chunks
        state = real(self, *args, **kwargs)
        chunks.append(self.chunks - before)
        return state

    remote.RemoteBlocks.iterate_on_executors = counting
    df = spark.read.parquet(data)
    got: dict = {"fits": {}}
    for name, make in ESTIMATORS.items():
        spark.conf.set("spark.sparkgd.connect.chunkSeconds", "0")  # a chunk per iteration: the state travels
        seen = []
        est = make().setCallback(lambda s, seen=seen: seen.append([s.iteration, [repr(v) for v in s.weights]]))
        one = numbers(est.fit(df))
        spark.conf.unset("spark.sparkgd.connect.chunkSeconds")
        whole = numbers(make().fit(df))
        spark.conf.set("spark.sparkgd.residentTasks", "false")
        jobs = numbers(make().fit(df))
        spark.conf.unset("spark.sparkgd.residentTasks")
        got["fits"][name] = {"chunked": one, "whole": whole, "jobs": jobs, "seen": seen}
    got["chunks"] = chunks
    est = ESTIMATORS["linear"]().setCheckpointDir(f"{out}/ckpt").setCheckpointInterval(4)
    got["checkpointed"] = numbers(est.fit(df))
    import os

    got["checkpoints"] = sorted(os.listdir(f"{out}/ckpt"))
    try:
        ESTIMATORS["linear"]().setStepSize(1e4).setStandardization(False).fit(df)
        got["diverged"] = None
    except SGDDivergenceError as e:
        got["diverged"] = [e.iteration, e.what]
    three = df.repartition(3)  # more partitions than the 2 slots of local[2]: one job per iteration
    got["three"] = {"model": numbers(ESTIMATORS["linear"]().fit(three)), "chunks": chunks[-1:]}
    remote.RemoteBlocks.iterate_on_executors = real
    return got


if __name__ == "__main__":
    main(*sys.argv[1:4])
