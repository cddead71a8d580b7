"""Per-row losses and their gradients, computed on whole blocks of rows.

Every MLlib gradient for a linear model has the form ``grad_i = multiplier_i * x_i`` where the
multiplier depends only on the margin ``m_i = x_i . w`` and the label ``y_i``. A
:class:`Gradient` supplies ``loss(m, y)`` and ``multiplier(m, y)`` element-wise; summing over a
block is then two matrix-vector products, ``m = X w`` and ``X^T multiplier``, for a dense
``numpy`` block and a ``scipy.sparse`` CSR block alike.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


class Gradient:
    """Base class: a loss of the margin ``m = x . w`` and the label ``y``.

    ``num_sets`` is the number of coefficient vectors (1; ``K`` for the multinomial loss, whose
    weights are the ``K x d`` matrix flattened row by row and whose margins are ``n x K``).
    """

    name: str = ""
    num_sets: int = 1

    def loss_and_multiplier(self, margins: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-row loss ``l(m, y)`` and ``dl/dm`` (the gradient is ``dl/dm * x``)."""
        raise NotImplementedError

    def compute(self, features: np.ndarray | sp.csr_matrix, labels: np.ndarray,
                weights: np.ndarray) -> tuple[np.ndarray, float]:
        """Sum of the gradients and of the losses over a block of rows.

        Parameters
        ----------
        features : ndarray of shape (n, d) or scipy CSR matrix
        labels : ndarray of shape (n,)
        weights : ndarray of shape (d,)

        Returns
        -------
        (ndarray of shape (d,), float)
            ``sum_i dl/dm(m_i, y_i) x_i`` and ``sum_i l(m_i, y_i)``.
        """
        loss, mult = self.loss_and_multiplier(features @ weights, np.asarray(labels, dtype=np.float64))
        return features.T @ mult, float(loss.sum())

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LeastSquaresGradient(Gradient):
    r"""Squared error, MLlib's ``LeastSquaresGradient``.

    .. math:: l(m, y) = \tfrac12 (m - y)^2, \qquad \partial l / \partial m = m - y
    """

    name = "squared"

    def loss_and_multiplier(self, margins, labels):
        diff = margins - labels
        return diff * diff / 2.0, diff


class LogisticGradient(Gradient):
    r"""Binary logistic loss for labels in {0, 1}, MLlib's ``LogisticGradient(2)``.

    .. math:: l(m, y) = \log(1 + e^{m}) - y m, \qquad
              \partial l / \partial m = \frac{1}{1 + e^{-m}} - y

    computed without overflow for large ``|m|``.
    """

    name = "logistic"

    def loss_and_multiplier(self, margins, labels):
        with np.errstate(over="ignore"):
            mult = 1.0 / (1.0 + np.exp(-margins)) - labels
        # log(1 + e^m) - y m, the way MLlib's log1pExp computes it
        neg = -margins
        log1p_exp = np.where(neg > 0, neg + np.log1p(np.exp(-np.abs(neg))), np.log1p(np.exp(-np.abs(neg))))
        loss = np.where(labels > 0, log1p_exp, log1p_exp - neg)
        return loss, mult


class HingeGradient(Gradient):
    r"""Hinge loss of a linear SVM for labels in {0, 1}, MLlib's ``HingeGradient``.

    With ``s = 2y - 1``:

    .. math:: l(m, y) = \max(0, 1 - s m), \qquad
              \partial l / \partial m = -s \text{ if } s m < 1 \text{ else } 0
    """

    name = "hinge"

    def loss_and_multiplier(self, margins, labels):
        s = 2.0 * labels - 1.0
        sm = s * margins
        active = sm < 1.0
        return np.where(active, 1.0 - sm, 0.0), np.where(active, -s, 0.0)


