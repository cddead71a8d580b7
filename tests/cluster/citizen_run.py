"""Run under spark-submit by test_standalone: ``citizen_run.py OUT.json``.

Trains on an uncached input, on a cached one (twice: the second call reuses its blocks) and in
shares mode (8 partitions on 2 slots, twice on the same blocks), counts the block builds,
releases everything and stops. ``train_all`` also runs in the test's local[2] session, so the
test can compare the models.
"""

from __future__ import annotations

import json
import logging
import sys

import numpy as np


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def train_all(spark, iterations: int = 30) -> dict:
    from sparkgd import LogisticGradient, SquaredL2Updater, run_minibatch_sgd
    from sparkgd.engine.blocks import build_blocks

    logger = logging.getLogger("sparkgd")
    lines = Lines()
    logger.addHandler(lines)
    logger.setLevel(logging.DEBUG)
    sc = spark.sparkContext
    rng = np.random.default_rng(8)
    x = rng.normal(size=(3000, 6))
    y = (x @ rng.normal(size=6) + 0.3 * rng.normal(size=3000) > 0).astype(float)
    rows = list(zip(y.tolist(), x))
    kw = dict(step_size=1.0, num_iterations=iterations, reg_param=0.01, mini_batch_fraction=0.4, convergence_tol=0.0)

    def train(data):
        return run_minibatch_sgd(data, LogisticGradient(), SquaredL2Updater(), **kw).weights.tolist()

    out = {"uncached": train(sc.parallelize(rows, 2))}
    cached = sc.parallelize(rows, 2).cache()
    out["cached"] = [train(cached), train(cached)]
    shares = build_blocks(sc.parallelize(rows, 8))
    out["shares"] = [train(shares), train(shares)]
    out["shares_builds"] = shares.builds.value
    shares.unpersist(blocking=True)
    cached.unpersist(blocking=True)
    logger.removeHandler(lines)
    out["log"] = [line for line in lines.lines if not line.startswith("iteration")]
    return out


if __name__ == "__main__":
    from pyspark.sql import SparkSession

    session = SparkSession.builder.appName("sparkgd-citizen").getOrCreate()
    result = train_all(session, *map(int, sys.argv[2:3]))
    session.stop()
    with open(sys.argv[1], "w") as f:
        json.dump(result, f)
