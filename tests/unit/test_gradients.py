import math

import numpy as np
import pytest
import scipy.sparse as sp

from sparkgd.core.gradients import HingeGradient, LeastSquaresGradient, LogisticGradient, get_gradient

GRADIENTS = [LeastSquaresGradient(), LogisticGradient(), HingeGradient()]

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
]


@pytest.mark.parametrize("g,m,y,loss,dloss", CASES)
def test_loss_and_multiplier_table(g, m, y, loss, dloss):
    l_, d_ = g.loss_and_multiplier(np.array([m]), np.array([y]))
    assert l_[0] == pytest.approx(loss, abs=1e-12)
    assert d_[0] == pytest.approx(dloss, abs=1e-12)


@pytest.mark.parametrize("g", GRADIENTS, ids=lambda g: g.name)
@pytest.mark.parametrize("sparse", [False, True])
def test_gradient_matches_finite_differences(g, sparse):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5))
    x[rng.random(x.shape) < 0.3] = 0.0
    y = (rng.random(40) < 0.5).astype(float) if g.name != "squared" else rng.normal(size=40)
    w = rng.normal(size=5) * 0.3
    feats = sp.csr_matrix(x) if sparse else x
    grad, loss = g.compute(feats, y, w)
    h = 1e-6
    fd = np.array([(g.compute(feats, y, w + h * e)[1] - g.compute(feats, y, w - h * e)[1]) / (2 * h)
                   for e in np.eye(5)])
    # hinge is piecewise linear: no row sits on its kink here
    assert np.all(np.abs(1 - (2 * y - 1) * (x @ w)) > 1e-4) or g.name != "hinge"
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
    with pytest.raises(ValueError, match="loss must be one of"):
        get_gradient("huber")
