r"""Update rules on the driver, optax-style: small classes with explicit state.

An optimizer turns the mini-batch mean gradient :math:`g` of iteration :math:`t` and the step
:math:`\eta_t` (from a schedule) into new weights::

    state = optimizer.init(w0)
    w, reg_val, state = optimizer.update(w, g, eta_t, state, updater, reg_param, penalized)

``state`` is a dict of numpy arrays (checkpointed with the loop). :class:`SGD`, the default,
is MLlib's rule: the updater does the whole step, bit for bit as ``GradientDescent`` does.

The other rules share one way of adding the regularizer :math:`l_1\|w\|_1 + \tfrac{l_2}{2}\|w\|_2^2`
(:meth:`~sparkgd.core.updaters.Updater.penalties`, on the ``penalized`` weights only):

* **L2 is coupled**: the rule sees :math:`g' = g + l_2 w`; :class:`Adam` with ``decoupled=True``
  (AdamW) instead sees :math:`g` and subtracts :math:`\eta_t l_2 w` after its own step;
* **L1 is a proximal step** after the rule's step :math:`w - \eta_t u`: soft-thresholding by
  :math:`\eta_t l_1`, divided per coordinate by the rule's denominator for the adaptive rules
  (AdaGrad, RMSProp, Adam), which is the proximal step in their metric.

The regularization value reported is :math:`R(w_{new})`, as MLlib's updaters report it.
"""

from __future__ import annotations

import numpy as np

from sparkgd.core.lbfgs import LBFGS
from sparkgd.core.optimizer import Optimizer, State, Step
from sparkgd.core.updaters import soft_threshold

__all__ = ["OPTIMIZERS", "SGD", "AdaGrad", "Adam", "LBFGS", "Momentum", "Optimizer", "RMSProp", "State", "Step",
           "make_optimizer"]

class SGD(Optimizer):
    r"""MLlib's rule: ``updater.compute(w, g, eta_t, lambda)``, e.g. :math:`w - \eta_t g` without regularizer."""

    def update(self, weights, gradient, step, state, updater, reg_param, penalized=None):
        new, reg_val = updater.compute(weights, gradient, step, reg_param, penalized)
        return new, reg_val, state


class _Rule(Optimizer):
    """A rule ``u, denominator = direction(g')`` followed by :math:`w - \\eta_t u` and the regularizer."""

    decoupled = False

    def direction(self, gradient: np.ndarray, state: State) -> tuple[np.ndarray, np.ndarray | None, State]:
        raise NotImplementedError

    def update(self, weights, gradient, step, state, updater, reg_param, penalized=None):
        l1, l2 = updater.penalties(reg_param)
        decay = None
        if l2 > 0:
            decay = l2 * (weights if penalized is None else np.where(penalized, weights, 0.0))
            if not self.decoupled:
                gradient = gradient + decay
        u, denominator, state = self.direction(gradient, state)
        new = weights - step * u
        if decay is not None and self.decoupled:
            new = new - step * decay
        if l1 > 0:
            new = soft_threshold(new, step * l1 if denominator is None else step * l1 / denominator, penalized)
        return new, updater.regularization(new, reg_param, penalized), state


class Momentum(_Rule):
    r"""Heavy-ball momentum (PyTorch's form): :math:`v \leftarrow \mu v + g'`, :math:`w \leftarrow w - \eta_t v`;
    with ``nesterov`` the step is :math:`\eta_t (g' + \mu v)`."""

    def __init__(self, momentum: float = 0.9, nesterov: bool = False) -> None:
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def init(self, weights):
        return {"velocity": np.zeros_like(weights)}

    def direction(self, gradient, state):
        v = self.momentum * state["velocity"] + gradient
        u = gradient + self.momentum * v if self.nesterov else v
        return u, None, {"velocity": v}


class AdaGrad(_Rule):
    r"""AdaGrad (Duchi et al., 2011): :math:`G \leftarrow G + g'^2`,
    :math:`w \leftarrow w - \eta_t g' / (\sqrt{G} + \epsilon)`."""

    def __init__(self, epsilon: float = 1e-8) -> None:
        self.epsilon = float(epsilon)

    def init(self, weights):
        return {"sumSquares": np.zeros_like(weights)}

    def direction(self, gradient, state):
        g2 = state["sumSquares"] + gradient * gradient
        denominator = np.sqrt(g2) + self.epsilon
        return gradient / denominator, denominator, {"sumSquares": g2}


class RMSProp(_Rule):
    r"""RMSProp: :math:`s \leftarrow \beta_2 s + (1-\beta_2) g'^2`,
    :math:`w \leftarrow w - \eta_t g' / (\sqrt{s / (1-\beta_2^k)} + \epsilon)`.

    Tieleman and Hinton's rule with Adam's bias correction (:math:`k` counts the updates), so that
    :math:`\beta_2` = 0.999 (the ``beta2`` param's default) does not blow up the first steps.
    """

    def __init__(self, beta2: float = 0.999, epsilon: float = 1e-8) -> None:
        self.beta2, self.epsilon = float(beta2), float(epsilon)

    def init(self, weights):
        return {"meanSquares": np.zeros_like(weights), "count": np.zeros(())}

    def direction(self, gradient, state):
        k = state["count"] + 1.0
        s = self.beta2 * state["meanSquares"] + (1.0 - self.beta2) * (gradient * gradient)
        denominator = np.sqrt(s / (1.0 - self.beta2 ** k)) + self.epsilon
        return gradient / denominator, denominator, {"meanSquares": s, "count": k}


class Adam(_Rule):
    r"""Adam (Kingma and Ba, 2015) with bias correction; ``decoupled`` is AdamW (Loshchilov and Hutter, 2019).

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g', \quad v \leftarrow \beta_2 v + (1-\beta_2) g'^2, \quad
        w \leftarrow w - \eta_t \frac{m / (1-\beta_1^k)}{\sqrt{v / (1-\beta_2^k)} + \epsilon}
    """

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8,
                 decoupled: bool = False) -> None:
        self.beta1, self.beta2, self.epsilon = float(beta1), float(beta2), float(epsilon)
        self.decoupled = bool(decoupled)

    def init(self, weights):
        return {"m": np.zeros_like(weights), "v": np.zeros_like(weights), "count": np.zeros(())}

    def direction(self, gradient, state):
        k = state["count"] + 1.0
        m = self.beta1 * state["m"] + (1.0 - self.beta1) * gradient
        v = self.beta2 * state["v"] + (1.0 - self.beta2) * (gradient * gradient)
        m_hat = m / (1.0 - self.beta1 ** k)
        denominator = np.sqrt(v / (1.0 - self.beta2 ** k)) + self.epsilon
        return m_hat / denominator, denominator, {"m": m, "v": v, "count": k}


OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "lbfgs")


def make_optimizer(name: str, *, momentum: float = 0.9, beta1: float = 0.9, beta2: float = 0.999,
                   epsilon: float = 1e-8, memory: int = 10) -> Optimizer:
    """The optimizer called ``name`` (one of :data:`OPTIMIZERS`)."""
    if name == "sgd":
        return SGD()
    if name in ("momentum", "nesterov"):
        return Momentum(momentum, nesterov=name == "nesterov")
    if name == "adagrad":
        return AdaGrad(epsilon)
    if name == "rmsprop":
        return RMSProp(beta2, epsilon)
    if name in ("adam", "adamw"):
        return Adam(beta1, beta2, epsilon, decoupled=name == "adamw")
    if name == "lbfgs":
        return LBFGS(memory)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {name!r}")
