"""The tasks that build the blocks stay up and serve the first training call (resident.Crew.builders)."""

import logging

import numpy as np
import pytest

from sparkgd.engine import aggregation, turns
from sparkgd.engine.aggregation import IterationSums
from sparkgd.engine.blocks import build_blocks, build_for_call
from sparkgd.engine.resident import ENABLED, Crew, State
from tests.spark.test_resident import KW, in_thread, same


def _rows(seed=11, n=60, d=40):
    """Rows whose sums depend on the order of addition (magnitudes 1e-6 .. 1e6)."""
    rng = np.random.default_rng(seed)
    return [(float(rng.normal()), rng.normal(size=d) * 10.0 ** rng.integers(-6, 7)) for _ in range(n)], d


def _built_by_builders(sc, rows, partitions=2):
    """Blocks built by builders that wait for a plan, and the builders (the caller's)."""
    builders = Crew.builders(sc, partitions)
    assert builders is not None  # every partition has a free slot
    blocks = build_blocks(sc.parallelize(rows, partitions), builders=builders)
    assert builders.state is State.WAITING and builders.job.thread.is_alive()
    return blocks, builders


def test_the_builders_serve_the_iterations_and_then_spark_caches_their_blocks(sc, caplog):
    rows, d = _rows()
    w = np.random.default_rng(1).normal(size=d)
    plain = build_blocks(sc.parallelize(rows, 2))
    blocks, builders = _built_by_builders(sc, rows)
    try:
        assert blocks.builds.value == 0  # no build task has ended: they wait to serve
        assert blocks.summaries == plain.summaries
        sums = IterationSums(blocks.rdd, 2, KW, d, first=builders)
        try:
            with caplog.at_level(logging.INFO, logger="sparkgd"):
                got = [sums(w * k, 40 + k) for k in (1, 2, 3)]
            assert sums.resident_calls == 3
            assert "the 2 tasks that built the blocks serve" in caplog.text
        finally:
            sums.close()
        want = [aggregation.tree_aggregate(plain.rdd, sums.tree, w * k, 40 + k, KW) for k in (1, 2, 3)]
        assert all(same(g, x) for g, x in zip(got, want))
        # after STOP the builders handed their blocks to Spark: later jobs read them, nothing is rebuilt
        assert same(aggregation.tree_aggregate(blocks.rdd, sums.tree, w, 41, KW), want[0])
        assert builders.state is State.STOPPED
        builders.job.thread.join(30)  # the fit returned before the builders' job ended (it caches the blocks)
        assert blocks.builds.value == 2
        # a block built again (lost, here unpersisted) is just cached: its task does not wait to serve
        blocks.rdd.unpersist(blocking=True)
        blocks.rdd.persist()
        out = in_thread(lambda: aggregation.tree_aggregate(blocks.rdd, sums.tree, w, 41, KW), timeout=60)
        assert same(out["value"], want[0]) and blocks.builds.value == 4
    finally:
        blocks.unpersist()
        plain.unpersist()


def test_builders_no_call_takes_hand_their_blocks_to_spark(sc):
    rows, d = _rows(seed=12)
    blocks, builders = _built_by_builders(sc, rows)
    try:
        assert blocks.builds.value == 0
        builders.release()  # the build job has ended when it returns
        assert not builders.job.thread.is_alive()
        assert blocks.builds.value == 2
        assert blocks.rdd.count() == 2 and blocks.builds.value == 2  # cached by the build job: not built again
    finally:
        blocks.unpersist()


def test_another_job_while_the_builders_wait_is_not_starved(sc):
    """The builders hold every slot while they wait for a plan: another job makes them hand over."""
    rows, d = _rows(seed=13)
    w = np.random.default_rng(2).normal(size=d)
    blocks, builders = _built_by_builders(sc, rows)
    try:
        out = in_thread(lambda: sc.parallelize(range(100), 2).sum(), timeout=60)
        assert out["value"] == 4950
        builders.job.thread.join(30)
        assert not builders.job.thread.is_alive()  # they handed their blocks over and ended
        assert builders.state is State.HANDED_OVER
        sums = IterationSums(blocks.rdd, 2, KW, d, first=builders)
        try:
            got = sums(w, 5)
        finally:
            sums.close()
        assert same(got, aggregation.tree_aggregate(blocks.rdd, sums.tree, w, 5, KW))
        assert blocks.builds.value == 2  # handed over, not rebuilt
    finally:
        blocks.unpersist()


