"""Task failures, retries, parallelism and interrupted runs do not change the model."""

import contextlib
import importlib.util
import logging
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pyspark
import pytest

import sparkgd.rdd as sgd
from sparkgd.ml import SGDLogisticRegression
from tests.spark.data import labeled_points, make_problem, partitioned

ROOT = pathlib.Path(__file__).resolve().parents[2]


def child_env():
    env = dict(os.environ, PYTHONPATH=str(ROOT), SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable,
               PYSPARK_DRIVER_PYTHON=sys.executable)
    env.pop("SPARK_HOME", None)
    return env


def test_retried_tasks_and_parallelism_give_bit_identical_weights(tmp_path):
    runs = {}
    procs = {}
    # serial: one job per iteration on one core; flaky: 2 resident tasks for 3 partitions until partition
    # 0's fails, then one job per iteration, whose first task for partition 0 fails and is retried
    for name, master, flags in [("serial", "local[1]", ["per-job"]), ("flaky", "local[2,4]", ["flaky"])]:
        out = tmp_path / f"{name}.npy"
        procs[name] = (subprocess.Popen([sys.executable, str(ROOT / "tests" / "spark" / "retry_run.py"), master,
                                         str(out), *flags], env=child_env(),
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT), out)
    for name, (p, out) in procs.items():
        log, _ = p.communicate(timeout=240)
        assert p.returncode == 0, log.decode()[-3000:]
        runs[name] = np.load(out)
        if name == "flaky":
            assert b"resident tasks lost" in log, log.decode()[-3000:]
    np.testing.assert_array_equal(runs["flaky"], runs["serial"])


@pytest.fixture(scope="module")
def rdd(sc):
    x, y = make_problem("classification")
    return partitioned(sc, labeled_points(x, y)).cache()


def test_rdd_api_resumes_from_a_checkpoint_to_the_same_model(rdd, tmp_path):
    kw = dict(step=0.5, miniBatchFraction=0.4, intercept=True, convergenceTol=0.0)
    whole = sgd.LogisticRegressionWithSGD.train(rdd, iterations=12, **kw)
    ckpt = str(tmp_path / "ckpt")
    first = sgd.LogisticRegressionWithSGD.train(rdd, iterations=8, checkpointDir=ckpt, checkpointInterval=3, **kw)
    assert sorted(os.listdir(ckpt)) == ["ckpt-00000006", "ckpt-00000008"]  # every 3, the last, newest two kept
    with iterations_run() as ran:
        resumed = sgd.LogisticRegressionWithSGD.train(rdd, iterations=12, checkpointDir=ckpt, resume=True, **kw)
    assert ran == [9, 10, 11, 12]  # started from the checkpoint of iteration 8, not from scratch
    np.testing.assert_array_equal(resumed.weights.toArray(), whole.weights.toArray())
    assert resumed.intercept == whole.intercept and resumed.lossHistory == whole.lossHistory
    assert first.numIterations == 8 and resumed.numIterations == 12
    with pytest.raises(ValueError, match=r"other settings \(these differ: step\)"):
        sgd.LogisticRegressionWithSGD.train(rdd, iterations=12, checkpointDir=ckpt, resume=True,
                                            **dict(kw, step=0.25))
    with pytest.raises(ValueError, match=r"these differ: fraction, reg\)"):
        sgd.LogisticRegressionWithSGD.train(rdd, iterations=12, checkpointDir=ckpt, resume=True,
                                            **dict(kw, miniBatchFraction=0.5), regParam=0.5)


def test_resuming_restores_the_convergence_test(rdd, tmp_path):
    kw = dict(step=0.5, miniBatchFraction=1.0, convergenceTol=0.02)
    whole = sgd.LogisticRegressionWithSGD.train(rdd, iterations=200, **kw)
    stop = whole.numIterations
    assert 3 <= stop < 200
    ckpt = str(tmp_path / "ckpt")
    sgd.LogisticRegressionWithSGD.train(rdd, iterations=stop - 1, checkpointDir=ckpt, checkpointInterval=1, **kw)
    with iterations_run() as ran:
        resumed = sgd.LogisticRegressionWithSGD.train(rdd, iterations=200, checkpointDir=ckpt, resume=True, **kw)
    # the first resumed update is tested against the restored previous weights, so it stops where the whole run did
    assert ran == [stop] and resumed.numIterations == stop
    np.testing.assert_array_equal(resumed.weights.toArray(), whole.weights.toArray())


