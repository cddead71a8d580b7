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
    three = df.repartition(3)  # more partitions than the 2 slots of local[2]: arranged in 2, then chunks
    got["three"] = {"model": numbers(ESTIMATORS["linear"]().fit(three)), "chunks": chunks[-1:]}
    got.update(_interrupted(df, out))
    got.update(_long_fits(spark, df, out))
    remote.RemoteBlocks.iterate_on_executors = real
    return got


def _interrupted(df, out: str) -> dict:
    """A fit stopped by its callback at iteration 9 (checkpoints of 4 and 8 written), then resumed."""
    from tests.connect.fits import ESTIMATORS, numbers

    class Stop(Exception):
        pass

    def stop_at_9(state):
        if state.iteration == 9:
            raise Stop

    est = ESTIMATORS["linear"]().setCheckpointDir(f"{out}/resume").setCheckpointInterval(4)
    try:
        est.setCallback(stop_at_9).fit(df)
    except Stop:
        pass
    import os

    written = sorted(os.listdir(f"{out}/resume"))
    seen = []
    resumed = numbers(est.setResume(True).setCallback(lambda s: seen.append(s.iteration)).fit(df))
    return {"resume": {"written": written, "first_seen": seen[:1], "model": resumed}}


def _long_fits(spark, df, out: str) -> dict:
    """3000 iterations (3 chunks of at most 1000): another job of the session runs between two chunks; and
    the Python workers of the server killed during a chunk: the chunk runs again, the same model."""
    import os
    import signal
    import threading
    import time

    from sparkgd.engine import remote
    from sparkgd.ml import SGDLinearRegression

    cached = df.cache()

    def make(iterations):
        return SGDLinearRegression(maxIter=iterations, stepSize=0.1, miniBatchFraction=0.5, tol=0.0)

    make(1).fit(cached)  # the blocks, built once for the cached input
    times = {}

    def other():
        time.sleep(0.5)
        times["other_submitted"] = time.monotonic()
        spark.range(100, numPartitions=2).count()
        times["other_done"] = time.monotonic()

    thread = threading.Thread(target=other)
    start = time.monotonic()
    thread.start()
    long_model = make(3000).fit(cached)
    times["fit_done"] = time.monotonic()
    thread.join()
    result = {"between": {k: v - start for k, v in times.items()}, "long": _numbers(long_model)}

    failed = []
    real = remote.RemoteBlocks.iterate_on_executors

    def counting(self, *args, **kwargs):
        before = self.failed_chunks
        try:
            return real(self, *args, **kwargs)
        finally:
            failed.append(self.failed_chunks - before)

    def kill_workers():  # once a chunk's root listens for its other tasks: the chunk runs
        server = int(os.environ["SPARKGD_TEST_CONNECT_PID"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            workers = [w for d in _children(server) for w in _children(d)]
            if any(_listening(w, server) for w in workers):
                for w in workers:
                    os.kill(w, signal.SIGKILL)
                return
            time.sleep(0.01)

    remote.RemoteBlocks.iterate_on_executors = counting
    killer = threading.Thread(target=kill_workers)
    killer.start()
    killed = make(1000).fit(cached)
    killer.join()
    remote.RemoteBlocks.iterate_on_executors = real
    result["killed"] = {"failed": failed, "model": _numbers(killed)}
    return result


def _numbers(model):
    from tests.connect.fits import numbers

    return numbers(model)


def _sockets(pid: int) -> set[str]:
    import os

    found = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                found.add(link[8:-1])
    except OSError:
        pass
    return found


def _listening(pid: int, server: int) -> bool:
    """Whether process ``pid`` holds a listening TCP socket of its own (not one inherited from its parents)."""
    inherited = set().union(*(_sockets(p) for p in [server, *_children(server)] if p != pid))
    with open("/proc/net/tcp") as f:
        listening = {line.split()[9] for line in f.readlines()[1:] if line.split()[3] == "0A"}
    return bool((_sockets(pid) - inherited) & listening)


def _children(pid: int) -> list[int]:
    import os

    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


if __name__ == "__main__":
    main(*sys.argv[1:4])