def test_builders_wait_only_when_every_partition_has_a_slot(sc):
    rows, d = _rows(seed=14)
    assert Crew.builders(sc, 3) is None  # 3 partitions, 2 slots
    with turns.training_call():
        blocks = build_for_call(sc.parallelize(rows, 3))  # a plain build job
        assert turns.take(blocks.rdd.id()) is None
    try:
        assert blocks.builds.value == 3  # its tasks have ended
    finally:
        blocks.unpersist()


@pytest.fixture
def resident_off(spark):
    spark.conf.set(ENABLED, "false")
    yield
    spark.conf.unset(ENABLED)


def test_with_resident_tasks_off_the_build_job_ends_at_once(sc, resident_off):
    rows, d = _rows(seed=15)
    assert Crew.builders(sc, 2) is None
    with turns.training_call():
        blocks = build_for_call(sc.parallelize(rows, 2))
        assert turns.take(blocks.rdd.id()) is None
    try:
        assert blocks.builds.value == 2  # its tasks have ended
    finally:
        blocks.unpersist()


def test_a_fit_served_by_its_builders_is_the_per_job_fit_bit_for_bit(spark, caplog):
    from pyspark.ml.linalg import Vectors

    from sparkgd.engine import reuse
    from sparkgd.ml import SGDLogisticRegression

    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 6)) * [1, 10, 100, 0.1, 1, 5]
    y = (x @ rng.normal(size=6) > 0).astype(float)
    df = spark.createDataFrame([(float(a), Vectors.dense(b)) for a, b in zip(y, x)], ["label", "features"])
    df = df.repartition(2).cache()
    est = SGDLogisticRegression(maxIter=15, optimizer="adam", stepSize=0.1, miniBatchFraction=0.5, regParam=0.01,
                                validationFraction=0.2)
    try:
        df.count()
        with caplog.at_level(logging.INFO, logger="sparkgd"):
            served = est.fit(df)
        assert "the 2 tasks that built the blocks serve" in caplog.text
        again = est.fit(df)  # the blocks the builders handed to Spark, read by new resident tasks
        reuse.release_all()
        spark.conf.set(ENABLED, "false")
        try:
            per_job = est.fit(df)
        finally:
            spark.conf.unset(ENABLED)
    finally:
        reuse.release_all()
        df.unpersist()
    for m in (again, per_job):
        assert served.coefficients.toArray().tobytes() == m.coefficients.toArray().tobytes()
        assert served.intercept == m.intercept
        assert served.summary.objectiveHistory == m.summary.objectiveHistory


STOP_RIGHT_AFTER_FIT = """
import numpy as np
from pyspark.ml.linalg import Vectors
from pyspark.sql import SparkSession
from sparkgd.ml import SGDLinearRegression

spark = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
x = np.random.default_rng(0).normal(size=(200_000, 20))
df = spark.createDataFrame([(float(v @ np.arange(20)), Vectors.dense(v)) for v in x], ["label", "features"])
df = df.repartition(2).cache()
df.count()
# the reference: the same rows, not cached (blocks converted per call), no resident tasks
spark.conf.set("spark.sparkgd.residentTasks", "false")
reference = SGDLinearRegression(optimizer="lbfgs", maxIter=5).fit(spark.createDataFrame(df.rdd, df.schema))
spark.conf.set("spark.sparkgd.residentTasks", "true")
model = SGDLinearRegression(optimizer="lbfgs", maxIter=5).fit(df)  # returns while Spark caches the blocks
spark.stop()
print("coefficients", model.coefficients.toArray().tobytes().hex(), model.intercept.hex())
print("reference", reference.coefficients.toArray().tobytes().hex(), reference.intercept.hex())
"""


def test_stopping_spark_right_after_a_fit_waits_for_the_builders(tmp_path):
    import os
    import subprocess
    import sys

    script = tmp_path / "stop.py"
    script.write_text(STOP_RIGHT_AFTER_FIT)
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = {ln.split()[0]: ln.split()[1:] for ln in done.stdout.splitlines() if ln.startswith(("coef", "ref"))}
    assert got["coefficients"] == got["reference"], done.stdout  # the same bits as plain jobs
    errors = [ln for ln in done.stderr.splitlines() if " ERROR " in ln or "Exception" in ln]
    assert not errors, errors[:5]
