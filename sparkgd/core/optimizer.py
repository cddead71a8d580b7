r"""The optimizer protocol: what the SGD loop asks of an update rule.

Every iteration the loop (:func:`sparkgd.engine.loop.descend`) has the weights :math:`w`, the data's
mean loss and gradient there, and the step :math:`\eta_t` of the schedule, and calls::

    state = optimizer.init(w0)
    step = optimizer.step(w, loss, gradient, eta_t, evaluate, state, updater, reg_param, penalized)

``step`` is a :class:`Step`: the new weights, the regularization value :math:`R(w_{new})`, the
new state, and optionally the evaluation at the new weights (a line search has computed it: the
loop reuses it for the next iteration) or ``stalled`` (no step decreases the objective: the loop
stops). ``evaluate(w)`` runs one pass of the engine at ``w`` (data loss and gradient, or ``None``
when they are not finite). First-order rules (:mod:`sparkgd.core.optimizers`) implement
:meth:`Optimizer.update` and ignore ``loss`` and ``evaluate``; L-BFGS
(:mod:`sparkgd.core.lbfgs`) implements :meth:`Optimizer.step` with its line search.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from sparkgd.core.updaters import Updater

State = dict[str, np.ndarray]


class Step(NamedTuple):
    """What one iteration of an optimizer returns (see the module docstring)."""

    weights: np.ndarray
    reg_val: float
    state: State
    evaluation: Any = None
    stalled: bool = False


class Optimizer:
    """Base class: ``init`` and ``update`` (first-order rules) or ``step`` (rules that evaluate trial points).

    ``full_batch`` optimizers need every row at every evaluation (``miniBatchFraction`` 1.0) and return
    their own iterate (no averaging); the parameter checks refuse other settings.
    """

    full_batch = False

    def init(self, weights: np.ndarray) -> State:
        return {}

    def step(self, weights: np.ndarray, loss: float, gradient: np.ndarray, eta: float,
             evaluate: Callable[[np.ndarray], Any], state: State, updater: Updater, reg_param: float,
             penalized: np.ndarray | None = None) -> Step:
        return Step(*self.update(weights, gradient, eta, state, updater, reg_param, penalized))

    def update(self, weights: np.ndarray, gradient: np.ndarray, step: float, state: State, updater: Updater,
               reg_param: float, penalized: np.ndarray | None = None) -> tuple[np.ndarray, float, State]:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"
