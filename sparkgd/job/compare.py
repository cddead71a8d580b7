"""Batch, mini-batch and stochastic gradient descent, and the optimizers, on the same data, side by side.

:func:`compare` runs the same engine with a different ``miniBatchFraction``: 1.0 (batch), 0.1
(mini-batch) and ``1 / rows`` (stochastic: about one row per iteration). :func:`compare_optimizers`
runs each update rule (:data:`OPTIMIZER_RUNS`) on the same blocks. After every iteration the
full-data loss of the current weights is computed on the driver (its time is not counted), so the
curves compare the same quantity, against iterations, rows processed or seconds.
"""

from __future__ import annotations

import time

import numpy as np
from pyspark.sql import SparkSession

from sparkgd.core.gradients import LeastSquaresGradient
from sparkgd.core.optimizers import make_optimizer
from sparkgd.core.schedules import make_schedule
from sparkgd.core.state import SGDState
from sparkgd.core.updaters import SimpleUpdater
from sparkgd.engine.blocks import build_blocks
from sparkgd.engine.loop import descend
from sparkgd.job.datasets import synthetic


def compare(spark: SparkSession, *, rows: int = 20_000, features: int = 10, partitions: int = 2,
            iterations: int = 100, step_size: float = 0.5, seed: int = 42) -> dict[str, dict[str, list[float]]]:
    """Curves ``{variant: {"iteration", "rows_processed", "loss"}}`` on synthetic least squares."""
    data, _, _ = synthetic(spark.sparkContext, rows=rows, num_features=features, partitions=partitions, seed=seed)
    points = data.collect()
    x = np.array([p.features.toArray() for p in points])
    y = np.array([p.label for p in points])
    x1 = np.hstack([x, np.ones((len(y), 1))])
    blocks = build_blocks(data)
    curves: dict[str, dict[str, list[float]]] = {}
    try:
        for name, fraction in [("batch GD (fraction 1.0)", 1.0), ("mini-batch GD (fraction 0.1)", 0.1),
                               (f"stochastic GD (fraction 1/{rows}, ~1 row)", 1.0 / rows)]:
            curve: dict[str, list[float]] = {"iteration": [], "rows_processed": [], "loss": []}
            seen = [0]

            def record(state: SGDState, curve=curve, seen=seen) -> None:
                seen[0] += state.rows_sampled
                r = x1 @ state.weights - y
                curve["iteration"].append(state.iteration)
                curve["rows_processed"].append(max(seen[0], 1))
                curve["loss"].append(float(0.5 * np.mean(r * r)))

            w0 = np.zeros(features + 1)
            w0[-1] = 1.0
            descend(blocks, LeastSquaresGradient(), SimpleUpdater(), w0, step_size=step_size,
                    num_iterations=iterations, mini_batch_fraction=fraction, convergence_tol=0.0, seed=seed,
                    fit_intercept=True, callback=record)
            curves[name] = curve
    finally:
        blocks.unpersist()
    return curves


# (label, optimizer, schedule, step size, miniBatchFraction): settings that work on standardized features
OPTIMIZER_RUNS = [
    ("sgd (MLlib), f=0.1", "sgd", "invsqrt", 0.5, 0.1),
    ("momentum, f=0.1", "momentum", "constant", 0.02, 0.1),
    ("nesterov, f=0.1", "nesterov", "constant", 0.02, 0.1),
    ("adagrad, f=0.1", "adagrad", "constant", 0.5, 0.1),
    ("rmsprop, f=0.1", "rmsprop", "exponential", 0.2, 0.1),
    ("adam, f=0.1", "adam", "exponential", 0.3, 0.1),
    ("lbfgs, f=1.0", "lbfgs", "invsqrt", 1.0, 1.0),
]


def compare_optimizers(spark: SparkSession, *, rows: int = 20_000, features: int = 10, partitions: int = 2,
                       iterations: int = 100, seed: int = 42) -> dict[str, dict[str, list[float]]]:
    """Curves ``{optimizer: {"iteration", "seconds", "loss"}}`` on synthetic least squares.

    ``seconds`` is the time since the call started (blocks already built), without the time
    spent computing the full-data loss for the curve.
    """
    data, _, _ = synthetic(spark.sparkContext, rows=rows, num_features=features, partitions=partitions, seed=seed)
    points = data.collect()
    x1 = np.hstack([np.array([p.features.toArray() for p in points]), np.ones((len(points), 1))])
    y = np.array([p.label for p in points])
    blocks = build_blocks(data)
    curves: dict[str, dict[str, list[float]]] = {}
    try:
        for label, name, schedule, step, fraction in OPTIMIZER_RUNS:
            curve: dict[str, list[float]] = {"iteration": [], "seconds": [], "loss": []}
            clock = {"start": time.perf_counter(), "spent": 0.0}

            def record(state: SGDState, curve=curve, clock=clock) -> None:
                now = time.perf_counter()
                r = x1 @ state.weights - y
                curve["iteration"].append(state.iteration)
                curve["seconds"].append(now - clock["start"] - clock["spent"])
                curve["loss"].append(float(0.5 * np.mean(r * r)))
                clock["spent"] += time.perf_counter() - now

            w0 = np.zeros(features + 1)
            w0[-1] = 1.0
            clock["start"] = time.perf_counter()
            descend(blocks, LeastSquaresGradient(), SimpleUpdater(), w0, optimizer=make_optimizer(name),
                    step_size=make_schedule(schedule, step), num_iterations=iterations, mini_batch_fraction=fraction,
                    convergence_tol=0.0, seed=seed, fit_intercept=True, callback=record)
            curves[label] = curve
    finally:
        blocks.unpersist()
    return curves
