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
import functools
import logging
import math
import warnings
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
from pyspark import RDD

from sparkgd.core import checkpoint
from sparkgd.core.block import FoldSpec
from sparkgd.core.errors import SGDDivergenceError
from sparkgd.core.gradients import Gradient
from sparkgd.core.optimizers import SGD, Optimizer
from sparkgd.core.schedules import StepSize, as_schedule
from sparkgd.core.state import SGDResult, SGDState, as_weights, check_loop_params, check_params
from sparkgd.core.updaters import Updater
from sparkgd.engine import fs
from sparkgd.engine.blocks import BlockedData, build_for_call
from sparkgd.engine.reuse import blocks_for
from sparkgd.engine.turns import training_call

log = logging.getLogger("sparkgd")


class Evaluation(NamedTuple):
    """The sums of one pass at some weights, as means: data ``loss`` and ``gradient`` (``None`` when no
    row was sampled), the rows and their weight sum, and the held-out mean loss (``None`` when off)."""

    loss: float | None
    gradient: np.ndarray | None
    rows: int
    weight_sum: float
    validation: float | None


def descend(blocks: BlockedData, gradient: Gradient, updater: Updater, initial_weights: np.ndarray, *,
            optimizer: Optimizer | None = None, step_size: StepSize = 1.0, num_iterations: int = 100,
            reg_param: float = 0.0, mini_batch_fraction: float = 1.0, convergence_tol: float = 0.001,
            seed: int = 42, aggregation_depth: int = 2, fit_intercept: bool = False, scale: np.ndarray | None = None,
            center: np.ndarray | None = None, penalized: np.ndarray | None = None, average_from: int = 0,
            validation_fraction: float = 0.0, n_iter_no_change: int = 5, state: SGDState | None = None,
            callback: Callable[[SGDState], None] | None = None, checkpoint_dir: str | None = None,
            checkpoint_interval: int = 10, resume: bool = False) -> SGDResult:
    """The SGD loop over already blocked data; see the module docstring.

    ``optimizer`` is the update rule (:mod:`sparkgd.core.optimizers`; MLlib's :class:`SGD` by
    default, or :class:`~sparkgd.core.lbfgs.LBFGS`). ``average_from`` >= 1 returns the running
    average of the iterates from that iteration on (averaged SGD). ``validation_fraction`` > 0
    holds that fraction of the rows out of training and stops once their mean loss has not gone
    below its best minus ``convergence_tol`` for ``n_iter_no_change`` iterations in a row (then
    the weight-change test is off), returning the weights last measured.

    ``center`` (with ``fit_intercept``) trains on features centred at these means (in the units of
    the data, before ``scale``), as Spark ML's aggregators do, without touching the data: the
    iterates are the coefficients ``u`` and intercept ``c`` of ``(x - center) * scale``, and each
    pass evaluates the same model written for uncentred rows, intercept ``b = c - u . (center * scale)``,
    with the gradient mapped back, ``g_u = g_u' - (center * scale) g_b``. The returned weights are
    that uncentred form (coefficients of ``x * scale``, intercept ``b``); ``state`` and ``callback``
    see the centred iterates.

    Divergence raises :class:`~sparkgd.core.errors.SGDDivergenceError`: a non-finite loss, gradient or
    weight, or an objective that grows far beyond its first value (:func:`diverging`).

    ``state`` resumes from a given :class:`SGDState`; ``callback`` is called with the state
    after every iteration (progress), on the driver; it may run Spark jobs of its own (idle
    :mod:`sparkgd.engine.resident` tasks hand their slots over to them). With
    ``checkpoint_dir`` the state is saved every ``checkpoint_interval`` iterations, and
    ``resume`` continues from the newest checkpoint there.
    """
    optimizer = optimizer or SGD()
    check_loop_params(optimizer.full_batch, mini_batch_fraction, average_from, validation_fraction,
                      n_iter_no_change)
    checkpointer = None
    if checkpoint_dir is not None:
        settings = checkpoint.training_settings(
            gradient=gradient, updater=updater, step=as_schedule(step_size), reg_param=reg_param,
            fraction=mini_batch_fraction, tol=convergence_tol, seed=seed, initial_weights=initial_weights,
            fit_intercept=fit_intercept, scale=scale, center=center, rows=blocks.count, optimizer=optimizer,
            average_from=average_from, validation=(validation_fraction, n_iter_no_change))
        checkpointer, state = _checkpoints(blocks, settings, checkpoint_dir, checkpoint_interval, resume, state)
    schedule = as_schedule(step_size)
    w0 = np.array(initial_weights, dtype=np.float64)
    blocks.check_weights()  # negative or all-zero row weights: refused in every API
    n = blocks.count
    if n == 0:
        log.warning("GradientDescent.runMiniBatchSGD returning initial weights, no data found")
        warnings.warn("the training data is empty: returning the initial weights", RuntimeWarning, stacklevel=3)
        return SGDResult(w0, [], 0)
    if n * mini_batch_fraction < 1:
        log.warning("the miniBatchFraction is too small: fewer than one row per mini-batch on average")
    if state is None:
        state = SGDState(0, w0, updater.regularization(w0, reg_param, penalized), optimizer_state=optimizer.init(w0))
    validation = (float(validation_fraction), int(seed)) if validation_fraction > 0 else None
    spec = FoldSpec(gradient, float(mini_batch_fraction), fit_intercept, scale, validation)
    shift = _Centring(center, scale, gradient.num_sets) if center is not None and fit_intercept else None
    rules = Rules(optimizer, updater, schedule, float(reg_param), penalized, float(convergence_tol), int(seed),
                  validation is not None, int(n_iter_no_change), int(average_from), shift)

    def after(state: SGDState) -> None:
        if checkpointer is not None:
            checkpointer(state, final=state.iteration == num_iterations)
        if callback is not None:
            callback(state)

    on_executors = getattr(blocks, "iterate_on_executors", None)
    if on_executors is not None:  # Spark Connect: the loop runs in a task (sparkgd.engine.remote)
        state = on_executors(rules, spec, aggregation_depth, len(w0), state, num_iterations, after,
                             keep=_keeping(checkpointer, callback, num_iterations))
    else:
        job = blocks.iteration_sums(aggregation_depth, spec, len(w0))
        try:
            iterate(rules, job, state, num_iterations, after)
        finally:
            job.close()
    return SGDResult(rules.final(state), list(state.loss_history), state.iteration, list(state.validation_history))


