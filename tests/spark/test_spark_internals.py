"""Each private pyspark/JVM call sparkgd makes still works in this Spark version (one test each).

A failure here means a Spark upgrade changed a private API: the feature in
``sparkgd.engine._spark._CONSEQUENCE`` would turn off (with a warning) until it is adapted.
"""

import logging

import numpy as np
import pyarrow as pa

from sparkgd.engine import _spark


def no_warning(caplog):
    assert "is not available" not in caplog.text


def test_free_slots_counts_the_slots_of_local_2(sc, caplog):
    with caplog.at_level(logging.WARNING, logger="sparkgd"):
        assert _spark.free_slots(sc) == 2
    no_warning(caplog)


def test_job_ids_for_tag_finds_a_tagged_job(sc, caplog):
    sc.addJobTag("sparkgd-internals-test")
    try:
        sc.parallelize([1, 2], 2).count()
    finally:
        sc.removeJobTag("sparkgd-internals-test")
    with caplog.at_level(logging.WARNING, logger="sparkgd"):
        assert len(_spark.job_ids_for_tag(sc, "sparkgd-internals-test")) == 1
        assert _spark.job_ids_for_tag(sc, "sparkgd-no-such-tag") == set()
    no_warning(caplog)


def test_persistent_rdd_ids_follow_cache_and_unpersist(sc, caplog):
    rdd = sc.parallelize([1, 2], 2).cache()
    with caplog.at_level(logging.WARNING, logger="sparkgd"):
        assert rdd.id() in _spark.persistent_rdd_ids(sc)
        rdd.unpersist(blocking=True)
        assert rdd.id() not in _spark.persistent_rdd_ids(sc)
    no_warning(caplog)


def test_dataframe_cache_id_is_new_at_every_cache(spark, caplog):
    df = spark.range(10)
    with caplog.at_level(logging.WARNING, logger="sparkgd"):
        assert _spark.dataframe_cache_id(df) is None
        df.cache()
        first = _spark.dataframe_cache_id(df)
        assert first in _spark.persistent_rdd_ids(spark.sparkContext)
        spark.catalog.clearCache()
        assert _spark.dataframe_cache_id(df) is None
        df.cache()
        assert _spark.dataframe_cache_id(df) not in (None, first)
    df.unpersist()
    no_warning(caplog)


def test_jvm_count_caches_without_python_collect(sc, caplog):
    acc = sc.accumulator(0)

    def mark(x):
        acc.add(1)
        return x

    rdd = sc.parallelize(range(6), 2).map(mark).cache()
    with caplog.at_level(logging.WARNING, logger="sparkgd"):
        _spark.jvm_count(rdd)
    assert acc.value == 6 and rdd.collect() == list(range(6)) and acc.value == 6  # served from the cache
    rdd.unpersist()
    no_warning(caplog)


def test_arrow_batches_carry_the_rows(spark, caplog):
    df = spark.createDataFrame([(1.0, 2.0), (3.0, 4.0), (5.0, 6.0)], ["a", "b"]).repartition(2)
    with caplog.at_level(logging.WARNING, logger="sparkgd"):
        rdd, schema_bytes = _spark.arrow_batches(df)
    schema = pa.ipc.read_schema(pa.py_buffer(schema_bytes))
    rows = []
    for raw in rdd.collect():
        batch = pa.ipc.read_record_batch(pa.py_buffer(raw), schema)
        rows += batch.to_pylist()
    assert sorted(r["a"] for r in rows) == [1.0, 3.0, 5.0] and np.isclose(sum(r["b"] for r in rows), 12.0)
    no_warning(caplog)


def test_detach_keeps_the_lineage_in_the_jvm(sc):
    rdd = sc.parallelize(range(4), 2).map(lambda v: v * 2)
    child = rdd.map(lambda v: v + 1)
    _spark.detach(child)
    assert child.prev is None and child.collect() == [1, 3, 5, 7]


def test_hadoop_path_lists_local_files_by_uri(sc, tmp_path):
    (tmp_path / "a.txt").write_text("x")
    fs, path = _spark.hadoop_path(sc, tmp_path.as_uri())
    assert [s.getPath().getName() for s in fs.listStatus(path)] == ["a.txt"]


