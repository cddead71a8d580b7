"""The SGD loop's state and parameter checks: what resuming needs, and nothing Spark-specific."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np


class SGDResult(NamedTuple):
    """What :func:`run_minibatch_sgd` returns."""

    weights: np.ndarray
    loss_history: list[float]
    num_iterations: int
    validation_history: list[float] = []  # noqa: RUF012 - a NamedTuple default, never mutated


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
    optimizer_state: dict[str, np.ndarray] = field(default_factory=dict)
    average: np.ndarray | None = None  # the running average of the iterates (averaged SGD)
    average_count: int = 0
    validation_history: list[float] = field(default_factory=list)  # held-out loss at w_{t-1}, per iteration
    best_validation: float = math.inf
    no_improvement: int = 0  # iterations in a row without a held-out loss below best_validation - tol


def check_params(num_iterations: int, step_size: Any, reg_param: float, mini_batch_fraction: float,
                  convergence_tol: float, aggregation_depth: int, names: dict[str, str] | None = None) -> None:
    n = names or {}

    def bad(key: str, default: str, what: str, value: Any) -> ValueError:
        return ValueError(f"{n.get(key, default)} must be {what}, got {value!r}")

    if isinstance(num_iterations, bool) or not isinstance(num_iterations, (int, np.integer)) or num_iterations < 0:
        raise bad("iterations", "num_iterations", "an integer >= 0", num_iterations)
    if not callable(step_size) and not (is_number(step_size) and step_size > 0 and math.isfinite(step_size)):
        raise bad("step", "step_size", "a finite number > 0 (or a schedule)", step_size)
    if not (is_number(reg_param) and 0 <= reg_param < math.inf):
        raise bad("regParam", "reg_param", "a finite number >= 0", reg_param)
    if not (is_number(mini_batch_fraction) and 0 < mini_batch_fraction <= 1):
        raise bad("miniBatchFraction", "mini_batch_fraction", "in (0, 1]", mini_batch_fraction)
    if not (is_number(convergence_tol) and 0 <= convergence_tol <= 1):
        raise bad("convergenceTol", "convergence_tol", "in [0, 1]", convergence_tol)
    if isinstance(aggregation_depth, bool) or not isinstance(aggregation_depth, (int, np.integer)) \
            or aggregation_depth < 1:
        raise bad("aggregationDepth", "aggregation_depth", "an integer >= 1", aggregation_depth)


def check_loop_params(full_batch: bool, mini_batch_fraction: float, average_from: int,
                      validation_fraction: float, n_iter_no_change: int, names: dict[str, str] | None = None) -> None:
    """The checks of :func:`check_params` for the optimizer, averaging and early-stopping settings.

    ``names`` maps ``lbfgs``, ``miniBatchFraction``, ``averageFrom``, ``validationFraction`` and
    ``nIterNoChange`` to what the caller's users call them (the engine's argument names by default).
    """
    n = names or {}
    lbfgs = n.get("lbfgs", "optimizer 'lbfgs'")
    if full_batch and mini_batch_fraction != 1.0:
        raise ValueError(f"{lbfgs} needs full batches: {n.get('miniBatchFraction', 'mini_batch_fraction')} "
                         f"must be 1.0, got {mini_batch_fraction!r}")
    avg = n.get("averageFrom", "average_from")
    if isinstance(average_from, bool) or not isinstance(average_from, (int, np.integer)) or average_from < 0:
        raise ValueError(f"{avg} must be an integer >= 0, got {average_from!r}")
    if full_batch and average_from:
        raise ValueError(f"{avg} (averaging the iterates) does not apply to {lbfgs}; use 0")
    if not (is_number(validation_fraction) and 0 <= validation_fraction < 1):
        raise ValueError(f"{n.get('validationFraction', 'validation_fraction')} must be in [0, 1), "
                         f"got {validation_fraction!r}")
    if isinstance(n_iter_no_change, bool) or not isinstance(n_iter_no_change, (int, np.integer)) \
            or n_iter_no_change < 1:
        raise ValueError(f"{n.get('nIterNoChange', 'n_iter_no_change')} must be an integer >= 1, "
                         f"got {n_iter_no_change!r}")


def is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and not math.isnan(x)


def as_weights(values: Any, size: int | None, name: str) -> np.ndarray:
    if hasattr(values, "toArray"):
        values = values.toArray()
    w = np.asarray(values, dtype=np.float64).ravel()
    if size is not None and len(w) != size:
        raise ValueError(f"{name} has {len(w)} entries but the data has {size} features")
    if not np.isfinite(w).all():
        raise ValueError(f"{name} must be finite")
    return w
