"""The distributed mini-batch SGD loop, MLlib's ``GradientDescent.runMiniBatchSGD``.

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
import functools
import logging
import math
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
from pyspark import RDD

from sparkgd.aggregation import IteratedAggregation
from sparkgd.blocks import Block, BlockedData
from sparkgd.errors import SGDDivergenceError
from sparkgd.gradients import Gradient
from sparkgd.sampling import partition_seed, sample_positions
from sparkgd.schedules import StepSize, as_schedule
from sparkgd.updaters import Updater

log = logging.getLogger("sparkgd")


class SGDResult(NamedTuple):
    """What :func:`run_minibatch_sgd` returns."""

    weights: np.ndarray
    loss_history: list[float]
    num_iterations: int


@dataclass
class SGDState:
    """The loop's state after an iteration: enough to resume it exactly."""

    iteration: int
    weights: np.ndarray
    reg_val: float
    loss_history: list[float] = field(default_factory=list)
    previous_weights: np.ndarray | None = None
    converged: bool = False
    rows_sampled: int = 0


def block_sums(block: Block, weights: np.ndarray, gradient: Gradient, fraction: float, seed: int,
               fit_intercept: bool = False, scale: np.ndarray | None = None
               ) -> tuple[np.ndarray, float, int, float] | None:
    """Gradient sum, loss sum, rows and weight sum over the sampled rows of a block.

    ``fit_intercept`` treats ``weights[-1]`` as the weight of a constant 1.0 feature appended
    to every row; ``scale`` multiplies feature ``j`` by ``scale[j]`` (standardization) without
    copying the data. Returns ``None`` when no row is sampled.
    """
    pos = sample_positions(block.num_rows, fraction, partition_seed(seed, block.partition))
    y = block.labels[pos]
    if len(y) == 0:
        return None
    x = block.features[pos]
    sw = None if block.weights is None else block.weights[pos]
    coef = weights[:-1] if fit_intercept else weights
    if scale is not None:
        coef = coef * scale
    margins = x @ coef
    if fit_intercept:
        margins = margins + weights[-1]
    loss, mult = gradient.loss_and_multiplier(margins, y)
    if sw is not None:
        loss, mult = loss * sw, mult * sw
    g = np.asarray(x.T @ mult).ravel()
    if scale is not None:
        g = g * scale
    if fit_intercept:
        g = np.append(g, mult.sum())
    return g, float(loss.sum()), len(y), float(len(y) if sw is None else sw.sum())


def _seq_op(acc, block, *, weights, **kw):
    sums = block_sums(block, weights, **kw)
    return _comb_op(acc, None if sums is None else (*sums, ()))


def _stored_seq_op(acc, partition, *, store_id, **kw):
    """Like ``_seq_op`` on the block stored on this host; a missing block is reported."""
    from sparkgd import store

    block = store.get(store_id, partition)
    if block is None:
        return _comb_op(acc, (None, 0.0, 0, 0.0, (partition,)))
    return _seq_op(acc, block, **kw)


def _comb_op(a, b):
    """Adds ``(gradient sum or None, loss sum, rows, weight sum, partitions missed)``; ``None`` is empty."""
    if a is None:
        return b
    if b is None:
        return a
    g = b[0] if a[0] is None else a[0] if b[0] is None else a[0] + b[0]
    return g, a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4]


def _iteration_sums(blocks: BlockedData, job: IteratedAggregation, weights: np.ndarray, seed: int, kw: dict):
    """One iteration's ``(gradient sum, loss sum, rows, weight sum)``, or ``None`` if nothing sampled."""
    sums = job(weights, seed)
    if sums is not None and sums[4]:
        # blocks not stored on the executing host: build them again from the input (and store them there)
        job.release()  # resident tasks (if any) would hold the cores the fallback job needs
        fallback = functools.partial(_seq_op, weights=weights, seed=seed, **kw)
        parts = blocks.source.context.runJob(
            blocks.source, lambda it: [functools.reduce(fallback, it, None)], partitions=sorted(set(sums[4])))
        sums = functools.reduce(_comb_op, parts, (*sums[:4], ()))
    if sums is None or sums[0] is None:
        return None
    return sums[:4]


