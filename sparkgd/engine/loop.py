"""The distributed mini-batch SGD loop, MLlib's ``GradientDescent.runMiniBatchSGD``, over Spark.

For ``t = 1 .. T``: send ``w`` to the executors; sample ``miniBatchFraction`` of every partition exactly
as the JVM's ``RDD.sample(False, fraction, seed + t)`` would; ``treeAggregate`` the sums of
gradients and losses and the row count; then on the driver, if any row was sampled,

.. math::

    \\text{loss}_t = \\frac{1}{b}\\sum_{i \\in B_t} l(x_i \\cdot w, y_i) + R(w_{t-1}),
    \\qquad (w_t, R(w_t)) = \\text{updater}\\left(w_{t-1}, \\frac{1}{b}\\sum_{i \\in B_t} \\nabla l_i,
    \\eta_t, \\lambda\\right)

with ``eta_t = stepSize / sqrt(t)`` by default. Training stops early once
``||w_t - w_{t-1}|| < tol * max(||w_t||, 1)`` (checked from the second update on).
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from typing import Callable, Sequence

import numpy as np
from pyspark import RDD

from sparkgd.core import checkpoint
from sparkgd.core.errors import SGDDivergenceError
from sparkgd.core.gradients import Gradient
from sparkgd.core.schedules import StepSize, as_schedule
from sparkgd.core.state import SGDResult, SGDState, as_weights, check_params
from sparkgd.core.updaters import Updater
from sparkgd.engine import fs
from sparkgd.engine.aggregation import IterationSums
from sparkgd.engine.blocks import BlockedData
from sparkgd.engine.reuse import blocks_for
from sparkgd.engine.turns import training_call

log = logging.getLogger("sparkgd")


def descend(blocks: BlockedData, gradient: Gradient, updater: Updater, initial_weights: np.ndarray, *,
            step_size: StepSize = 1.0, num_iterations: int = 100, reg_param: float = 0.0,
            mini_batch_fraction: float = 1.0, convergence_tol: float = 0.001, seed: int = 42,
            aggregation_depth: int = 2, fit_intercept: bool = False, scale: np.ndarray | None = None,
            penalized: np.ndarray | None = None, state: SGDState | None = None,
            callback: Callable[[SGDState], None] | None = None, checkpoint_dir: str | None = None,
            checkpoint_interval: int = 10, resume: bool = False) -> SGDResult:
    """The SGD loop over already blocked data; see the module docstring.

    ``state`` resumes from a given :class:`SGDState`; ``callback`` is called with the state
    after every iteration (progress), on the driver; it may run Spark jobs of its own (idle
    :mod:`sparkgd.engine.resident` tasks hand their slots over to them). With
    ``checkpoint_dir`` the state is saved every ``checkpoint_interval`` iterations, and
    ``resume`` continues from the newest checkpoint there.
    """
    checkpointer = None
    if checkpoint_dir is not None:
        fp = checkpoint.fingerprint(
            gradient=type(gradient).__name__, updater=repr(updater), step=repr(as_schedule(step_size)),
            reg=reg_param, fraction=mini_batch_fraction, tol=convergence_tol, seed=seed,
            w0=np.asarray(initial_weights, dtype=np.float64).tolist(), intercept=fit_intercept,
            scale=None if scale is None else np.asarray(scale).tolist(), rows=blocks.count)
        dirs = None if fs.is_local(checkpoint_dir) else fs.HadoopDirs(blocks.rdd.context)
        checkpointer = checkpoint.Checkpointer(checkpoint_dir, checkpoint_interval, fp, dirs=dirs)
        if resume and state is None:
            state = checkpoint.latest(checkpoint_dir, fp, dirs=dirs)
            if state is not None:
                log.info("resuming from the checkpoint of iteration %d", state.iteration)
    schedule = as_schedule(step_size)
    w0 = np.array(initial_weights, dtype=np.float64)
    n = blocks.count
    if n == 0:
        log.warning("GradientDescent.runMiniBatchSGD returning initial weights, no data found")
        warnings.warn("the training data is empty: returning the initial weights", RuntimeWarning, stacklevel=3)
        return SGDResult(w0, [], 0)
    if n * mini_batch_fraction < 1:
        log.warning("the miniBatchFraction is too small: fewer than one row per mini-batch on average")
    if state is None:
        state = SGDState(0, w0, updater.regularization(w0, reg_param, penalized))
    kw = dict(gradient=gradient, fraction=float(mini_batch_fraction), fit_intercept=fit_intercept, scale=scale)
    job = IterationSums(blocks.rdd, aggregation_depth, kw, len(w0))
    w = state.weights
    last_finite = state.loss_history[-1] if state.loss_history else None
    try:
        while not state.converged and state.iteration < num_iterations:
            t = state.iteration + 1
            sums = job(w, seed + t)
            state.iteration = t
            if sums is None or sums[3] <= 0:
                log.warning("iteration %d: the mini-batch sample is empty%s, skipping the update", t,
                            "" if sums is None else " (its rows all have weight 0)")
                state.rows_sampled = 0
            else:
                g_sum, loss_sum, rows, weight_sum = sums
                g_sum = g_sum + 0.0  # -0.0 and 0.0 alike, however the sums were combined
                loss = loss_sum / weight_sum + state.reg_val
                if not math.isfinite(loss):
                    raise SGDDivergenceError(t, last_finite, "loss")
                if not np.isfinite(g_sum).all():
                    raise SGDDivergenceError(t, last_finite, "gradient")
                state.loss_history.append(loss)
                last_finite = loss
                new_w, state.reg_val = updater.compute(w, g_sum / weight_sum, schedule(t), reg_param, penalized)
                if not np.isfinite(new_w).all():
                    raise SGDDivergenceError(t, last_finite, "weight vector")
                if state.previous_weights is not None:
                    with np.errstate(over="ignore"):
                        diff = np.linalg.norm(new_w - w)
                        state.converged = bool(diff < convergence_tol * max(np.linalg.norm(new_w), 1.0))
                state.previous_weights = w
                w = state.weights = new_w
                state.rows_sampled = rows
            log.debug("iteration %d done", t)  # benchmarks/bench.py times iterations by these records
            if checkpointer is not None:
                checkpointer(state, final=state.iteration == num_iterations)
            if callback is not None:
                callback(state)
    finally:
        job.close()
    return SGDResult(w, list(state.loss_history), state.iteration)


def run_minibatch_sgd(data: RDD | BlockedData, gradient: Gradient, updater: Updater, *,
                      step_size: StepSize = 1.0, num_iterations: int = 100, reg_param: float = 0.0,
                      mini_batch_fraction: float = 1.0, initial_weights: Sequence[float] | np.ndarray | None = None,
                      convergence_tol: float = 0.001, seed: int = 42, aggregation_depth: int = 2) -> SGDResult:
    """Mini-batch stochastic gradient descent, MLlib's ``GradientDescent.runMiniBatchSGD``.

    Parameters
    ----------
    data : RDD or BlockedData
        Rows ``(label, features)`` or ``LabeledPoint``, converted into blocks; the blocks of a
        cached RDD are kept for the next call on it (:mod:`sparkgd.engine.reuse`).
    gradient : Gradient
        Per-row loss, e.g. :class:`~sparkgd.core.gradients.LeastSquaresGradient`.
    updater : Updater
        Update rule and regularizer, e.g. :class:`~sparkgd.core.updaters.SquaredL2Updater`.
    step_size : float or callable
        ``eta_t = step_size / sqrt(t)``, or a schedule ``t -> eta_t``.
    num_iterations : int
        Maximum number of iterations.
    reg_param : float
        Regularization strength ``lambda``.
    mini_batch_fraction : float
        Fraction of each partition sampled per iteration, in (0, 1].
    initial_weights : array-like, optional
        Starting weights (zeros by default).
    convergence_tol : float
        Relative tolerance of the early-stopping test.
    seed : int
        Iteration ``t`` samples with seed ``seed + t`` (MLlib's 42 by default).
    aggregation_depth : int
        Depth of the ``treeAggregate``.

    Returns
    -------
    SGDResult
        ``(weights, loss_history, num_iterations)``; the history holds one entry per update.
    """
    check_params(num_iterations, step_size, reg_param, mini_batch_fraction, convergence_tol, aggregation_depth)
    given = contextlib.nullcontext(data) if isinstance(data, BlockedData) else None
    with training_call(), given or blocks_for(data, lambda: BlockedData(data)) as blocks:
        d = blocks.num_features
        w0 = np.zeros(d or 0) if initial_weights is None else as_weights(initial_weights, d, "initial_weights")
        return descend(blocks, gradient, updater, w0, step_size=step_size, num_iterations=num_iterations,
                       reg_param=reg_param, mini_batch_fraction=mini_batch_fraction,
                       convergence_tol=convergence_tol, seed=seed, aggregation_depth=aggregation_depth)
