"""Built-in synthetic data with known true weights, generated on the executors."""

from __future__ import annotations

from typing import Iterator

import numpy as np
from pyspark import RDD, SparkContext
from pyspark.mllib.regression import LabeledPoint


def true_model(num_features: int, seed: int, num_classes: int | None = None) -> tuple[np.ndarray, float | np.ndarray]:
    """The weights and intercept the synthetic data is drawn from; with ``num_classes``, a
    ``num_classes x num_features`` matrix and intercept vector, each centered (sum 0 over the classes)."""
    rng = np.random.default_rng([seed, 2**31])
    if num_classes is None:
        return np.round(rng.uniform(-2, 2, num_features), 2), 0.5
    w = np.round(rng.uniform(-2, 2, (num_classes, num_features)), 2)
    b = np.round(rng.uniform(-1, 1, num_classes), 2)
    return w - w.mean(axis=0), b - b.mean()


def partition_sizes(rows: int, partitions: int) -> list[int]:
    """Rows per partition of the synthetic data: as even as can be, the first partitions one row larger."""
    return [rows // partitions + (1 if p < rows % partitions else 0) for p in range(partitions)]


def partition_arrays(p: int, rows: int, w: np.ndarray, b: float | np.ndarray, *, seed: int, loss: str, noise: float,
                     num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Partition ``p``'s features and labels (see :func:`synthetic`), from a generator seeded with ``(seed, p)``."""
    rng = np.random.default_rng([seed, p])
    x = rng.standard_normal((rows, w.shape[-1]))
    m = x @ w.T + b
    if loss in ("squared", "huber"):
        y = m + noise * rng.standard_normal(rows)
    elif loss == "multinomial":
        e = np.exp(m - m.max(axis=1, keepdims=True))
        cdf = np.cumsum(e / e.sum(axis=1, keepdims=True), axis=1)
        y = np.minimum((rng.random((rows, 1)) > cdf).sum(axis=1), num_classes - 1).astype(float)
    else:
        y = (rng.random(rows) < 1.0 / (1.0 + np.exp(-m))).astype(float)
    return x, y


def synthetic(sc: SparkContext, *, rows: int = 100_000, num_features: int = 10, partitions: int = 2,
              seed: int = 42, loss: str = "squared", noise: float = 0.1, num_classes: int = 3
              ) -> tuple[RDD, np.ndarray, float | np.ndarray]:
    """``LabeledPoint`` rows ``y = x . w + b + noise`` (``loss='squared'`` or ``'huber'``), 0/1 labels
    drawn from ``P(y=1) = sigmoid(x . w + b)`` (``'logistic'``, ``'hinge'``), or class indices drawn
    from ``P(y=k) = softmax(W x + b)_k`` (``'multinomial'``, ``num_classes`` classes); ``x ~ N(0, I)``.

    Deterministic in ``seed`` and ``partitions``: partition ``p`` draws its rows from its own
    generator seeded with ``(seed, p)``.

    Returns
    -------
    (RDD of LabeledPoint, true weights, true intercept)
    """
    w, b = true_model(num_features, seed, num_classes if loss == "multinomial" else None)
    sizes = partition_sizes(rows, partitions)

    def gen(p: int, _: Iterator) -> Iterator[LabeledPoint]:
        x, y = partition_arrays(p, sizes[p], w, b, seed=seed, loss=loss, noise=noise, num_classes=num_classes)
        for yi, xi in zip(y, x):
            yield LabeledPoint(float(yi), xi)

    return sc.parallelize(range(partitions), partitions).mapPartitionsWithIndex(gen), w, b