def _check_params(num_iterations: int, step_size: Any, reg_param: float, mini_batch_fraction: float,
                  convergence_tol: float, aggregation_depth: int, names: dict[str, str] | None = None) -> None:
    n = names or {}

    def bad(key: str, default: str, what: str, value: Any) -> ValueError:
        return ValueError(f"{n.get(key, default)} must be {what}, got {value!r}")

    if isinstance(num_iterations, bool) or not isinstance(num_iterations, (int, np.integer)) or num_iterations < 0:
        raise bad("iterations", "num_iterations", "an integer >= 0", num_iterations)
    if not callable(step_size) and not (_is_number(step_size) and step_size > 0 and math.isfinite(step_size)):
        raise bad("step", "step_size", "a finite number > 0 (or a schedule)", step_size)
    if not (_is_number(reg_param) and 0 <= reg_param < math.inf):
        raise bad("regParam", "reg_param", "a finite number >= 0", reg_param)
    if not (_is_number(mini_batch_fraction) and 0 < mini_batch_fraction <= 1):
        raise bad("miniBatchFraction", "mini_batch_fraction", "in (0, 1]", mini_batch_fraction)
    if not (_is_number(convergence_tol) and 0 <= convergence_tol <= 1):
        raise bad("convergenceTol", "convergence_tol", "in [0, 1]", convergence_tol)
    if isinstance(aggregation_depth, bool) or not isinstance(aggregation_depth, (int, np.integer)) \
            or aggregation_depth < 1:
        raise bad("aggregationDepth", "aggregation_depth", "an integer >= 1", aggregation_depth)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and not math.isnan(x)


def descend(blocks: BlockedData, gradient: Gradient, updater: Updater, initial_weights: np.ndarray, *,
            step_size: StepSize = 1.0, num_iterations: int = 100, reg_param: float = 0.0,
            mini_batch_fraction: float = 1.0, convergence_tol: float = 0.001, seed: int = 42,
            aggregation_depth: int = 2, fit_intercept: bool = False, scale: np.ndarray | None = None,
            penalized: np.ndarray | None = None, state: SGDState | None = None,
            callback: Callable[[SGDState], None] | None = None, checkpoint_dir: str | None = None,
            checkpoint_interval: int = 10, resume: bool = False) -> SGDResult:
    """The SGD loop over already blocked data; see the module docstring.

    ``state`` resumes from a given :class:`SGDState`; ``callback`` is called with the state
    after every iteration (progress), on the driver, while :mod:`sparkgd.resident` tasks may
    hold the executors' task slots: it must not wait for Spark jobs of its own. With
    ``checkpoint_dir`` the state is saved every ``checkpoint_interval`` iterations, and
    ``resume`` continues from the newest checkpoint there.
    """
    checkpointer = None
    if checkpoint_dir is not None:
        from sparkgd import checkpoint

        fp = checkpoint.fingerprint(
            gradient=type(gradient).__name__, updater=repr(updater), step=repr(as_schedule(step_size)),
            reg=reg_param, fraction=mini_batch_fraction, tol=convergence_tol, seed=seed,
            w0=np.asarray(initial_weights, dtype=np.float64).tolist(), intercept=fit_intercept,
            scale=None if scale is None else np.asarray(scale).tolist(), rows=blocks.count)
        checkpointer = checkpoint.Checkpointer(checkpoint_dir, checkpoint_interval, fp)
        if resume and state is None:
            state = checkpoint.latest(checkpoint_dir, fp)
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
    job = IteratedAggregation(blocks.rdd.context, blocks.num_partitions,
                              functools.partial(_stored_seq_op, store_id=blocks.store_id, **kw), _comb_op,
                              aggregation_depth, key=f"sparkgd.iteration.{uuid.uuid4().hex}", near=blocks.rdd)
    w = state.weights
    last_finite = state.loss_history[-1] if state.loss_history else None
    try:
        while not state.converged and state.iteration < num_iterations:
            t = state.iteration + 1
            sums = _iteration_sums(blocks, job, w, seed + t, kw)
            state.iteration = t
            if sums is None:
                log.warning("iteration %d: the mini-batch sample is empty, skipping the update", t)
                state.rows_sampled = 0
            else:
                g_sum, loss_sum, rows, weight_sum = sums
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
        cached RDD are kept for the next call on it (:mod:`sparkgd.reuse`).
    gradient : Gradient
        Per-row loss, e.g. :class:`~sparkgd.gradients.LeastSquaresGradient`.
    updater : Updater
        Update rule and regularizer, e.g. :class:`~sparkgd.updaters.SquaredL2Updater`.
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
    _check_params(num_iterations, step_size, reg_param, mini_batch_fraction, convergence_tol, aggregation_depth)
    from sparkgd.reuse import blocks_for

    given = contextlib.nullcontext(data) if isinstance(data, BlockedData) else None
    with given or blocks_for(data, lambda: BlockedData(data)) as blocks:
        d = blocks.num_features
        w0 = np.zeros(d or 0) if initial_weights is None else _as_weights(initial_weights, d, "initial_weights")
        return descend(blocks, gradient, updater, w0, step_size=step_size, num_iterations=num_iterations,
                       reg_param=reg_param, mini_batch_fraction=mini_batch_fraction,
                       convergence_tol=convergence_tol, seed=seed, aggregation_depth=aggregation_depth)


def _as_weights(values: Any, size: int | None, name: str) -> np.ndarray:
    if hasattr(values, "toArray"):
        values = values.toArray()
    w = np.asarray(values, dtype=np.float64).ravel()
    if size is not None and len(w) != size:
        raise ValueError(f"{name} has {len(w)} entries but the data has {size} features")
    if not np.isfinite(w).all():
        raise ValueError(f"{name} must be finite")
    return w
