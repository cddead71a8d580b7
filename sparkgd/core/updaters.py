"""Weight updates with their regularizers, after MLlib's ``Updater`` classes.

An updater takes the current weights ``w``, the mini-batch mean gradient ``g`` and this
iteration's step ``eta`` (from a schedule, see :mod:`sparkgd.core.schedules`), and returns the new
weights and the regularization value ``R(w_new)`` that MLlib adds to the next loss.

``penalized`` (a boolean mask, default all) limits the regularizer to some weights, so
that Spark ML's unregularized intercept can share the code; with the default the arithmetic
is MLlib's, operation for operation.
"""

from __future__ import annotations

import numpy as np


class Updater:
    """Base class: ``compute(w, g, step, reg_param) -> (w_new, reg_val)``."""

    def compute(self, weights: np.ndarray, gradient: np.ndarray, step: float, reg_param: float,
                penalized: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        raise NotImplementedError

    def regularization(self, weights: np.ndarray, reg_param: float,
                       penalized: np.ndarray | None = None) -> float:
        """``R(w)``: what ``compute`` reports for a zero step and gradient."""
        return self.compute(weights, np.zeros_like(weights), 0.0, reg_param, penalized)[1]

    def penalties(self, reg_param: float) -> tuple[float, float]:
        """``(l1, l2)`` of the penalty :math:`l_1\\|w\\|_1 + \\tfrac{l_2}{2}\\|w\\|_2^2` (not SGD's)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _norm(weights: np.ndarray) -> float:
    with np.errstate(over="ignore"):
        return float(np.linalg.norm(weights))


def _masked(weights: np.ndarray, penalized: np.ndarray | None) -> np.ndarray:
    return weights if penalized is None else weights[penalized]


class SimpleUpdater(Updater):
    r"""No regularization: :math:`w \leftarrow w - \eta g`, :math:`R = 0`."""

    def compute(self, weights, gradient, step, reg_param, penalized=None):
        return weights - step * gradient, 0.0

    def penalties(self, reg_param):
        return 0.0, 0.0


class SquaredL2Updater(Updater):
    r"""L2 (ridge): :math:`w \leftarrow (1 - \eta\lambda) w - \eta g`, :math:`R = \tfrac{\lambda}{2}\|w\|_2^2`."""

    def compute(self, weights, gradient, step, reg_param, penalized=None):
        shrink = 1.0 - step * reg_param
        factor = shrink if penalized is None else np.where(penalized, shrink, 1.0)
        new = weights * factor - step * gradient
        norm = _norm(_masked(new, penalized))
        return new, 0.5 * reg_param * norm * norm

    def penalties(self, reg_param):
        return 0.0, reg_param


def soft_threshold(weights: np.ndarray, shrinkage: float, penalized: np.ndarray | None = None) -> np.ndarray:
    r""":math:`\operatorname{sign}(w) \max(0, |w| - s)` on the penalized entries."""
    shrunk = np.sign(weights) * np.maximum(0.0, np.abs(weights) - shrinkage)
    return shrunk if penalized is None else np.where(penalized, shrunk, weights)


class L1Updater(Updater):
    r"""L1 (lasso), a proximal step: :math:`w \leftarrow \operatorname{soft}(w - \eta g, \eta\lambda)`,
    :math:`R = \lambda \|w\|_1`."""

    def compute(self, weights, gradient, step, reg_param, penalized=None):
        new = soft_threshold(weights - step * gradient, reg_param * step, penalized)
        return new, float(np.abs(_masked(new, penalized)).sum()) * reg_param

    def penalties(self, reg_param):
        return reg_param, 0.0


class ElasticNetUpdater(Updater):
    r"""Elastic net with mixing ``alpha`` (0 is L2, 1 is L1), as Spark ML defines the penalty:

    .. math:: w \leftarrow \operatorname{soft}((1 - \eta\lambda(1-\alpha)) w - \eta g,\ \eta\lambda\alpha),
              \qquad R = \lambda\left(\alpha\|w\|_1 + \tfrac{1-\alpha}{2}\|w\|_2^2\right)
    """

    def __init__(self, alpha: float) -> None:
        self.alpha = float(alpha)

    def compute(self, weights, gradient, step, reg_param, penalized=None):
        l1, l2 = reg_param * self.alpha, reg_param * (1.0 - self.alpha)
        shrink = 1.0 - step * l2
        factor = shrink if penalized is None else np.where(penalized, shrink, 1.0)
        new = weights * factor - step * gradient
        if l1 > 0:
            new = soft_threshold(new, l1 * step, penalized)
        w = _masked(new, penalized)
        norm = _norm(w)
        return new, l1 * float(np.abs(w).sum()) + 0.5 * l2 * norm * norm

    def penalties(self, reg_param):
        return reg_param * self.alpha, reg_param * (1.0 - self.alpha)

    def __repr__(self) -> str:
        return f"ElasticNetUpdater({self.alpha!r})"


def get_updater(reg_type: str | None) -> Updater:
    """MLlib's choice by ``regType``: ``None``/``'none'``, ``'l1'``, ``'l2'``."""
    if reg_type is None or reg_type == "none":
        return SimpleUpdater()
    if reg_type == "l1":
        return L1Updater()
    if reg_type == "l2":
        return SquaredL2Updater()
    raise ValueError(f"regType must be None, 'none', 'l1' or 'l2', got {reg_type!r}")