def test_is_remote_is_false_in_classic_mode(spark):
    from sparkgd.engine import _spark

    assert _spark.is_remote() is False  # tests/connect runs the True side, in a Connect client process


def test_active_context_is_the_sessions(sc):
    assert _spark.active_context() is sc


def test_params_metadata_is_spark_ml_json(spark):
    import json

    from sparkgd.ml import SGDLinearRegression

    meta = json.loads(_spark.params_metadata(SGDLinearRegression(maxIter=7), spark, {"extra": 1}))
    assert meta["class"] == "sparkgd.ml.regression.SGDLinearRegression" and meta["paramMap"]["maxIter"] == 7
    assert meta["extra"] == 1


def test_run_before_stop_calls_the_hook_first_and_patches_once():
    calls = []

    class Context:
        def stop(self):
            calls.append("stop")

    ctx = Context()
    _spark.run_before_stop(ctx, lambda: calls.append("hook"))
    _spark.run_before_stop(ctx, lambda: calls.append("second hook"))
    ctx.stop()
    assert calls == ["hook", "stop"]


def test_spark_ml_summaries_and_log_levels(spark, caplog):
    from pyspark.ml.linalg import Vectors

    df = spark.createDataFrame([(float(i % 2), Vectors.dense([0.1, 0.9] if i % 2 else [0.8, 0.2]), 0.0)
                                for i in range(6)], ["label", "probability", "prediction"])
    with caplog.at_level(logging.WARNING, logger="sparkgd"):
        assert _spark.binary_summary(df, "probability", "prediction", "label", None, True).labels == [0.0, 1.0]
        assert _spark.multiclass_summary(df, "probability", "prediction", "label", None).accuracy == 0.5
        _spark.set_log_level(spark.sparkContext, "sparkgd.test.logger", "ERROR")
    no_warning(caplog)
    level = spark.sparkContext._jvm.org.apache.logging.log4j.LogManager.getLogger("sparkgd.test.logger").getLevel()
    assert str(level) == "ERROR"


def test_reset_uid_gives_a_params_object_its_saved_uid(spark):
    from pyspark.ml.feature import Binarizer

    b = Binarizer(threshold=0.5)
    _spark.reset_uid(b, "Binarizer_saved")
    assert b.uid == "Binarizer_saved"
    assert b.threshold.parent == "Binarizer_saved"  # its params follow, so getAndSetParams finds them


def test_cancelled_tells_a_cancelled_job_from_a_failed_one(sc):
    import threading
    import time

    def slow(_):
        time.sleep(30)
        return 1

    error = {}

    def run():
        sc.setJobGroup("sparkgd-internals-cancel", "test")
        try:
            sc.parallelize(range(2), 2).map(slow).collect()
        except Exception as e:
            error["e"] = e

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 30
    while not sc.statusTracker().getActiveJobsIds() and time.monotonic() < deadline:
        time.sleep(0.05)
    sc.cancelJobGroup("sparkgd-internals-cancel")
    worker.join(60)
    assert _spark.cancelled(error["e"])

    def fails(_):
        raise ValueError("this task cancelled nothing")  # the word alone must not count

    try:
        sc.parallelize(range(2), 2).map(fails).collect()
    except Exception as e:
        assert not _spark.cancelled(e)
    else:
        raise AssertionError("the job did not fail")


def test_pickled_batches_read_a_cached_labeled_point_rdd_as_its_batches(sc, caplog):
    from pyspark.mllib.regression import LabeledPoint

    from sparkgd.core.pickled import Points

    points = [LabeledPoint(float(i % 2), [float(i), -0.5 * i]) for i in range(40)]
    cached = sc.parallelize(points, 2).map(lambda p: p).cache()
    with caplog.at_level(logging.WARNING, logger="sparkgd"):
        batches = _spark.pickled_batches(cached)
        assert _spark.pickled_batches(cached.map(lambda p: p)) is None  # pipelined: rows stay in the worker
    parts = batches.glom().collect()
    assert len(parts) == 2 and all(type(b) is Points for part in parts for b in part)
    rows = [(p.start, np.frombuffer(p.stop).tolist()) for part in parts for b in part for p in b]
    assert rows == [(p.label, p.features.toArray().tolist()) for p in points]
    cached.unpersist()
    no_warning(caplog)
