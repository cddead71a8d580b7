"""Small deterministic data sets laid out over uneven partitions (one of them empty)."""

from __future__ import annotations

import numpy as np
from pyspark.mllib.linalg import SparseVector
from pyspark.mllib.regression import LabeledPoint

SIZES = (230, 0, 290, 180)


def make_problem(kind: str, n: int = sum(SIZES), d: int = 5, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    if kind == "regression":
        y = x @ w + 0.5 + 0.1 * rng.normal(size=n)
    else:
        y = (x @ w + 0.3 + 0.5 * rng.normal(size=n) > 0).astype(float)
    return x, y


def partitioned(sc, rows, sizes=SIZES):
    """An RDD whose partition p holds the next ``sizes[p]`` rows, in order."""
    parts, start = [], 0
    for s in sizes:
        parts.append(rows[start:start + s])
        start += s
    return sc.parallelize(range(len(sizes)), len(sizes)).flatMap(lambda p: parts[p])


def labeled_points(x, y, sparse=False):
    pts = []
    for xi, yi in zip(x, y):
        if sparse:
            f = np.where(np.abs(xi) < 0.6, 0.0, xi)
            nz = np.flatnonzero(f)
            pts.append(LabeledPoint(yi, SparseVector(len(f), nz, f[nz])))
        else:
            pts.append(LabeledPoint(yi, xi))
    return pts


def parts_of(x, y, sizes=SIZES):
    out, start = [], 0
    for s in sizes:
        out.append((x[start:start + s], y[start:start + s]))
        start += s
    return out
