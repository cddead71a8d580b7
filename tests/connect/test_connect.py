"""sparkgd.ml under Spark Connect: a real local Connect server, the client in its own process, and
every model compared bit for bit with classic mode's on the same data and partitioning."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
pytest.importorskip("grpc", reason="Spark Connect's client needs grpcio (pip install 'pyspark[connect]')")


def _python_lines(stderr):
    """The end of a client's stderr without the JVM stack frames Connect forwards."""
    return "\n".join(ln for ln in stderr.splitlines() if not ln.startswith("\tat "))[-4000:]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory):
    """A Spark Connect server bound to 127.0.0.1 on a free port, stopped at the end."""
    import pyspark

    home = pathlib.Path(pyspark.__file__).parent
    port = _free_port()
    env = dict(os.environ, SPARK_HOME=str(home), SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable,
               PYTHONPATH=str(ROOT))
    log = open(tmp_path_factory.mktemp("connect") / "server.log", "w")
    proc = subprocess.Popen(
        [str(home / "bin" / "spark-submit"), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
         "--master", "local[2]", "--conf", "spark.ui.enabled=false", "--conf", "spark.default.parallelism=2",
         "--conf", "spark.sql.shuffle.partitions=2", "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
         "--conf", f"spark.connect.grpc.binding.port={port}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, "the Connect server exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the Connect server did not listen in 120 s"
                time.sleep(0.5)
        os.environ["SPARKGD_TEST_CONNECT_PID"] = str(proc.pid)  # the client kills the server's Python workers
        yield f"sc://127.0.0.1:{port}"
    finally:
        os.environ.pop("SPARKGD_TEST_CONNECT_PID", None)
        os.killpg(proc.pid, 15)
        proc.wait(30)
        log.close()


def _data(spark, path):
    rng = np.random.default_rng(3)
    rows = []
    for i in range(240):
        a, b, c = rng.standard_normal(3)
        y = 1.0 * a - 2.0 * b + 0.5 * c + 0.3 + 0.1 * rng.standard_normal()
        klass = float(np.argmax([a, b, c]))
        rows.append((float(y), float(y > 0.3), klass, float(1 + i % 3), float(a), float(b), float(c)))
    from pyspark.ml.feature import VectorAssembler

    df = spark.createDataFrame(rows, ["label", "binary", "klass", "w", "a", "b", "c"]).coalesce(2)
    VectorAssembler(inputCols=["a", "b", "c"], outputCol="features").transform(df).write.parquet(path)
    from pyspark.ml.linalg import Vectors

    d = 12_000  # 8 d bytes > 64 KiB: the engines combine the two partitions' sums on an executor
    wide = []
    for i in range(60):
        idx = sorted({int(j) for j in rng.integers(0, d, 5)})
        wide.append((float(i % 2), Vectors.sparse(d, idx, rng.standard_normal(len(idx)).tolist())))
    spark.createDataFrame(wide,
                          ["binary", "features"]).coalesce(2).write.parquet(path + "-wide")


def test_models_under_connect_are_the_classic_ones_bit_for_bit(spark, connect_server, tmp_path):
    from pyspark.ml import Pipeline
    from pyspark.ml.evaluation import RegressionEvaluator
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

    from sparkgd.core.tree import CombineTree
    from sparkgd.engine.aggregation import top_level
    from tests.connect.fits import ESTIMATORS, numbers, pipeline_stages, wide

    data = str(tmp_path / "data")
    _data(spark, data)
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-m", "tests.connect.client", connect_server, data, str(out)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, _python_lines(run.stderr)
    got = json.loads((out / "models.json").read_text())

    df = spark.read.parquet(data)
    assert df.rdd.getNumPartitions() == 2
    for name, make in ESTIMATORS.items():
        model = make().fit(df)
        assert got[name] == numbers(model), name
        metric = model.evaluate(df).accuracy if name != "linear" else model.evaluate(df).rootMeanSquaredError
        assert got[name + "_evaluate"] == repr(metric), name
    want = numbers(Pipeline(stages=pipeline_stages(VectorAssembler)).fit(df).stages[-1])
    assert got["pipeline"] == got["pipeline_loaded"] == want
    est = ESTIMATORS["linear"]()
    grid = ParamGridBuilder().addGrid(est.regParam, [0.0, 0.1]).build()
    cv = CrossValidator(estimator=est, estimatorParamMaps=grid, evaluator=RegressionEvaluator(), numFolds=2, seed=7)
    assert got["cv"] == numbers(cv.fit(df).bestModel)
    assert len(got["pipeline_predictions"]) == 240

    job_out = tmp_path / "job"  # the batch job under Connect: synthetic data, then a Parquet input
    for extra in ([], ["--input", data, "--format", "parquet", "--feature-cols", "a,b,c"]):
        cmd = [sys.executable, str(ROOT / "jobs" / "train_linear.py"), "--remote", connect_server, "--api",
               "dataframe", "--rows", "3000", "--iterations", "30", "--optimizer", "lbfgs", "--mini-batch-fraction",
               "1.0", "--output", str(job_out), "--overwrite", *extra]
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, _python_lines(done.stderr)
        m = json.loads((job_out / "metrics.json").read_text())
        assert m["test"]["rmse"] < 0.15 and m["config"]["remote"] == connect_server
        from sparkgd.ml import SGDLinearRegressionModel

        loaded = SGDLinearRegressionModel.load(str(job_out / "model"))
        np.testing.assert_array_equal(loaded.coefficients.toArray(), m["weights"])
    assert m["weights"] == pytest.approx([1.0, -2.0, 0.5], abs=0.05)  # the Parquet data's a, b, c
    assert top_level(CombineTree(2, 2), 12_000 + 1) == 1  # the wide fit combined a tree level remotely
    reused = got["reuse"]  # a cached input's blocks serve both fits, and give the classic models
    assert reused["builds_after_two"] == 1 and reused["first"] == got["linear"]
    assert reused["again_reg"] == numbers(ESTIMATORS["linear"]().setRegParam(0.1).fit(df))
    recached = got["recached"]  # cached again with other content: rebuilt, not trained on the old blocks
    assert recached["same_plan"] and recached["builds"] == 4
    assert recached["new"] == recached["fresh"] != recached["old"]
    wide_df = spark.read.parquet(data + "-wide")
    assert wide_df.rdd.getNumPartitions() == 2 and got["wide"] == numbers(wide().fit(wide_df))
    _check_loop_in_a_task(spark, df, got, tmp_path)


def _check_loop_in_a_task(spark, df, got, tmp_path):
    """Under Connect the loop ran in a task, a chunk per job: with a chunk per iteration (the state crossing
    to the client and back every time), in one chunk, and with one job per iteration, the models are the
    classic ones bit for bit, the callbacks see every iteration's classic weights, the checkpoints are the
    classic ones, divergence raises as in classic mode; 3 partitions on 2 slots are arranged in 2 and run chunks."""
    from sparkgd.core.checkpoint import LocalDirs
    from sparkgd.core.errors import SGDDivergenceError
    from tests.connect.fits import ESTIMATORS, numbers

    task = got["in_a_task"]
    chunks = list(task["chunks"])
    for name, make in ESTIMATORS.items():
        seen = []
        want = numbers(make().setCallback(lambda s, seen=seen: seen.append([s.iteration, [repr(v) for v in s.weights]]))
                       .fit(df))
        fits = task["fits"][name]
        assert fits["chunked"] == fits["whole"] == fits["jobs"] == want, name
        assert fits["seen"] == seen and [i for i, _ in seen] == list(range(1, len(seen) + 1)), name
        assert chunks[:3] == [len(seen), 1, 0], name  # a chunk per iteration; one chunk; no barrier job
        chunks = chunks[3:]
    assert chunks[:1] == [1]  # the checkpointed fit
    ckpt = tmp_path / "classic-ckpt"
    assert task["checkpointed"] == numbers(ESTIMATORS["linear"]().setCheckpointDir(str(ckpt))
                                           .setCheckpointInterval(4).fit(df))
    assert task["checkpoints"] == sorted(os.listdir(ckpt)) == ["ckpt-00000012", "ckpt-00000015"]
    for name in task["checkpoints"]:
        ours, theirs = LocalDirs().read(str(tmp_path / "out" / "ckpt" / name)), LocalDirs().read(str(ckpt / name))
        assert ours[0] == theirs[0] and all((ours[1][k] == theirs[1][k]).all() for k in theirs[1]), name
    with pytest.raises(SGDDivergenceError) as e:
        ESTIMATORS["linear"]().setStepSize(1e4).setStandardization(False).fit(df)
    assert task["diverged"] == [e.value.iteration, e.value.what]
    assert task["three"] == {"model": numbers(ESTIMATORS["linear"]().fit(df.repartition(3))), "chunks": [1]}
    resume = task["resume"]  # stopped at 9 with checkpoints of 4 and 8; resumed from 8: the uninterrupted model
    assert resume["written"] == ["ckpt-00000004", "ckpt-00000008"] and resume["first_seen"] == [9]
    assert resume["model"] == task["checkpointed"]
    between = task["between"]  # another job ran between two chunks, not after the whole fit
    assert between["other_submitted"] < between["other_done"] < between["fit_done"] - 0.5, between
    from sparkgd.ml import SGDLinearRegression

    def make(iterations):
        return SGDLinearRegression(maxIter=iterations, stepSize=0.1, miniBatchFraction=0.5, tol=0.0)

    assert task["long"] == numbers(make(3000).fit(df))
    killed = task["killed"]  # the chunk whose tasks were killed ran again from its state: the classic model
    assert killed["failed"] == [1] and killed["model"] == numbers(make(1000).fit(df))
