"""Run by test_reliability in a fresh process: ``python retry_run.py MASTER OUT.npy [flaky] [per-job]``.

Trains on fixed data with the given master (e.g. ``local[1]``, ``local[2,4]``); with ``flaky``
every gradient task of partition 0 fails on its first attempt (a resident task, then the
iteration's job task, which Spark retries); ``per-job`` turns resident tasks off.
"""

import os
import sys

import numpy as np
from pyspark import TaskContext
from pyspark.sql import SparkSession

from sparkgd import LeastSquaresGradient, SquaredL2Updater, run_minibatch_sgd


class FlakyGradient(LeastSquaresGradient):
    def loss_and_multiplier(self, margins, labels):
        tc = TaskContext.get()
        if tc is not None and tc.partitionId() == 0 and tc.attemptNumber() == 0:
            raise RuntimeError("injected task failure")
        return super().loss_and_multiplier(margins, labels)


def main(master: str, out: str, flaky: bool, per_job: bool) -> None:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = (SparkSession.builder.master(master).config("spark.ui.enabled", "false")
             .config("spark.sparkgd.residentTasks", str(not per_job).lower())
             .config("spark.ui.showConsoleProgress", "false").getOrCreate())
    spark.sparkContext.setLogLevel("OFF")
    rng = np.random.default_rng(4)
    x = rng.normal(size=(600, 4))
    y = x @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.1 * rng.normal(size=600)
    rdd = spark.sparkContext.parallelize(list(zip(y, x)), 3)
    gradient = FlakyGradient() if flaky else LeastSquaresGradient()
    res = run_minibatch_sgd(rdd, gradient, SquaredL2Updater(), step_size=0.5, num_iterations=8, reg_param=0.01,
                            mini_batch_fraction=0.3, convergence_tol=0.0)
    np.save(out, np.append(res.weights, res.loss_history))
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "flaky" in sys.argv[3:], "per-job" in sys.argv[3:])
