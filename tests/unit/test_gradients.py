import math

import numpy as np
import pytest
import scipy.sparse as sp

from sparkgd.core.gradients import HingeGradient, HuberGradient, LeastSquaresGradient, LogisticGradient, get_gradient

GRADIENTS = [LeastSquaresGradient(), LogisticGradient(), HingeGradient(), HuberGradient(0.5)]

# (gradient, margin, label, loss, dloss/dmargin), the MLlib definitions by hand
CASES = [
    (LeastSquaresGradient(), 3.0, 1.0, 2.0, 2.0),
    (LeastSquaresGradient(), -1.0, 0.5, 1.125, -1.5),
    (LogisticGradient(), 0.0, 1.0, math.log(2), -0.5),
    (LogisticGradient(), 0.0, 0.0, math.log(2), 0.5),
    (LogisticGradient(), 2.0, 1.0, math.log1p(math.exp(-2)), 1 / (1 + math.exp(-2)) - 1),
    (LogisticGradient(), 2.0, 0.0, math.log1p(math.exp(2)), 1 / (1 + math.exp(-2))),
    (LogisticGradient(), 800.0, 0.0, 800.0, 1.0),
    (LogisticGradient(), -800.0, 1.0, 800.0, -1.0),
    (LogisticGradient(), 800.0, 1.0, 0.0, 0.0),
    (HingeGradient(), 0.5, 1.0, 0.5, -1.0),
    (HingeGradient(), 0.5, 0.0, 1.5, 1.0),
    (HingeGradient(), 2.0, 1.0, 0.0, 0.0),
    (HingeGradient(), 1.0, 1.0, 0.0, 0.0),
    (HingeGradient(), -2.0, 0.0, 0.0, 0.0),
    (HuberGradient(1.0), 3.0, 1.0, 1.5, 1.0),  # |r| = 2 > epsilon: epsilon |r| - epsilon^2 / 2
    (HuberGradient(1.0), 0.5, 1.0, 0.125, -0.5),  # |r| <= epsilon: r^2 / 2
    (HuberGradient(1.0), 2.0, 1.0, 0.5, 1.0),  # the joint: both pieces give 1/2
    (HuberGradient(), -4.0, 0.0, 1.35 * 4 - 0.5 * 1.35 ** 2, -1.35),
]


@pytest.mark.parametrize("g,m,y,loss,dloss", CASES)
def test_loss_and_multiplier_table(g, m, y, loss, dloss):
    l_, d_ = g.loss_and_multiplier(np.array([m]), np.array([y]))
    assert l_[0] == pytest.approx(loss, abs=1e-12)
    assert d_[0] == pytest.approx(dloss, abs=1e-12)


def _away_from_kinks(g, x, y, w):
    """Rows whose loss is smooth near w (central differences are exact only there) and, for Huber,
    an epsilon that puts half the rows on each piece: both pieces are differentiated by construction."""
    m = x @ w
    if g.name == "hinge":
        return g, np.abs(1 - (2 * y - 1) * m) > 1e-3
    if g.name == "huber":
        r = np.abs(m - y)
        g = HuberGradient(float(np.median(r)))
        return g, np.abs(r - g.epsilon) > 1e-3
    return g, np.ones(len(y), dtype=bool)


@pytest.mark.parametrize("g", GRADIENTS, ids=lambda g: g.name)
@pytest.mark.parametrize("sparse", [False, True])
def test_gradient_matches_finite_differences(g, sparse):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5))
    x[rng.random(x.shape) < 0.3] = 0.0
    y = (rng.random(40) < 0.5).astype(float) if g.name not in ("squared", "huber") else rng.normal(size=40)
    w = rng.normal(size=5) * 0.3
    g, keep = _away_from_kinks(g, x, y, w)
    x, y = x[keep], y[keep]
    feats = sp.csr_matrix(x) if sparse else x
    grad, loss = g.compute(feats, y, w)
    h = 1e-6
    fd = np.array([(g.compute(feats, y, w + h * e)[1] - g.compute(feats, y, w - h * e)[1]) / (2 * h)
                   for e in np.eye(5)])
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6)
    assert loss == pytest.approx(g.loss_and_multiplier(x @ w, y)[0].sum())


@pytest.mark.parametrize("g", GRADIENTS, ids=lambda g: g.name)
def test_dense_and_sparse_blocks_agree(g):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 4)) * (rng.random((30, 4)) < 0.5)
    y = (rng.random(30) < 0.5).astype(float)
    w = rng.normal(size=4)
    a, la = g.compute(x, y, w)
    b, lb = g.compute(sp.csr_matrix(x), y, w)
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    assert la == pytest.approx(lb, rel=1e-13)


def test_registry_names_the_allowed_losses():
    assert isinstance(get_gradient("hinge"), HingeGradient)
    assert get_gradient("huber").epsilon == 1.35
    with pytest.raises(ValueError, match="loss must be one of"):
        get_gradient("cauchy")
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="param epsilon must be a finite number > 0"):
            HuberGradient(bad)


def _softmax_objective(x, y, v, k, w, fit_intercept, scale):
    """Weighted sum of softmax losses, written out for one row at a time."""
    d = x.shape[1]
    coef = w[:k * d].reshape(k, d) * (scale if scale is not None else 1.0)
    b = w[k * d:] if fit_intercept else np.zeros(k)
    total = 0.0
    for xi, yi, vi in zip(x, y, v):
        m = coef @ xi + b
        total += vi * (np.log(np.sum(np.exp(m))) - m[int(yi)])
    return total


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("fit_intercept,scaled", [(False, False), (True, False), (True, True)])
def test_multinomial_block_sums_match_the_row_by_row_objective_and_its_finite_differences(sparse, fit_intercept,
                                                                                           scaled):
    from sparkgd.core.block import Block, block_sums
    from sparkgd.core.gradients import MultinomialGradient

    rng = np.random.default_rng(5)
    n, d, k = 30, 4, 3
    x = rng.normal(size=(n, d)) * (rng.random((n, d)) < 0.6)
    y = rng.integers(0, k, n).astype(float)
    v = rng.uniform(0.5, 2.0, n)
    scale = rng.uniform(0.5, 2.0, d) if scaled else None
    w = rng.normal(size=k * d + (k if fit_intercept else 0))
    block = Block(0, y, sp.csr_matrix(x) if sparse else x, v)
    g = MultinomialGradient(k)
    grad, loss, rows, wsum = block_sums(block, w, g, 1.0, 1, fit_intercept=fit_intercept, scale=scale)[:4]
    assert rows == n and wsum == pytest.approx(v.sum())
    assert loss == pytest.approx(_softmax_objective(x, y, v, k, w, fit_intercept, scale), rel=1e-12)
    h = 1e-6
    fd = [(_softmax_objective(x, y, v, k, w + h * e, fit_intercept, scale)
           - _softmax_objective(x, y, v, k, w - h * e, fit_intercept, scale)) / (2 * h) for e in np.eye(len(w))]
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6)


def test_multinomial_loss_does_not_overflow_and_needs_two_classes():
    from sparkgd.core.gradients import MultinomialGradient

    loss, mult = MultinomialGradient(3).loss_and_multiplier(np.array([[1000.0, 0.0, -1000.0]]), np.array([1.0]))
    assert loss[0] == pytest.approx(1000.0) and np.isfinite(mult).all()
    np.testing.assert_allclose(mult[0], [1.0, -1.0, 0.0], atol=1e-12)
    with pytest.raises(ValueError, match="numClasses must be an integer >= 2"):
        MultinomialGradient(1)
