"""StreamingSGD and jobs/train_stream.py: each micro-batch applied once, across failures and restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors

from sparkgd.core.errors import CheckpointMismatchError
from sparkgd.ml import SGDLinearRegression, SGDLinearRegressionModel, SGDLogisticRegression, StreamingSGD
from tests.spark.test_job import ROOT, load_job

W = np.array([1.0, -2.0, 0.5])


def write_parquet_batches(spark, directory, batches=4, n=50, seed=0):
    rng = np.random.default_rng(seed)
    schema = None
    for b in range(batches):
        x = rng.standard_normal((n, 3))
        y = x @ W + 0.3 + 0.05 * rng.standard_normal(n)
        df = spark.createDataFrame([(float(y[i]), Vectors.dense(x[i])) for i in range(n)], ["label", "features"])
        df.coalesce(1).write.parquet(os.path.join(directory, f"part-{b}"))  # one file per batch
        schema = df.schema
    return schema


def run_query(spark, trainer, source_dir, schema, checkpoint):
    stream = spark.readStream.schema(schema).option("maxFilesPerTrigger", 1).parquet(source_dir + "/*")
    query = trainer.trainOn(stream).option("checkpointLocation", checkpoint).trigger(availableNow=True).start()
    query.awaitTermination()


class Crashing(StreamingSGD):
    """Fails batch ``when`` before (``after=False``) or after its state is saved, once."""

    def __init__(self, *args, when, after):
        super().__init__(*args)
        self.when, self.after, self.seen = when, after, []

    def process(self, batch, batch_id):
        self.seen.append(batch_id)
        if batch_id == self.when and not self.after:
            raise RuntimeError("killed before the state was saved")
        super().process(batch, batch_id)
        if batch_id == self.when:
            raise RuntimeError("killed after the state was saved")


def test_failed_batches_are_applied_exactly_once_after_a_restart(spark, tmp_path):
    from pyspark.errors import StreamingQueryException

    src = str(tmp_path / "in")
    schema = write_parquet_batches(spark, src)
    est = SGDLinearRegression(maxIter=6, standardization=False, optimizer="adam", stepSize=0.1,
                              stepSchedule="constant", miniBatchFraction=0.5, tol=0.0)
    whole = StreamingSGD(est, str(tmp_path / "state-a"))
    run_query(spark, whole, src, schema, str(tmp_path / "query-a"))
    assert whole.lastBatchId == 3
    want = whole.latestModel()

    state, query = str(tmp_path / "state-b"), str(tmp_path / "query-b")
    first = Crashing(est, state, when=1, after=False)  # batch 1 dies before its state: it must run again
    with pytest.raises(StreamingQueryException):
        run_query(spark, first, src, schema, query)
    assert first.lastBatchId == 0
    second = Crashing(est, state, when=2, after=True)  # batch 2 dies after its state: Spark runs it again
    assert second.lastBatchId == 0  # a new trainer goes on from the state directory
    with pytest.raises(StreamingQueryException):
        run_query(spark, second, src, schema, query)
    assert second.seen == [1, 2] and second.lastBatchId == 2
    third = StreamingSGD(est, state)
    run_query(spark, third, src, schema, query)
    assert third.lastBatchId == 3
    got = third.latestModel()
    assert got.coefficients.toArray().tobytes() == want.coefficients.toArray().tobytes()
    assert got.intercept == want.intercept
    assert third._online.state.iteration == whole._online.state.iteration == 4 * 6  # none lost, none repeated
    assert np.abs(got.coefficients.toArray() - W).max() < 0.5  # learning: from 0, the error was 2


def test_a_plain_rerun_of_every_batch_would_differ(spark, tmp_path):
    """The exactly-once test above can fail: applying a batch twice gives another model."""
    src = str(tmp_path / "in")
    schema = write_parquet_batches(spark, src, batches=2)
    est = SGDLinearRegression(maxIter=4, standardization=False, stepSize=0.1, tol=0.0)
    once = StreamingSGD(est, str(tmp_path / "s1"))
    run_query(spark, once, src, schema, str(tmp_path / "q1"))
    twice = StreamingSGD(est, str(tmp_path / "s2"))
    run_query(spark, twice, src, schema, str(tmp_path / "q2"))
    batch = spark.read.parquet(src + "/part-1")
    twice.lastBatchId = None  # forget that batch 1 was applied
    twice.process(batch, 1)
    assert twice.latestModel().coefficients != once.latestModel().coefficients


def test_the_trainer_refuses_what_it_cannot_carry_from_batch_to_batch(spark, tmp_path):
    with pytest.raises(ValueError, match="standardization=False"):
        StreamingSGD(SGDLinearRegression(), str(tmp_path / "s"))
    with pytest.raises(ValueError, match="averageFrom or validationFraction"):
        StreamingSGD(SGDLinearRegression(standardization=False, averageFrom=3), str(tmp_path / "s"))
    src = str(tmp_path / "in")
    schema = write_parquet_batches(spark, src, batches=1)
    run_query(spark, StreamingSGD(SGDLinearRegression(standardization=False, maxIter=2), str(tmp_path / "s")), src,
              schema, str(tmp_path / "q"))
    with pytest.raises(CheckpointMismatchError):  # a state of other settings is not gone on from
        StreamingSGD(SGDLinearRegression(standardization=False, maxIter=3), str(tmp_path / "s"))
    logistic = StreamingSGD(SGDLogisticRegression(standardization=False, family="multinomial", maxIter=2),
                            str(tmp_path / "m"))
    three = spark.createDataFrame([(float(k % 3), Vectors.dense([k, 1.0])) for k in range(9)], ["label", "features"])
    logistic.process(three, 0)
    four = spark.createDataFrame([(float(k % 4), Vectors.dense([k, 1.0])) for k in range(8)], ["label", "features"])
    with pytest.raises(ValueError, match="has 2 features and 4 classes; the model trained so far has 2 features "
                                         "and 3 classes"):
        logistic.process(four, 1)


def _libsvm_batches(directory, batches=4, n=40, seed=1):
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    for b in range(batches):
        x = rng.standard_normal((n, 3))
        y = x @ W + 0.3 + 0.05 * rng.standard_normal(n)
        lines = [f"{y[i]:.6f} " + " ".join(f"{j + 1}:{x[i, j]:.6f}" for j in range(3)) for i in range(n)]
        with open(os.path.join(directory, f"b{b}.libsvm"), "w") as f:
            f.write("\n".join(lines) + "\n")


def _job_argv(src, state, out):
    return ["--input", src, "--format", "libsvm", "--num-features", "3", "--state-dir", state, "--output", out,
            "--iterations", "20", "--optimizer", "adam", "--step-size", "0.05", "--schedule", "constant",
            "--mini-batch-fraction", "0.5"]


def test_the_job_killed_mid_stream_and_restarted_ends_with_the_uninterrupted_model(spark, tmp_path):
    src = str(tmp_path / "in")
    _libsvm_batches(src)
    job = load_job("train_stream")
    whole = str(tmp_path / "whole")
    assert job.main(_job_argv(src, str(tmp_path / "state-a"), whole) + ["--available-now"], spark=spark) == 0
    want = SGDLinearRegressionModel.load(os.path.join(whole, "model"))
    lines = [json.loads(s) for s in open(os.path.join(whole, "metrics.jsonl"))]
    assert [ln["batchId"] for ln in lines] == [0, 1, 2, 3] and lines[-1]["iteration"] == 80
    assert [len(ln["files"]) for ln in lines] == [1, 1, 1, 1]

    state, out = str(tmp_path / "state-b"), str(tmp_path / "out")
    env = dict(os.environ, PYSPARK_SUBMIT_ARGS="--master local[2] --conf spark.ui.enabled=false pyspark-shell")
    proc = subprocess.Popen([sys.executable, str(ROOT / "jobs" / "train_stream.py"), *_job_argv(src, state, out)],
                            env=env, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not os.path.exists(os.path.join(state, "batch-000000000001")):  # two batches applied
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()[-3000:]
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the Python driver and its JVM, mid-stream
        proc.wait()
    killed_at = max(int(n[6:]) for n in os.listdir(state) if n.startswith("batch-"))
    assert killed_at < 3  # it did not get to the end
    assert job.main(_job_argv(src, state, out) + ["--available-now"], spark=spark) == 0
    got = SGDLinearRegressionModel.load(os.path.join(out, "model"))
    assert got.coefficients.toArray().tobytes() == want.coefficients.toArray().tobytes()
    assert got.intercept == want.intercept
    ids = [json.loads(s)["batchId"] for s in open(os.path.join(out, "metrics.jsonl"))]
    assert len(ids) == len(set(ids)) and ids[-1] == 3  # no batch applied twice


def test_the_jobs_bad_input_and_options(spark, tmp_path, capsys):
    job = load_job("train_stream")
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.libsvm").write_text("1.0 1:0.5\n2.0 1:0.5 2:x\n")
    argv = ["--input", str(src), "--num-features", "3", "--state-dir", str(tmp_path / "s"), "--available-now"]
    assert job.main(argv, spark=spark) == 3
    err = capsys.readouterr().err
    assert "a.libsvm:2: value 'x' of index 2 is not a number" in err and len(err.strip().splitlines()) == 1
    # #21.15: neither Spark's query log nor py4j's callback log repeats the trace (about 130 lines before)
    import logging

    jvm_logger = spark.sparkContext._jvm.org.apache.logging.log4j.LogManager.getLogger(
        "org.apache.spark.sql.execution.streaming.runtime.MicroBatchExecution")
    assert str(jvm_logger.getLevel()) == "FATAL" and logging.getLogger("py4j.clientserver").level == logging.CRITICAL
    assert job.main(argv[:2] + argv[4:], spark=spark) == 2
    assert "--num-features is required for libsvm input" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        job.main(["--input", str(src)], spark=spark)
    assert e.value.code == 2 and "the following arguments are required: --state-dir" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_job_reads_csv_and_parquet_files_as_they_arrive(spark, tmp_path, fmt):
    rng = np.random.default_rng(2)
    src = tmp_path / "in"
    src.mkdir()
    for b in range(2):
        x = rng.standard_normal((30, 3))
        y = x @ W + 0.3
        if fmt == "csv":
            rows = "\n".join(",".join(f"{v:.6f}" for v in (*x[i], y[i])) for i in range(30))
            (src / f"b{b}.csv").write_text("a,b,c,label\n" + rows + "\n")
        else:
            spark.createDataFrame([(*map(float, x[i]), float(y[i])) for i in range(30)], ["a", "b", "c", "label"]) \
                .coalesce(1).write.parquet(str(src / f"b{b}"))
    out = tmp_path / "out"
    argv = ["--input", str(src) if fmt == "csv" else str(src / "*"), "--format", fmt, "--state-dir",
            str(tmp_path / "s"), "--output", str(out), "--iterations", "30", "--optimizer", "lbfgs",
            "--mini-batch-fraction", "1.0", "--available-now"]
    assert load_job("train_stream").main(argv, spark=spark) == 0
    lines = [json.loads(s) for s in open(out / "metrics.jsonl")]
    assert [ln["batchId"] for ln in lines] == [0, 1]
    model = SGDLinearRegressionModel.load(str(out / "model"))
    np.testing.assert_allclose(model.coefficients.toArray(), W, atol=1e-4)
