"""Built-in synthetic data with known true weights, generated on the executors."""

from __future__ import annotations

from typing import Iterator

import numpy as np
from pyspark import RDD, SparkContext
from pyspark.mllib.regression import LabeledPoint


def true_model(num_features: int, seed: int) -> tuple[np.ndarray, float]:
    """The weights and intercept the synthetic data is drawn from."""
    rng = np.random.default_rng([seed, 2**31])
    return np.round(rng.uniform(-2, 2, num_features), 2), 0.5


def synthetic(sc: SparkContext, *, rows: int = 100_000, num_features: int = 10, partitions: int = 2,
              seed: int = 42, loss: str = "squared", noise: float = 0.1) -> tuple[RDD, np.ndarray, float]:
    """``LabeledPoint`` rows ``y = x . w + b + noise`` (``loss='squared'``), or 0/1 labels drawn
    from ``P(y=1) = sigmoid(x . w + b)`` (``'logistic'``, ``'hinge'``); ``x ~ N(0, I)``.

    Deterministic in ``seed`` and ``partitions``: partition ``p`` draws its rows from its own
    generator seeded with ``(seed, p)``.

    Returns
    -------
    (RDD of LabeledPoint, true weights, true intercept)
    """
    w, b = true_model(num_features, seed)
    sizes = [rows // partitions + (1 if p < rows % partitions else 0) for p in range(partitions)]

    def gen(p: int, _: Iterator) -> Iterator[LabeledPoint]:
        rng = np.random.default_rng([seed, p])
        x = rng.standard_normal((sizes[p], num_features))
        m = x @ w + b
        if loss == "squared":
            y = m + noise * rng.standard_normal(sizes[p])
        else:
            y = (rng.random(sizes[p]) < 1.0 / (1.0 + np.exp(-m))).astype(float)
        for yi, xi in zip(y, x):
            yield LabeledPoint(float(yi), xi)

    return sc.parallelize(range(partitions), partitions).mapPartitionsWithIndex(gen), w, b
