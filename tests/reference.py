"""A plain-numpy MLlib mini-batch SGD, the oracle for the engine's arithmetic.

It walks the same partitions with :func:`sparkgd.core.sampling.sample_positions` (which the Spark
tests check against the JVM) and repeats ``runMiniBatchSGD`` one partition at a time.
"""

from __future__ import annotations

import numpy as np

from sparkgd.core.sampling import partition_seed, sample_positions


def reference_sgd(parts, gradient, updater, *, step_size=1.0, num_iterations=100, reg_param=0.0,
                  fraction=1.0, w0=None, tol=0.001, seed=42):
    """``parts`` is a list of ``(X, y)`` per partition (possibly empty)."""
    d = next(x.shape[1] for x, _ in parts if len(x))
    w = np.zeros(d) if w0 is None else np.asarray(w0, dtype=float)
    reg_val = updater.compute(w, np.zeros(d), 0.0, reg_param)[1]
    history, prev, converged, t = [], None, False, 0
    while not converged and t < num_iterations:
        t += 1
        g, loss, count = np.zeros(d), 0.0, 0
        for p, (x, y) in enumerate(parts):
            pos = sample_positions(len(y), fraction, partition_seed(seed + t, p))
            xs, ys = x[pos], y[pos]
            if len(ys):
                gs, ls = gradient.compute(xs, ys, w)
                g, loss, count = g + gs, loss + ls, count + len(ys)
        if count:
            history.append(loss / count + reg_val)
            new, reg_val = updater.compute(w, g / count, step_size / np.sqrt(t), reg_param)
            if prev is not None:
                converged = np.linalg.norm(new - w) < tol * max(np.linalg.norm(new), 1.0)
            prev, w = w, new
    return w, history, t