class HuberGradient(Gradient):
    r"""Huber's loss of the residual ``r = m - y``: squared near 0, absolute beyond ``epsilon``
    (scikit-learn's ``SGDRegressor(loss="huber")``).

    .. math:: l(m, y) = \begin{cases} \tfrac12 r^2 & |r| \le \epsilon \\
                                      \epsilon |r| - \tfrac12 \epsilon^2 & |r| > \epsilon \end{cases},
              \qquad \partial l / \partial m = \max(-\epsilon, \min(r, \epsilon))
    """

    name = "huber"

    def __init__(self, epsilon: float = 1.35) -> None:
        if not (isinstance(epsilon, (int, float)) and np.isfinite(epsilon) and epsilon > 0):
            raise ValueError(f"param epsilon must be a finite number > 0, got {epsilon!r}")
        self.epsilon = float(epsilon)

    def loss_and_multiplier(self, margins, labels):
        r = margins - labels
        a = np.abs(r)
        e = self.epsilon
        return np.where(a <= e, 0.5 * r * r, e * a - 0.5 * e * e), np.clip(r, -e, e)

    def __repr__(self) -> str:
        return f"HuberGradient(epsilon={self.epsilon!r})"


class MultinomialGradient(Gradient):
    r"""Softmax cross-entropy over ``K`` classes (labels ``0 .. K-1``), Spark ML's multinomial
    ``LogisticRegression`` without a pivot class: margins :math:`m_k = w_k \cdot x` for every class,

    .. math:: l(m, y) = \log \sum_k e^{m_k} - m_y, \qquad
              \partial l / \partial m_k = \frac{e^{m_k}}{\sum_j e^{m_j}} - [k = y]

    computed with the largest margin subtracted first (no overflow).
    """

    name = "multinomial"

    def __init__(self, num_classes: int) -> None:
        if not (isinstance(num_classes, int) and num_classes >= 2):
            raise ValueError(f"numClasses must be an integer >= 2, got {num_classes!r}")
        self.num_sets = num_classes

    def loss_and_multiplier(self, margins, labels):
        top = margins.max(axis=1, keepdims=True)
        e = np.exp(margins - top)
        total = e.sum(axis=1, keepdims=True)
        rows = np.arange(len(labels))
        y = labels.astype(np.int64)
        loss = np.log(total[:, 0]) + top[:, 0] - margins[rows, y]
        mult = e / total
        mult[rows, y] -= 1.0
        return loss, mult

    def compute(self, features, labels, weights):
        coef = np.asarray(weights).reshape(self.num_sets, -1)
        loss, mult = self.loss_and_multiplier(np.asarray(features @ coef.T), np.asarray(labels, dtype=np.float64))
        return np.asarray(features.T @ mult).T.ravel(), float(loss.sum())

    def __repr__(self) -> str:
        return f"MultinomialGradient({self.num_sets})"


GRADIENTS: dict[str, type[Gradient]] = {
    "squared": LeastSquaresGradient,
    "logistic": LogisticGradient,
    "hinge": HingeGradient,
    "huber": HuberGradient,
}


def get_gradient(name: str) -> Gradient:
    """The gradient registered under ``name`` (``squared``, ``logistic``, ``hinge``, ``huber``)."""
    try:
        return GRADIENTS[name]()
    except KeyError:
        raise ValueError(f"loss must be one of {sorted(GRADIENTS)}, got {name!r}") from None


def gradient_spec(gradient: Gradient) -> dict | None:
    """``gradient`` as plain data (its name and parameters), or ``None`` for a class not defined here."""
    if type(gradient) in GRADIENTS.values():
        return {"name": gradient.name, **({"epsilon": gradient.epsilon} if isinstance(gradient, HuberGradient) else {})}
    if type(gradient) is MultinomialGradient:
        return {"name": gradient.name, "num_classes": gradient.num_sets}
    return None


def gradient_from_spec(spec: dict) -> Gradient:
    """Inverse of :func:`gradient_spec`."""
    if spec["name"] == MultinomialGradient.name:
        return MultinomialGradient(int(spec["num_classes"]))
    if spec["name"] == HuberGradient.name:
        return HuberGradient(float(spec["epsilon"]))
    return get_gradient(spec["name"])