@contextlib.contextmanager
def iterations_run():
    """The iterations a training call ran, from the loop's ``iteration t done`` records."""
    ran = []

    class Records(logging.Handler):
        def emit(self, record):
            if record.msg == "iteration %d done":
                ran.append(record.args[0])

    log = logging.getLogger("sparkgd")
    handler, level = Records(logging.DEBUG), log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        yield ran
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def test_dataframe_api_resumes_from_a_checkpoint(spark, tmp_path):
    x, y = make_problem("classification")
    df = spark.createDataFrame([(float(b), pyspark.ml.linalg.Vectors.dense(a)) for a, b in zip(x, y)],
                               ["label", "features"]).coalesce(2)
    kw = dict(miniBatchFraction=0.5, tol=0.0, regParam=0.01)
    whole = SGDLogisticRegression(maxIter=9, **kw).fit(df)
    ckpt = str(tmp_path / "ckpt")
    SGDLogisticRegression(maxIter=5, checkpointDir=ckpt, checkpointInterval=2, **kw).fit(df)
    with iterations_run() as ran:
        resumed = SGDLogisticRegression(maxIter=9, checkpointDir=ckpt, resume=True, **kw).fit(df)
    assert ran == [6, 7, 8, 9]
    np.testing.assert_array_equal(resumed.coefficients.toArray(), whole.coefficients.toArray())
    assert resumed.summary.objectiveHistory == whole.summary.objectiveHistory


def test_killed_job_resumes_to_the_uninterrupted_model(spark, tmp_path):
    args = ["--rows", "20000", "--iterations", "40", "--mini-batch-fraction", "0.5", "--loss", "logistic",
            "--log-every", "1", "--test-fraction", "0"]
    ckpt = tmp_path / "ckpt"
    submit = pathlib.Path(pyspark.__file__).parent / "bin" / "spark-submit"
    # one job per iteration (no resident tasks): slow enough to be killed mid-training; the resumed
    # and the whole runs below use resident tasks, so this also checks that the two engines agree
    proc = subprocess.Popen([str(submit), "--master", "local[2]", "--conf", "spark.ui.enabled=false",
                             "--conf", "spark.sparkgd.residentTasks=false",
                             str(ROOT / "jobs" / "train_linear.py"), *args, "--checkpoint-dir", str(ckpt),
                             "--checkpoint-interval", "3"], env=child_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 180
        while not (ckpt / "ckpt-00000006").exists():
            assert proc.poll() is None, "the job ended before it could be killed"
            assert time.time() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # mid-training, no chance to clean up
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = max(int(n[5:]) for n in os.listdir(ckpt) if n.startswith("ckpt-"))
    assert done < 40, "the job was killed before it finished"

    spec = importlib.util.spec_from_file_location("train_linear", ROOT / "jobs" / "train_linear.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    out_resumed, out_whole = tmp_path / "resumed", tmp_path / "whole"
    assert job.main([*args, "--checkpoint-dir", str(ckpt), "--resume", "--output", str(out_resumed)], spark=spark) == 0
    assert job.main([*args, "--output", str(out_whole)], spark=spark) == 0
    import json
    a = json.loads((out_resumed / "metrics.json").read_text())
    b = json.loads((out_whole / "metrics.json").read_text())
    assert a["weights"] == b["weights"] and a["intercept"] == b["intercept"] and a["iterations"] == 40


def test_dataframe_model_load_refuses_foreign_and_missing_directories(spark, tmp_path):
    from sparkgd.core.persistence import ModelFormatError
    from sparkgd.ml import SGDLinearRegressionModel
    from sparkgd.rdd import LinearRegressionModel

    LinearRegressionModel([1.0], 0.0).save(spark.sparkContext, str(tmp_path / "rdd-model"))
    with pytest.raises(ModelFormatError):
        SGDLinearRegressionModel.load(str(tmp_path / "rdd-model"))
    with pytest.raises(ModelFormatError, match="not a readable sparkgd model"):
        SGDLinearRegressionModel.load(str(tmp_path / "nothing-here"))


def test_checkpoints_through_hadoop_filesystems_resume_to_the_same_model(rdd, tmp_path, monkeypatch):
    # what checkpointDir=hdfs://... does, exercised through Hadoop's FileSystem with file: URIs
    from sparkgd.engine import fs

    monkeypatch.setattr(fs, "is_local", lambda path: not path.startswith("file:"))
    kw = dict(step=0.5, miniBatchFraction=0.4, convergenceTol=0.0)
    whole = sgd.LogisticRegressionWithSGD.train(rdd, iterations=10, **kw)
    uri = (tmp_path / "ckpt").as_uri()
    sgd.LogisticRegressionWithSGD.train(rdd, iterations=7, checkpointDir=uri, checkpointInterval=3, **kw)
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["ckpt-00000006", "ckpt-00000007"]  # renamed in, old removed
    with iterations_run() as ran:
        resumed = sgd.LogisticRegressionWithSGD.train(rdd, iterations=10, checkpointDir=uri, resume=True, **kw)
    assert ran == [8, 9, 10]
    np.testing.assert_array_equal(resumed.weights.toArray(), whole.weights.toArray())