def _keeping(checkpointer: checkpoint.Checkpointer | None, callback: Callable | None, num_iterations: int
             ) -> Callable[[SGDState], bool]:
    """Which iterations' states a loop run elsewhere must send back: every one for a callback, those a
    checkpoint is due at for the checkpointer, else only the last."""
    if callback is not None:
        return lambda state: True
    if checkpointer is not None:
        interval = checkpointer.interval
        return lambda state: state.iteration % interval == 0 or state.iteration == num_iterations or state.converged
    return lambda state: False


class Rules(NamedTuple):
    """Everything an iteration does besides summing over the data: the update rule, the schedule, the
    stopping tests, averaging and centring (see :func:`descend`); the same on the driver and in a task."""

    optimizer: Optimizer
    updater: Updater
    schedule: Callable[[int], float]
    reg_param: float
    penalized: np.ndarray | None
    convergence_tol: float
    seed: int
    validation: bool
    n_iter_no_change: int
    average_from: int
    shift: _Centring | None

    def final(self, state: SGDState) -> np.ndarray:
        """The weights a run ending in ``state`` returns: the average (ASGD) or the last iterate, uncentred."""
        w = state.average if self.average_from and state.average is not None else state.weights
        return w if self.shift is None else self.shift.uncentred(w)


def iterate(rules: Rules, job: Callable[[np.ndarray, int], Any], state: SGDState, num_iterations: int,
            after: Callable[[SGDState], None], more: Callable[[], bool] = lambda: True) -> SGDState:
    """Run iterations on ``state`` (updated in place) until it converges, reaches ``num_iterations``, or
    ``more()`` says no (checked after each iteration); ``job(weights, seed)`` sums one pass over the data
    and ``after(state)`` is called after every iteration."""
    shift, validation, seed = rules.shift, rules.validation, rules.seed

    def evaluate(weights: np.ndarray, t: int) -> Evaluation | None:
        if shift is not None:
            weights = shift.uncentred(weights)
        sums = job(weights, seed + t)
        if sums is None:
            return None
        g_sum, loss_sum, rows, weight_sum = sums.gradient + 0.0, sums.loss, sums.rows, sums.weight  # -0.0 as 0.0
        if shift is not None:
            g_sum = shift.centred_gradient(g_sum)
        held = None
        if validation and sums.held_weight > 0:
            held = float(sums.held_loss / sums.held_weight)
        if weight_sum <= 0:
            return Evaluation(None, None, rows, weight_sum, held)
        return Evaluation(loss_sum / weight_sum, g_sum / weight_sum, rows, weight_sum, held)

    def trial(weights: np.ndarray, t: int) -> Evaluation | None:
        got = evaluate(weights, t)
        ok = got is not None and got.loss is not None and math.isfinite(got.loss) and np.isfinite(got.gradient).all()
        return got if ok else None

    w = state.weights
    last_finite = state.loss_history[-1] if state.loss_history else None
    carried: Evaluation | None = None  # the line search's evaluation at the new weights
    while not state.converged and state.iteration < num_iterations:
        t = state.iteration + 1
        ev, carried = carried or evaluate(w, t), None
        if ev is not None and ev.validation is not None and _stop_early(state, ev.validation, rules.convergence_tol,
                                                                         rules.n_iter_no_change):
            log.info("iteration %d: the held-out loss has not improved for %d iterations, stopping", t,
                     rules.n_iter_no_change)
        elif ev is None or ev.loss is None:
            state.iteration = t
            log.warning("iteration %d: the mini-batch sample is empty%s, skipping the update", t,
                        "" if ev is None else " (its rows all have weight 0)")
            state.rows_sampled = 0
        else:
            state.iteration = t
            loss = ev.loss + state.reg_val
            if not math.isfinite(loss):
                raise SGDDivergenceError(t, last_finite, "loss")
            if not np.isfinite(ev.gradient).all():
                raise SGDDivergenceError(t, last_finite, "gradient")
            state.loss_history.append(loss)
            if diverging(state.loss_history):
                raise SGDDivergenceError(t, state.loss_history[0], "objective", loss)
            last_finite = loss
            new_w, state.reg_val, state.optimizer_state, carried, stalled = rules.optimizer.step(
                w, ev.loss, ev.gradient, rules.schedule(t), functools.partial(trial, t=t), state.optimizer_state,
                rules.updater, rules.reg_param, rules.penalized)
            if stalled:
                log.info("iteration %d: no step decreases the objective, stopping", t)
                state.converged = True
            if not np.isfinite(new_w).all():
                raise SGDDivergenceError(t, last_finite, "weight vector")
            if state.previous_weights is not None and not validation:
                with np.errstate(over="ignore"):
                    diff = np.linalg.norm(new_w - w)
                    state.converged |= bool(diff < rules.convergence_tol * max(np.linalg.norm(new_w), 1.0))
            if rules.average_from and t >= rules.average_from:
                state.average_count += 1
                state.average = new_w.copy() if state.average is None else \
                    state.average + (new_w - state.average) / state.average_count
            state.previous_weights = w
            w = state.weights = new_w
            state.rows_sampled = ev.rows
        log.debug("iteration %d done", t)  # benchmarks/bench.py times iterations by these records
        after(state)
        if not more():
            break
    return state


