"""Batch, mini-batch and stochastic gradient descent on the same data, side by side.

Each variant runs the same engine with a different ``miniBatchFraction``: 1.0 (batch), 0.1
(mini-batch) and ``1 / rows`` (stochastic: about one row per iteration). After every iteration
the full-data loss of the current weights is computed on the driver, so the curves compare the
same quantity, against iterations and against rows processed.
"""

from __future__ import annotations

import numpy as np
from pyspark.sql import SparkSession

from sparkgd.core.gradients import LeastSquaresGradient
from sparkgd.core.state import SGDState
from sparkgd.core.updaters import SimpleUpdater
from sparkgd.engine.blocks import BlockedData
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
    blocks = BlockedData(data)
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
