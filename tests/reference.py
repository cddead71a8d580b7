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


def reference_rule(parts, gradient, rule, *, steps, num_iterations, l1=0.0, l2=0.0, fraction=1.0, seed=42,
                   fit_intercept=False, mu=0.9, b1=0.9, b2=0.999, eps=1e-8):
    """The update rules of momentum, Nesterov, AdaGrad, RMSProp, Adam and AdamW from their papers, on the
    rows the engine samples: per partition the sums the engine computes, added in partition order.

    ``rule`` is one of ``momentum``, ``nesterov``, ``adagrad``, ``rmsprop``, ``adam``, ``adamw``; L2 is
    added to the gradient (AdamW: subtracted from the weights after the step), L1 soft-thresholds
    with the step divided by the adaptive denominator. ``steps(t)`` is the step of iteration ``t``.
    Returns the weights after every iteration.
    """
    d = next(x.shape[1] for x, _ in parts if x.shape[0]) + fit_intercept
    mask = np.arange(d) < d - 1 if fit_intercept else np.ones(d, dtype=bool)
    w = np.zeros(d)
    if fit_intercept:
        w[-1] = 1.0
    v, m, k, out = np.zeros(d), np.zeros(d), 0, []
    for t in range(1, num_iterations + 1):
        g_sum, wsum = None, 0.0
        for p, (x, y) in enumerate(parts):
            pos = sample_positions(x.shape[0], fraction, partition_seed(seed + t, p))
            xs, ys = x[pos], y[pos]
            if xs.shape[0] == 0:
                continue
            margins = xs @ (w[:-1] if fit_intercept else w)
            if fit_intercept:
                margins = margins + w[-1]
            _, mult = gradient.loss_and_multiplier(margins, ys)
            g = np.asarray(xs.T @ mult).ravel()
            if fit_intercept:
                g = np.append(g, mult.sum())
            g_sum = g if g_sum is None else g_sum + g
            wsum = wsum + float(len(ys))
        if g_sum is None:
            out.append(w)
            continue
        g = (g_sum + 0.0) / wsum
        eta = steps(t)
        decay = l2 * np.where(mask, w, 0.0)
        if l2 > 0 and rule != "adamw":
            g = g + decay
        k += 1
        denom = None
        if rule in ("momentum", "nesterov"):
            v = mu * v + g
            u = g + mu * v if rule == "nesterov" else v
        elif rule == "adagrad":
            v = v + g * g
            denom = np.sqrt(v) + eps
            u = g / denom
        elif rule == "rmsprop":
            v = b2 * v + (1.0 - b2) * (g * g)
            denom = np.sqrt(v / (1.0 - b2 ** k)) + eps
            u = g / denom
        else:
            m = b1 * m + (1.0 - b1) * g
            v = b2 * v + (1.0 - b2) * (g * g)
            denom = np.sqrt(v / (1.0 - b2 ** k)) + eps
            u = (m / (1.0 - b1 ** k)) / denom
        new = w - eta * u
        if l2 > 0 and rule == "adamw":
            new = new - eta * decay
        if l1 > 0:
            shrink = eta * l1 if denom is None else eta * l1 / denom
            new = np.where(mask, np.sign(new) * np.maximum(0.0, np.abs(new) - shrink), new)
        w = new
        out.append(w)
    return out