def _checkpoints(blocks: BlockedData, settings: dict, directory: str, interval: int, resume: bool,
                 state: SGDState | None) -> tuple[checkpoint.Checkpointer, SGDState | None]:
    """The checkpointer of a run with these ``settings``, and the state to start from (the newest
    matching checkpoint with ``resume``)."""
    fp, hashes = checkpoint.fingerprint(**settings), checkpoint.setting_hashes(settings)
    dirs = None if fs.is_local(directory) else blocks.hadoop_dirs()
    checkpointer = checkpoint.Checkpointer(directory, interval, fp, dirs=dirs, settings=hashes)
    if resume and state is None:
        state = checkpoint.latest(directory, fp, dirs=dirs, settings=hashes)
        if state is None:
            log.warning("resume: no checkpoint in %s yet; training starts at iteration 0", directory)
        else:
            log.info("resuming from the checkpoint of iteration %d", state.iteration)
    return checkpointer, state


GROWTH = 1e6  # an objective this many times its first value, still rising or staying there: diverged
RISING = 10  # ... or rising this many iterations in a row to more than 10 times its first value


def diverging(history: Sequence[float]) -> bool:
    """True when the objective ``history`` (one entry per update) shows divergence, not noise.

    A step too large multiplies the objective at every iteration (least squares) or throws it
    to a level it never comes back from (a bounded gradient, as logistic or hinge loss); a
    mini-batch's noise does neither. So: the latest value exceeds ``GROWTH`` times the first and
    rose in each of the last two iterations, or the last three values all exceed ``GROWTH``
    times the first, or the objective rose in each of the last ``RISING`` iterations to more
    than ten times the first. (With mini-batches of about one row, a first value a millionth of
    the typical one, about one run in a thousand, can raise it wrongly.)
    """
    t = len(history)
    if t < 3:
        return False
    first, last = history[0], history[-1]
    rises = 0
    while rises < RISING and rises < t - 1 and history[-1 - rises] > history[-2 - rises]:
        rises += 1
    far = t >= 4 and all(h > GROWTH * first for h in history[-3:])
    return (rises >= 2 and last > GROWTH * first) or far or (rises >= RISING and last > 10 * first)


