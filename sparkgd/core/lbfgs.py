r"""L-BFGS, and OWL-QN when there is an L1 penalty, over full-batch gradients.

The objective is :math:`F(w) = \phi(w) + l_1 \|w_p\|_1` with the smooth part
:math:`\phi(w) = \frac{1}{n}\sum_i l(x_i \cdot w, y_i) + \tfrac{l_2}{2}\|w_p\|_2^2`
(:math:`w_p`: the penalized weights; :meth:`~sparkgd.core.updaters.Updater.penalties`). Each
iteration takes the direction :math:`d = -H \nabla F` of the two-loop recursion over the last
``memory`` pairs :math:`(s, y) = (w_{k+1} - w_k, \nabla\phi(w_{k+1}) - \nabla\phi(w_k))`, and a
backtracking (Armijo) line search :math:`F(w + \alpha d) \le F(w) + c_1 \alpha \nabla F \cdot d`
from :math:`\alpha = 1` (:math:`1/\|\nabla F\|` on the first iteration), halving :math:`\alpha`.

With :math:`l_1 > 0` this is OWL-QN (Andrew and Gao, 2007): :math:`\nabla F` is the
pseudo-gradient, the direction keeps only the coordinates where it descends, and trial points are
projected on the orthant of :math:`w` (penalized weights that change sign become 0).

Every evaluation of :math:`\phi` and its gradient is one pass of the engine over the data.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from sparkgd.core.optimizer import Optimizer, State, Step
from sparkgd.core.updaters import Updater

C1 = 1e-4  # Armijo's sufficient-decrease constant


class LBFGS(Optimizer):
    """Limited-memory BFGS with ``memory`` pairs and at most ``max_evaluations`` trial points per iteration."""

    full_batch = True

    def __init__(self, memory: int = 10, max_evaluations: int = 30) -> None:
        self.memory, self.max_evaluations = int(memory), int(max_evaluations)

    def init(self, weights):
        d = len(weights)
        return {"s": np.zeros((0, d)), "y": np.zeros((0, d))}

    def step(self, weights: np.ndarray, loss: float, gradient: np.ndarray, eta: float,
             evaluate: Callable[[np.ndarray], Any], state: State, updater: Updater, reg_param: float,
             penalized: np.ndarray | None = None) -> Step:
        """One iteration from ``weights`` (data loss ``loss`` and gradient ``gradient`` there); ``eta`` unused.

        ``evaluate(w)`` returns an object with the data ``loss`` and ``gradient`` at ``w`` (or
        ``None`` when they are not finite). Returns the new weights, ``R(w_new)``, the new state
        and the evaluation at the new weights, or the same weights, ``stalled``, when no step decreases ``F``.
        """
        l1, l2 = updater.penalties(reg_param)
        mask = np.ones(len(weights), dtype=bool) if penalized is None else penalized

        def smooth(w: np.ndarray, f: float, g: np.ndarray) -> tuple[float, np.ndarray]:
            if l2 == 0:
                return f, g
            wp = np.where(mask, w, 0.0)
            return f + 0.5 * l2 * float(wp @ wp), g + l2 * wp

        def total(w: np.ndarray, f: float) -> float:
            return f + l1 * float(np.abs(w[mask]).sum()) if l1 > 0 else f

        f0, g0 = smooth(weights, loss, gradient)
        pg = pseudo_gradient(weights, g0, l1, mask)
        s_hist, y_hist = state["s"], state["y"]
        d = -two_loop(pg, s_hist, y_hist)
        if l1 > 0:
            d = np.where(d * pg < 0, d, 0.0)
        if not float(d @ pg) < 0:  # not a descent direction: start the memory afresh
            s_hist, y_hist = s_hist[:0], y_hist[:0]
            d = -pg
        norm = float(np.linalg.norm(pg))
        if norm == 0.0:
            return Step(weights, updater.regularization(weights, reg_param, penalized), state, stalled=True)
        alpha = 1.0 if len(s_hist) else 1.0 / norm
        orthant = np.where(weights != 0, np.sign(weights), -np.sign(pg))
        F0 = total(weights, f0)
        for _ in range(self.max_evaluations):
            trial = weights + alpha * d
            if l1 > 0:
                trial = np.where(mask & (np.sign(trial) != orthant), 0.0, trial)
            got = evaluate(trial)
            if got is not None:
                f1, g1 = smooth(trial, got.loss, got.gradient)
                if total(trial, f1) <= F0 + C1 * float(pg @ (trial - weights)):
                    s, y = trial - weights, g1 - g0
                    if float(s @ y) > 1e-10 * float(y @ y):
                        s_hist = np.vstack([s_hist, s])[-self.memory:]
                        y_hist = np.vstack([y_hist, y])[-self.memory:]
                    reg = updater.regularization(trial, reg_param, penalized)
                    return Step(trial, reg, {"s": s_hist, "y": y_hist}, got)
            alpha *= 0.5
        return Step(weights, updater.regularization(weights, reg_param, penalized), state, stalled=True)


def pseudo_gradient(w: np.ndarray, g: np.ndarray, l1: float, mask: np.ndarray) -> np.ndarray:
    """The gradient of :math:`\\phi + l_1\\|w_p\\|_1` where it exists; at 0 the one-sided derivative that
    descends, or 0 when neither does."""
    if l1 <= 0:
        return g
    at_zero = np.where(g + l1 < 0, g + l1, np.where(g - l1 > 0, g - l1, 0.0))
    pg = np.where(w > 0, g + l1, np.where(w < 0, g - l1, at_zero))
    return np.where(mask, pg, g)


def two_loop(g: np.ndarray, s_hist: np.ndarray, y_hist: np.ndarray) -> np.ndarray:
    """:math:`H g` for the L-BFGS inverse Hessian of the pairs (oldest first), with
    :math:`H_0 = (s \\cdot y / y \\cdot y) I` from the newest pair."""
    q = g.copy()
    rhos = [1.0 / float(y @ s) for s, y in zip(s_hist, y_hist)]
    alphas = []
    for s, y, rho in reversed(list(zip(s_hist, y_hist, rhos))):
        a = rho * float(s @ q)
        q -= a * y
        alphas.append(a)
    if len(s_hist):
        s, y = s_hist[-1], y_hist[-1]
        q *= float(s @ y) / float(y @ y)
    for (s, y, rho), a in zip(zip(s_hist, y_hist, rhos), reversed(alphas)):
        b = rho * float(y @ q)
        q += (a - b) * s
    return q