class _Centring:
    """The map between centred iterates and the uncentred weights the blocks compute with (see :func:`descend`)."""

    def __init__(self, center: np.ndarray, scale: np.ndarray | None, num_sets: int) -> None:
        m = np.asarray(center, dtype=np.float64)
        self.means = m if scale is None else m * np.asarray(scale, dtype=np.float64)
        self.k = num_sets

    def uncentred(self, w: np.ndarray) -> np.ndarray:
        """``b = c - u . m`` for each coefficient set, ``m`` the scaled means."""
        k, out = self.k, np.array(w, dtype=np.float64)
        out[-k:] -= w[:-k].reshape(k, -1) @ self.means
        return out

    def centred_gradient(self, g: np.ndarray) -> np.ndarray:
        """``g_u = g_u' - m g_b``."""
        k, out = self.k, np.array(g, dtype=np.float64)
        out[:-k] -= np.outer(g[-k:], self.means).ravel()
        return out


def _stop_early(state: SGDState, held: float, tol: float, patience: int) -> bool:
    """Record the held-out loss at the current weights; true once it has not improved for ``patience`` iterations."""
    state.validation_history.append(held)
    if held < state.best_validation - tol:
        state.best_validation, state.no_improvement = held, 0
    else:
        state.no_improvement += 1
    state.converged = state.no_improvement >= patience
    return state.converged


def run_minibatch_sgd(data: RDD | BlockedData, gradient: Gradient, updater: Updater, *,
                      step_size: StepSize = 1.0, num_iterations: int = 100, reg_param: float = 0.0,
                      mini_batch_fraction: float = 1.0, initial_weights: Sequence[float] | np.ndarray | None = None,
                      convergence_tol: float = 0.001, seed: int = 42, aggregation_depth: int = 2,
                      optimizer: Optimizer | None = None, average_from: int = 0, validation_fraction: float = 0.0,
                      n_iter_no_change: int = 5, callback: Callable[[SGDState], None] | None = None) -> SGDResult:
    """Mini-batch stochastic gradient descent, MLlib's ``GradientDescent.runMiniBatchSGD``, with other update rules.

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
    optimizer : Optimizer, optional
        The update rule (:func:`sparkgd.core.optimizers.make_optimizer`); MLlib's by default.
    average_from : int
        0: return the last iterate; ``t >= 1``: the average of the iterates from iteration ``t`` (ASGD).
    validation_fraction : float
        Fraction of the rows held out for early stopping (0: off).
    n_iter_no_change : int
        Iterations without held-out improvement of at least ``convergence_tol`` before stopping.
    callback : callable, optional
        Called on the driver after every iteration with the loop's :class:`~sparkgd.core.state.SGDState`
        (``iteration``, ``weights``, ``loss_history``, ``rows_sampled``, ``converged``), to watch
        progress; it must not change the state. It may run Spark jobs of its own.

    Returns
    -------
    SGDResult
        ``(weights, loss_history, num_iterations, validation_history)``; the loss history holds one
        entry per update.
    """
    check_params(num_iterations, step_size, reg_param, mini_batch_fraction, convergence_tol, aggregation_depth)
    check_loop_params(bool(optimizer and optimizer.full_batch), mini_batch_fraction, average_from,
                      validation_fraction, n_iter_no_change)
    given = contextlib.nullcontext(data) if isinstance(data, BlockedData) else None
    with training_call(), given or blocks_for(data, lambda: build_for_call(data)) as blocks:
        d = blocks.num_features
        k = gradient.num_sets  # K coefficient vectors, row by row, for the multinomial loss
        w0 = np.zeros((d or 0) * k) if initial_weights is None else as_weights(
            initial_weights, None if d is None else d * k, "initial_weights")
        return descend(blocks, gradient, updater, w0, step_size=step_size, num_iterations=num_iterations,
                       reg_param=reg_param, mini_batch_fraction=mini_batch_fraction,
                       convergence_tol=convergence_tol, seed=seed, aggregation_depth=aggregation_depth,
                       optimizer=optimizer, average_from=average_from, validation_fraction=validation_fraction,
                       n_iter_no_change=n_iter_no_change, callback=callback)
